package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/keyflux/keyflux/streams/testkit"
)

// jwksServer serves whatever JWK Set is current and counts fetches.
type jwksServer struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{}
	s.serve(body)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(body []byte) { s.body.Store(&body) }

// refused reports whether the token is refused with reason.
func refused(j *JWT, token, reason string) bool {
	_, err := j.Authenticate(context.Background(), bearer(token))
	ie, ok := err.(*InvalidError)
	return ok && ie.Reason == reason
}

func accepted(j *JWT, token string) bool {
	_, err := j.Authenticate(context.Background(), bearer(token))
	return err == nil
}

func TestJWTJWKSFile(t *testing.T) {
	a, b := rsaKeys()[0], rsaKeys()[1]
	path := writeFile(t, "jwks.json", jwksJSON(t, jwkset.AlgRS256, map[string]any{"a": &a.PublicKey}))
	j := newTestJWT(t, JWTOptions{JWKS: path, Refresh: 20 * time.Millisecond})

	tokA := signJWT(t, jwt.SigningMethodRS256, a, testClaims(), "a")
	tokB := signJWT(t, jwt.SigningMethodRS256, b, testClaims(), "b")
	mustAccept(t, j, bearer(tokA))
	mustAccept(t, j, bearer(signJWT(t, jwt.SigningMethodRS256, a, testClaims(), ""))) // no kid: any fitting key
	mustRefuse(t, j, tokB, "unknown key id")
	mustRefuse(t, j, signJWT(t, jwt.SigningMethodRS256, b, testClaims(), "a"), "signature invalid")
	// The JWK says RS256: the same RSA key may not verify PS256.
	mustRefuse(t, j, signJWT(t, jwt.SigningMethodPS256, a, testClaims(), "a"), "algorithm not allowed")
	// A JWKS never verifies HMAC, whatever the secret.
	mustRefuse(t, j, signJWT(t, jwt.SigningMethodHS256, []byte(testSecret), testClaims(), "a"), "algorithm not allowed")
	// A kid that is not a string.
	odd := jwt.NewWithClaims(jwt.SigningMethodRS256, testClaims())
	odd.Header["kid"] = 7
	oddTok, err := odd.SignedString(a)
	if err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, j, oddTok, "malformed token")

	// Rotation: the file now holds b only; no restart.
	rotated := jwksJSON(t, jwkset.AlgRS256, map[string]any{"b": &b.PublicKey})
	if err := os.WriteFile(path+".new", rotated, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the rotated JWKS file to be read", func() bool { return accepted(j, tokB) })
	mustRefuse(t, j, tokA, "unknown key id")

	// A broken rewrite keeps the last good keys.
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(100 * time.Millisecond) // five refresh periods
	for time.Now().Before(deadline) {
		mustAccept(t, j, bearer(tokB))
		time.Sleep(10 * time.Millisecond) // nothing to await: proving nothing changes
	}
}

// RS256 with a JWKS URL: rotation is picked up by the background refresh
// without recreating the JWT, and a key removed from the set is refused.
func TestJWTJWKSURLRotation(t *testing.T) {
	a, b := rsaKeys()[0], rsaKeys()[1]
	srv := newJWKSServer(t, jwksJSON(t, jwkset.AlgRS256, map[string]any{"a": &a.PublicKey}))
	j := newTestJWT(t, JWTOptions{JWKS: srv.URL + "/jwks.json", Refresh: 30 * time.Millisecond})

	tokA := signJWT(t, jwt.SigningMethodRS256, a, testClaims(), "a")
	tokB := signJWT(t, jwt.SigningMethodRS256, b, testClaims(), "b")
	mustAccept(t, j, bearer(tokA))

	srv.serve(jwksJSON(t, jwkset.AlgRS256, map[string]any{"b": &b.PublicKey}))
	testkit.Eventually(t, "key b to be accepted", func() bool { return accepted(j, tokB) })
	testkit.Eventually(t, "removed key a to be refused", func() bool { return refused(j, tokA, "unknown key id") })
}

// A token naming an unknown kid makes at most one early fetch per interval,
// never one per request; the early fetch does pick up a new key.
func TestJWTJWKSURLUnknownKIDIsRateLimited(t *testing.T) {
	a, b := rsaKeys()[0], rsaKeys()[1]
	srv := newJWKSServer(t, jwksJSON(t, jwkset.AlgRS256, map[string]any{"a": &a.PublicKey}))
	// A long Refresh: only unknown kids can cause a fetch during the test.
	j := newTestJWT(t, JWTOptions{JWKS: srv.URL, Refresh: time.Hour})
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches at start, want 1", n)
	}
	srv.serve(jwksJSON(t, jwkset.AlgRS256, map[string]any{"a": &a.PublicKey, "b": &b.PublicKey}))
	mustAccept(t, j, bearer(signJWT(t, jwt.SigningMethodRS256, b, testClaims(), "b")))
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after the first unknown kid, want 2", n)
	}
	start := time.Now()
	for range 50 {
		mustRefuse(t, j, signJWT(t, jwt.SigningMethodRS256, b, testClaims(), "zzz"), "unknown key id")
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after 50 unknown kids, want still 2", n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("refusing unknown kids took %v: they must not wait for the limiter", d)
	}
}

func TestJWTJWKSURLRefusesBadAnswers(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"500": func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusInternalServerError) },
		"huge": func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"keys":[{"kty":"RSA","n":"`))
			_, _ = w.Write(bytes.Repeat([]byte("A"), maxJWKSSize))
			_, _ = w.Write([]byte(`","e":"AQAB"}]}`))
		},
		"HMAC only": func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"keys":[{"kty":"oct","kid":"k","alg":"HS256","k":"` +
				base64.RawURLEncoding.EncodeToString([]byte(testSecret)) + `"}]}`))
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			j, err := NewJWT(context.Background(), JWTOptions{JWKS: srv.URL, Refresh: time.Hour})
			if err == nil {
				j.Close()
				t.Fatal("accepted")
			}
		})
	}
}

// A refresh that fails keeps the last keys.
func TestJWTJWKSURLKeepsKeysWhenDown(t *testing.T) {
	a := rsaKeys()[0]
	srv := newJWKSServer(t, jwksJSON(t, jwkset.AlgRS256, map[string]any{"a": &a.PublicKey}))
	j := newTestJWT(t, JWTOptions{JWKS: srv.URL, Refresh: 20 * time.Millisecond})
	srv.serve([]byte("oops"))
	n := srv.fetches.Load()
	testkit.Eventually(t, "two failed refreshes", func() bool { return srv.fetches.Load() >= n+2 })
	mustAccept(t, j, bearer(signJWT(t, jwt.SigningMethodRS256, a, testClaims(), "a")))
}

// Many requests at once, while the set is being refreshed: -race checks
// the parser and storage are shared safely.
func TestJWTConcurrentWithRefresh(t *testing.T) {
	a := rsaKeys()[0]
	srv := newJWKSServer(t, jwksJSON(t, jwkset.AlgRS256, map[string]any{"a": &a.PublicKey}))
	j := newTestJWT(t, JWTOptions{JWKS: srv.URL, Refresh: 2 * time.Millisecond})
	tok := signJWT(t, jwt.SigningMethodRS256, a, testClaims(), "a")
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var err error
			for range 25 {
				if _, err = j.Authenticate(context.Background(), bearer(tok)); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if srv.fetches.Load() < 2 {
		t.Log("no refresh happened during the requests") // still a valid run, just less racy
	}
}
