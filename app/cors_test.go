package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// CORS over real HTTP: the hijacked stream heads carry the same headers as
// Fiber's responses, refusals too, and with auth on a foreign page is
// refused before anything is subscribed.

const (
	listedOrigin = "https://app.example"
	// corsSecret is the HMAC key of the jwt cases.
	corsSecret = "cors-test-secret-of-thirty-two-bytes!"
)

// corsGet sends GET path with Origin (none if "") and extra headers (name,
// value pairs); a stream's body is left unread and closed.
func (k *keyflux) corsGet(path, origin string, headers ...string) (*http.Response, map[string]any) {
	k.t.Helper()
	return k.request("GET", path, "", append([]string{"Origin", origin}, headers...)...)
}

// wantCORS checks the CORS headers of a response to the listed origin.
func wantCORS(t *testing.T, what string, h http.Header) {
	t.Helper()
	if h.Get("Access-Control-Allow-Origin") != listedOrigin || h.Get("Access-Control-Allow-Credentials") != "true" ||
		h.Get("Vary") != "Origin" || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Errorf("%s: CORS headers %v", what, h)
	}
}

func noCORS(t *testing.T, what string, h http.Header) {
	t.Helper()
	for name := range h {
		if strings.HasPrefix(name, "Access-Control-") {
			t.Errorf("%s: %s sent to an unlisted origin", what, name)
		}
	}
}

func TestCORSStreamHead(t *testing.T) {
	k := startKeyflux(t, nil, "--allow-origin", listedOrigin+", http://127.0.0.1:5173")
	s := k.open("/streams/channels/news", "Origin", listedOrigin)
	s.Expect("connected")
	wantCORS(t, "stream head", http.Header{
		"Access-Control-Allow-Origin":      {s.Header("Access-Control-Allow-Origin")},
		"Access-Control-Allow-Credentials": {s.Header("Access-Control-Allow-Credentials")},
		"Access-Control-Expose-Headers":    {s.Header("Access-Control-Expose-Headers")},
		"Vary":                             {s.Header("Vary")},
	})
	k.do("PUBLISH", "news", "hello")
	if ev := s.Expect("message"); ev.Data != "hello" {
		t.Fatalf("message %+v", ev)
	}
	s.Close()
	resp, _ := k.corsGet("/streams/channels/news", "https://evil.example")
	if resp.StatusCode != 200 {
		t.Fatalf("unlisted origin without auth: %d", resp.StatusCode)
	}
	noCORS(t, "unlisted stream head", resp.Header)
	if resp.Header.Get("Vary") != "Origin" {
		t.Errorf("unlisted stream head: Vary %q", resp.Header.Values("Vary"))
	}
}

// A stream refused after the hijack (503, --max-topics) and one refused
// before it (429, per-address limit) are readable by the listed page.
func TestCORSStreamRefusals(t *testing.T) {
	t.Run("503 at max-topics", func(t *testing.T) {
		k := startKeyflux(t, nil, "--allow-origin", listedOrigin, "--max-topics", "1", "--linger", "0s")
		k.open("/streams/channels/a").Expect("connected")
		resp, body := k.corsGet("/streams/channels/b", listedOrigin)
		if resp.StatusCode != 503 || body["error"] == nil || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("second topic: %d %v", resp.StatusCode, body)
		}
		wantCORS(t, "503", resp.Header)
	})
	t.Run("429 per address", func(t *testing.T) {
		k := startKeyflux(t, nil, "--allow-origin", listedOrigin, "--max-clients-per-ip", "1")
		k.open("/streams/channels/a").Expect("connected")
		resp, body := k.corsGet("/streams/channels/a", listedOrigin)
		if resp.StatusCode != 429 || body["error"] == nil {
			t.Fatalf("second stream: %d %v", resp.StatusCode, body)
		}
		wantCORS(t, "429", resp.Header)
	})
}

// hsToken is an HS256 token for corsSecret that may read the channel news.
func hsToken(t *testing.T, ttl time.Duration) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "cors", "exp": time.Now().Add(ttl).Unix(),
		"keyflux": map[string]any{"channels": []string{"news"}, "publish": []string{"news"}},
	}).SignedString([]byte(corsSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// With auth on, a foreign page's stream request is refused (403, nothing
// subscribed) even with a valid cookie; the listed page's works with it,
// and its 401 without one is readable.
func TestCORSOriginCheckWithJWT(t *testing.T) {
	k := startKeyflux(t, nil, "--allow-origin", listedOrigin, "--auth", "jwt", "--jwt-key", corsSecret)
	cookie := "keyflux_token=" + hsToken(t, time.Hour)
	for _, origin := range []string{"https://evil.example", "null", "https://" + strings.TrimPrefix(k.base, "http://")} {
		resp, body := k.corsGet("/streams/channels/news", origin, "Cookie", cookie)
		if msg, _ := body["error"].(string); resp.StatusCode != 403 || !strings.Contains(msg, "is not allowed (--allow-origin)") {
			t.Errorf("foreign %s: %d %v", origin, resp.StatusCode, body)
		}
		noCORS(t, "foreign "+origin, resp.Header)
	}
	if k.srv.sink.Clients() != 0 || k.srv.hub.Topics() != 0 {
		t.Fatalf("refused requests subscribed: %d topics, %d clients", k.srv.hub.Topics(), k.srv.sink.Clients())
	}
	if resp, _ := k.corsGet("/healthz", "https://evil.example"); resp.StatusCode != 200 {
		t.Errorf("/healthz from a foreign origin: %d", resp.StatusCode)
	}
	resp, body := k.corsGet("/streams/channels/news", listedOrigin)
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" || body["error"] == nil {
		t.Fatalf("listed origin without a token: %d %v", resp.StatusCode, body)
	}
	wantCORS(t, "401", resp.Header)
	// Keyflux's own page (the dashboard) and the listed one, with the cookie.
	for _, origin := range []string{k.base, listedOrigin} {
		s := k.open("/streams/channels/news", "Origin", origin, "Cookie", cookie)
		s.Expect("connected")
		if origin == listedOrigin && s.Header("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("stream head for the listed page: %q", s.Header("Access-Control-Allow-Origin"))
		}
		s.Close()
	}
}

// The browser client's module holds code, no data: any page may load it,
// under --auth too, while the API stays closed to unlisted origins.
func TestCORSModuleOpenToAnyOrigin(t *testing.T) {
	k := startKeyflux(t, nil, "--allow-origin", listedOrigin, "--auth", "jwt", "--jwt-key", corsSecret)
	for _, path := range []string{"/keyflux.js", "/keyflux.d.ts"} {
		req, _ := http.NewRequest("GET", k.base+path, nil)
		req.Header.Set("Origin", "https://elsewhere.example")
		resp, err := plainClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s from an unlisted origin: %d %v", path, resp.StatusCode, resp.Header)
		}
	}
	if resp, _ := k.corsGet("/api/identity", "https://elsewhere.example"); resp.StatusCode != 403 {
		t.Errorf("/api/identity from an unlisted origin: %d", resp.StatusCode)
	}
}
