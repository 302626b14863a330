package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawResponse is one HTTP response read off a socket.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
	close  bool // Connection: close (net/http takes the header out)
}

// exchange writes raw bytes to Keyflux on a fresh connection and reads the
// responses to the number of requests given, each within 5 s: well below
// the 30 s ReadTimeout that a request fasthttp cannot parse used to wait for.
func (k *keyflux) exchange(raw string, responses int, head bool) []rawResponse {
	k.t.Helper()
	return exchangeWith(k.t, k.srv.addr(), raw, responses, head)
}

func exchangeWith(t testing.TB, addr, raw string, responses int, head bool) []rawResponse {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []rawResponse
	for range responses {
		req := &http.Request{Method: "GET"}
		if head {
			req.Method = "HEAD"
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			t.Fatalf("%q: no answer: %v", raw, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%q: reading the body: %v", raw, err)
		}
		out = append(out, rawResponse{resp.StatusCode, resp.Header, b, resp.Close})
	}
	return out
}

// jsonError checks that r is a JSON error of status and returns its message.
func jsonError(t testing.TB, what string, r rawResponse, status int) string {
	t.Helper()
	var body map[string]any
	if r.status != status || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") ||
		json.Unmarshal(r.body, &body) != nil {
		t.Fatalf("%s: %d %s %q, want %d with a JSON error", what, r.status, r.header.Get("Content-Type"), r.body, status)
	}
	msg, _ := body["error"].(string)
	if msg == "" {
		t.Fatalf("%s: %q has no error", what, r.body)
	}
	return msg
}

// TestHeadOnStreamsIsRefused: HEAD on a stream route used to subscribe
// and stream a body; now 405 with Allow: GET, and no topic, no pattern.
func TestHeadOnStreamsIsRefused(t *testing.T) {
	k := startKeyflux(t, nil)
	for _, target := range []string{
		"/streams/keyspace?pattern=head:*",
		"/streams?sub=a:keyspace%3Fpattern%3Dhead2:*",
		"/streams/channels/head",
		"/streams/keys?key=head",
	} {
		r := k.exchange("HEAD "+target+" HTTP/1.1\r\nHost: kf\r\n\r\n", 1, true)[0]
		if r.status != 405 || r.header.Get("Allow") != "GET" ||
			!strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("HEAD %s: %d Allow=%q %s", target, r.status, r.header.Get("Allow"), r.header.Get("Content-Type"))
		}
	}
	// A GET stream after them is the only subscription there is.
	s := k.open("/streams/keyspace?pattern=get:*")
	s.Expect("connected")
	if n, topics := k.numpat(), k.srv.hub.Topics(); n != 1 || topics != 1 {
		t.Fatalf("after the HEADs and one GET: %d patterns, %d topics, want 1 and 1", n, topics)
	}
}

// TestMalformedRequestsAreRefusedAtOnce: each of these used to be served
// (200 with the dashboard or the route's answer), or left waiting 30 s;
// now each is a 400 JSON error at once, and the connection is closed.
func TestMalformedRequestsAreRefusedAtOnce(t *testing.T) {
	k := startKeyflux(t, nil)
	for _, tc := range []struct{ name, raw, want string }{
		{"control bytes in the target", "GET /\x01\x02 HTTP/1.1\r\nHost: kf\r\n\r\n", "control byte"},
		{"NUL in the target", "GET /healthz\x00 HTTP/1.1\r\nHost: kf\r\n\r\n", "control byte"},
		{"space in the target", "GET /he althz HTTP/1.1\r\nHost: kf\r\n\r\n", "space"},
		{"bare LF in a value (waited 30 s)", "GET /healthz HTTP/1.1\r\nHost: kf\r\nX-A: b\nc\r\n\r\n", "bare LF"},
		{"line without colon (waited 30 s)", "GET /healthz HTTP/1.1\r\nHost: kf\r\nfoo\r\n\r\n", "colon"},
		{"bare LF ending a header", "GET / HTTP/1.1\r\nHost: kf\nX-A: b\r\n\r\n", "bare LF"},
		{"bare LF ending the request line", "GET / HTTP/1.1\nHost: kf\r\n\r\n", "bare LF"},
		{"bare LF ending the head", "GET / HTTP/1.1\r\nHost: kf\r\n\n", "bare LF"},
		{"bare CR", "GET / HTTP/1.1\r\nHost: kf\rX: y\r\n\r\n", "CR"},
		{"folded header", "GET / HTTP/1.1\r\nHost: kf\r\nX-A: b\r\n c\r\n\r\n", "folded"},
		{"control byte in a value", "GET / HTTP/1.1\r\nHost: kf\r\nX-A: b\x01\r\n\r\n", "control byte"},
		{"missing Host", "GET /healthz HTTP/1.1\r\n\r\n", "Host"},
		{"unknown method", "BREW /healthz HTTP/1.1\r\nHost: kf\r\n\r\n", "method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := exchangeWith(t, k.srv.addr(), tc.raw, 1, false)[0]
			msg := jsonError(t, tc.name, r, 400)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			if !r.close {
				t.Error("the connection is kept open")
			}
		})
	}
	// HTTP/1.0 needs no Host.
	if r := k.exchange("GET /healthz HTTP/1.0\r\n\r\n", 1, false)[0]; r.status != 200 {
		t.Fatalf("HTTP/1.0 without Host: %d %q", r.status, r.body)
	}
}

