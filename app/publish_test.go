package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// post sends body with an optional bearer token and decodes the JSON answer.
func (k *keyflux) post(path, token, body string) (int, http.Header, map[string]any) {
	k.t.Helper()
	resp, m := k.request("POST", path, body, "Content-Type", "application/json", "Authorization", bearer(token))
	return resp.StatusCode, resp.Header, m
}

func TestPublishDisabledWithoutToken(t *testing.T) {
	k := startKeyflux(t, nil)
	for _, path := range []string{"/api/channels/news", "/api/log/orders"} {
		status, _, body := k.post(path, "anything", `{"a":1}`)
		if status != 403 || !strings.Contains(body["error"].(string), "disabled") {
			t.Fatalf("%s: %d %v", path, status, body)
		}
	}
	if n, _ := k.do("EXISTS", "orders").AsInt64(); n != 0 {
		t.Fatal("a disabled publish wrote to Redis")
	}
}

func TestPublishAuthValidationAndLimits(t *testing.T) {
	const token = "s3cret-token"
	k := startKeyflux(t, nil, "--publish-token", token, "--publish-max-bytes", "1024",
		"--expose-channels", "news.", "--expose", "orders:")
	k.do("SET", "orders:str", "x")
	big := `{"a":"` + strings.Repeat("x", 1100) + `"}`
	cases := []struct {
		path, token, body string
		status            int
		error             string
	}{
		{"/api/channels/news.eu", "", `{"a":1}`, 401, "token"},
		{"/api/channels/news.eu", "wrong", `{"a":1}`, 401, "token"},
		{"/api/log/orders:1", token + "x", `{"a":1}`, 401, "token"},
		{"/api/channels/news.eu", token, `{"a":`, 400, "JSON"},
		{"/api/channels/news.eu", token, ``, 400, "JSON"},
		{"/api/channels/news.eu", token, big, 413, "larger"},
		{"/api/channels/sport", token, `{"a":1}`, 403, "exposed"},
		{"/api/channels/", token, `{"a":1}`, 400, "channel"},
		{"/api/channels/news.%0A", token, `{"a":1}`, 400, "control"},
		{"/api/log/orders:1", token, `[1,2]`, 400, "object"},
		{"/api/log/orders:1", token, `"text"`, 400, "object"},
		{"/api/log/orders:1", token, `{}`, 400, "at least one"},
		{"/api/log/orders:1", token, `{"a":1} {"b":2}`, 400, "JSON"},
		{"/api/log/orders:1", token, big, 413, "larger"},
		{"/api/log/orders:1?maxlen=x", token, `{"a":1}`, 400, "maxlen"},
		{"/api/log/secrets", token, `{"a":1}`, 403, "exposed"},
		{"/api/log/orders:str", token, `{"a":1}`, 409, "not a stream"},
	}
	for _, c := range cases {
		status, h, body := k.post(c.path, c.token, c.body)
		msg, _ := body["error"].(string)
		if status != c.status || !strings.Contains(msg, c.error) {
			t.Errorf("POST %s %q: %d %v, want %d with %q", c.path, c.body, status, body, c.status, c.error)
		}
		if status == 401 && h.Get("WWW-Authenticate") == "" {
			t.Errorf("401 without WWW-Authenticate")
		}
	}
	if n, _ := k.do("EXISTS", "orders:1", "secrets").AsInt64(); n != 0 {
		t.Fatal("a rejected publish wrote to Redis")
	}

	// Bodies larger than the whole HTTP limit get a JSON 413 too.
	req, _ := http.NewRequest("POST", k.base+"/api/log/orders:1", strings.NewReader(strings.Repeat("x", 5<<20)))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := plainClient.Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || !strings.Contains(string(b), `"error"`) {
			t.Errorf("5 MiB body: %d %s", resp.StatusCode, b)
		}
	} // else: the server may close the connection before reading it all, also a refusal
}

func TestPublishReachesStreams(t *testing.T) {
	const token = "tok"
	k := startKeyflux(t, nil, "--publish-token", token)
	ch := k.open("/streams/channels/news")
	lg := k.open("/streams/log/orders")
	ch.Expect("connected")
	lg.Expect("connected")

	body := "{\"event\":\"order-paid\",\n \"id\": 1, \"note\": \"é\"}"
	status, _, resp := k.post("/api/channels/news", token, body)
	if status != 200 || resp["receivers"] != 1.0 {
		t.Fatalf("publish: %d %v", status, resp)
	}
	if got := ch.Expect("order-paid").Data; got != body {
		t.Fatalf("channel got %q, want the body as sent %q", got, body)
	}

	status, _, resp = k.post("/api/log/orders", token, `{"z":"last","a":1,"ok":true,"none":null,"nested":{"b":[1, 2]},"s":"x\ny"}`)
	id, _ := resp["id"].(string)
	if status != 201 || id == "" {
		t.Fatalf("append: %d %v", status, resp)
	}
	ev := lg.Expect("entry")
	want := `{"z":"last","a":"1","ok":"true","none":"null","nested":"{\"b\":[1,2]}","s":"x\ny"}`
	if ev.LastEventID != id || ev.Data != want {
		t.Fatalf("log got %s %s, want %s %s", ev.LastEventID, ev.Data, id, want)
	}

	for range 5 {
		k.post("/api/log/orders?maxlen=2", token, `{"event":"tick"}`)
		lg.Expect("tick")
	}
	if n, _ := k.do("XLEN", "orders").AsInt64(); n != 2 {
		t.Fatalf("maxlen=2 left %d entries", n)
	}
}
