package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyflux/keyflux/streams/testkit"
)

// signingKey is an RSA key with the kid its tokens name.
type signingKey struct {
	kid string
	key *rsa.PrivateKey
}

func newSigningKey(t *testing.T, kid string) signingKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid: kid, key: key}
}

// sign mints an RS256 token of claims(time.Hour) naming kid in its header.
func (s signingKey) sign(t *testing.T, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(time.Hour))
	tok.Header["kid"] = kid
	raw, err := tok.SignedString(s.key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// jwks is the JWK Set (RFC 7517) of the public halves of keys.
func jwks(t *testing.T, keys ...signingKey) []byte {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	for _, k := range keys {
		set.Keys = append(set.Keys, map[string]string{
			"kty": "RSA", "kid": k.kid, "alg": "RS256", "use": "sig",
			"n": b64(k.key.N.Bytes()), "e": b64(big.NewInt(int64(k.key.E)).Bytes()),
		})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksServer serves a JWK Set the test can swap, counting the fetches.
type jwksServer struct {
	URL     string
	mu      sync.Mutex
	body    []byte
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		b := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/.well-known/jwks.json"
	return s
}

func (s *jwksServer) serve(body []byte) {
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

const jwksStream = "/streams/keyspace?pattern=user:42:*"

// refused asserts that token cannot open the stream: 401 with a JSON error
// and WWW-Authenticate.
func refused(t *testing.T, k *keyflux, token, what string) {
	t.Helper()
	status, h, body := k.call("GET", jwksStream, token)
	if status != 401 || body["error"] == nil || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("%s: %d %v %v, want 401 with a JSON error", what, status, h.Get("WWW-Authenticate"), body)
	}
}

// TestAuthJWKSURLRotation: keys rotate at the JWKS URL without restarting
// Keyflux. A token of the new key's kid makes Keyflux fetch the set again
// (once: early fetches for unknown kids are rate-limited), after which the
// old key, gone from the set, verifies nothing.
func TestAuthJWKSURLRotation(t *testing.T) {
	a, b := newSigningKey(t, "a"), newSigningKey(t, "b")
	srv := newJWKSServer(t, jwks(t, a))
	k := startKeyflux(t, keyspaceFlags, "--auth", "jwt", "--jwt-jwks", srv.URL)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(k.logs.String())
		}
	})
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("Keyflux fetched the JWKS %d times at start, want 1", n)
	}
	oldToken := a.sign(t, "a")
	s := k.open(jwksStream, "Authorization", "Bearer "+oldToken)
	s.Expect("connected")
	s.Close()
	// (No token of an unknown kid before the rotation: it would spend the
	// one early fetch the limiter allows a minute.)

	srv.serve(jwks(t, b))
	// Its unknown kid makes Keyflux fetch the set now; await the answer.
	newToken := b.sign(t, "b")
	testkit.Eventually(t, "a token of key b accepted after the rotation", func() bool {
		status, _, _ := k.call("GET", jwksStream, newToken)
		return status == 200
	})
	s = k.open(jwksStream, "Authorization", "Bearer "+newToken)
	s.Expect("connected")
	s.Close()
	// The fetch that found b replaced the whole set: a is gone.
	testkit.Eventually(t, "a token of key a refused after the rotation", func() bool {
		status, _, _ := k.call("GET", jwksStream, oldToken)
		return status == 401
	})
	refused(t, k, oldToken, "key a after the rotation")
	refused(t, k, a.sign(t, "b"), "key a naming kid b")
	// The unknown kid "a" did not make Keyflux fetch again within the
	// minute: one fetch at start, one for kid b.
	refused(t, k, a.sign(t, "c"), "an unknown kid c")
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("Keyflux fetched the JWKS %d times, want 2 (start, then once for kid b)", n)
	}
}

// TestAuthJWKSFile: a JWKS file's RS256 key verifies tokens naming its kid;
// another kid, or the right kid signed by another key, is refused.
func TestAuthJWKSFile(t *testing.T) {
	a, b := newSigningKey(t, "a"), newSigningKey(t, "b")
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwks(t, a), 0o600); err != nil {
		t.Fatal(err)
	}
	k := startKeyflux(t, keyspaceFlags, "--auth", "jwt", "--jwt-jwks", path)
	s := k.open(jwksStream, "Authorization", "Bearer "+a.sign(t, "a"))
	s.Expect("connected")
	k.do("SET", "user:42:x", "1")
	if d := testkit.Data(t, s.Expect("set")); d["key"] != "user:42:x" {
		t.Errorf("set event %v", d)
	}
	refused(t, k, b.sign(t, "b"), "a kid the file does not have")
	refused(t, k, b.sign(t, "a"), "kid a signed by another key")
	refused(t, k, a.sign(t, ""), "an empty kid")
}

// TestAuthJWKSFileRotation: a JWKS file rewritten with another key is
// picked up at the next --jwt-jwks-refresh, without a restart.
func TestAuthJWKSFileRotation(t *testing.T) {
	a, b := newSigningKey(t, "a"), newSigningKey(t, "b")
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, jwks(t, a), 0o600); err != nil {
		t.Fatal(err)
	}
	k := startKeyflux(t, keyspaceFlags, "--auth", "jwt", "--jwt-jwks", path, "--jwt-jwks-refresh", "200ms")
	k.open(jwksStream, "Authorization", "Bearer "+a.sign(t, "a")).Expect("connected")
	// Swapped atomically, as the docs advise.
	tmp := filepath.Join(dir, "jwks.json.new")
	if err := os.WriteFile(tmp, jwks(t, b), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	tokenB, tokenA := b.sign(t, "b"), a.sign(t, "a")
	testkit.Eventually(t, "key b accepted and key a refused", func() bool {
		sb, _, _ := k.call("GET", "/api/identity", tokenB)
		sa, _, _ := k.call("GET", "/api/identity", tokenA)
		return sb == 200 && sa == 401
	})
	k.open(jwksStream, "Authorization", "Bearer "+tokenB).Expect("connected")
}