// TestStrictHeadsOnKeepAlive: every request of a connection is checked,
// the one after a request with a body too.
func TestStrictHeadsOnKeepAlive(t *testing.T) {
	k := startKeyflux(t, nil, "--publish-token", "tok")
	ok := "GET /healthz HTTP/1.1\r\nHost: kf\r\n\r\n"
	post := "POST /api/channels/news HTTP/1.1\r\nHost: kf\r\nAuthorization: Bearer tok\r\n" +
		"Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
	c, err := net.Dial("tcp", k.srv.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	for i, raw := range []string{ok, post, "GET /healthz HTTP/1.1\r\nHost: kf\r\nfoo\r\n\r\n"} {
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: no answer: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := 200
		if i == 2 {
			want = 400
		}
		if resp.StatusCode != want {
			t.Fatalf("request %d: %d %q, want %d", i, resp.StatusCode, b, want)
		}
	}
}

// TestEveryErrorIsJSON: errors of the router and of fasthttp's reading,
// which do not quote the request back.
func TestEveryErrorIsJSON(t *testing.T) {
	k := startKeyflux(t, nil)
	for _, tc := range []struct {
		name, raw string
		status    int
	}{
		{"unknown route", "GET /nope HTTP/1.1\r\nHost: kf\r\n\r\n", 404},
		{"wrong method", "PUT /healthz HTTP/1.1\r\nHost: kf\r\nContent-Length: 0\r\n\r\n", 405},
		{"no request line", "GARBAGE\r\nHost: kf\r\n\r\n", 400},
		{"head too large", "GET /healthz HTTP/1.1\r\nHost: kf\r\nX-A: " + strings.Repeat("a", 9000) + "\r\n\r\n", 431},
		{"body too large", "POST /api/channels/x HTTP/1.1\r\nHost: kf\r\nContent-Length: 5000000\r\n\r\n", 413},
	} {
		// fasthttp's own messages quote the request: not sent back.
		if msg := jsonError(t, tc.name, k.exchange(tc.raw, 1, false)[0], tc.status); strings.Contains(msg, "kf") {
			t.Errorf("%s: error %q echoes the request", tc.name, msg)
		}
	}
}

// TestBearerSchemeIsCaseInsensitive: "bearer" and "BEARER" are Bearer.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	k := startKeyflux(t, nil, "--publish-token", "tok")
	for _, auth := range []string{"bearer tok", "BEARER tok", "Bearer  tok"} {
		req, _ := http.NewRequest("POST", k.base+"/api/channels/news", strings.NewReader(`{"a":1}`))
		req.Header.Set("Authorization", auth)
		resp, err := plainClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("Authorization %q: %d %s", auth, resp.StatusCode, b)
		}
	}
	if status, _, _ := k.post("/api/channels/news", "", `{"a":1}`); status != 401 {
		t.Fatalf("no token: %d", status)
	}
}

// TestAdminListen: with --admin-listen, /metrics is served there and the
// main listener answers it with a JSON 404; without, as before.
func TestAdminListen(t *testing.T) {
	k := startKeyflux(t, nil, "--admin-listen", "127.0.0.1:0")
	if k.srv.admin == nil {
		t.Fatal("no admin listener")
	}
	if status, body := k.get("/metrics"); status != 404 {
		t.Fatalf("main /metrics: %d %v", status, body)
	}
	resp, err := plainClient.Get("http://" + k.srv.admin.addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "keyflux_") {
		t.Fatalf("admin /metrics: %d %.200q", resp.StatusCode, b)
	}
	// The admin listener is as strict as the main one.
	r := exchangeWith(t, k.srv.admin.addr(), "GET /metrics HTTP/1.1\r\nHost: kf\r\nfoo\r\n\r\n", 1, false)[0]
	jsonError(t, "admin, malformed", r, 400)
	jsonError(t, "admin, unknown route", exchangeWith(t, k.srv.admin.addr(), "GET /streams HTTP/1.1\r\nHost: kf\r\n\r\n", 1, false)[0], 404)
	// Go's profiles are there, and never on the public listener.
	resp, err = plainClient.Get("http://" + k.srv.admin.addr() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "goroutine profile:") {
		t.Fatalf("admin /debug/pprof/goroutine: %d %.200q", resp.StatusCode, b)
	}
	if status, body := k.get("/debug/pprof/"); status != 404 {
		t.Fatalf("main /debug/pprof/: %d %v", status, body)
	}

	plain := startKeyflux(t, nil)
	resp, err = plainClient.Get(plain.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics without --admin-listen: %d", resp.StatusCode)
	}
}
