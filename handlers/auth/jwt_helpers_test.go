package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// jwtRequest is an HTTP request as Authenticate sees it.
type jwtRequest struct{ header, cookie, query map[string]string }

func (r jwtRequest) Header(n string) string { return r.header[n] }
func (r jwtRequest) Cookie(n string) string { return r.cookie[n] }
func (r jwtRequest) Query(n string) string  { return r.query[n] }

func bearer(token string) jwtRequest {
	return jwtRequest{header: map[string]string{"Authorization": "Bearer " + token}}
}

const testSecret = "0123456789abcdef0123456789abcdef-test"

// Test keys, generated once: RSA generation is slow under -race.
var (
	rsaKeys = sync.OnceValue(func() [2]*rsa.PrivateKey {
		var k [2]*rsa.PrivateKey
		for i := range k {
			var err error
			if k[i], err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				panic(err)
			}
		}
		return k
	})
	ecKey = sync.OnceValue(func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
	edKey = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

// claims returns valid claims for sub with a keyflux claim, changed by
// the given edits.
func testClaims(edits ...func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "user-42",
		"exp": time.Now().Add(time.Hour).Unix(),
		"keyflux": map[string]any{
			"keys": []string{"user:42:*"}, "channels": []string{"chat:42:*"},
			"streams": []string{"audit:42"}, "publish": []string{"chat:42:*"}, "db": []int{0, 2},
		},
	}
	for _, e := range edits {
		e(c)
	}
	return c
}

func signJWT(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writePEM writes a public key (PKIX) to a file and returns its path.
func writePEM(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// jwksJSON is a JWK Set of the public halves of keys, named by kid.
func jwksJSON(t testing.TB, alg jwkset.ALG, keys map[string]any) []byte {
	t.Helper()
	var set jwkset.JWKSMarshal
	for kid, k := range keys {
		j, err := jwkset.NewJWKFromKey(k, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: kid, ALG: alg, USE: jwkset.UseSig,
		}})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, j.Marshal())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestJWT(t *testing.T, o JWTOptions) *JWT {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	j, err := NewJWT(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.Close)
	return j
}

// mustAccept authenticates r and fails unless it is accepted.
func mustAccept(t *testing.T, j *JWT, r Request) *Identity {
	t.Helper()
	id, err := j.Authenticate(context.Background(), r)
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	return id
}

// mustRefuse authenticates a bearer token and fails unless it is refused
// with reason, in an error that does not repeat the token.
func mustRefuse(t *testing.T, j *JWT, token, reason string) {
	t.Helper()
	id, err := j.Authenticate(context.Background(), bearer(token))
	var ie *InvalidError
	if !errors.As(err, &ie) {
		t.Fatalf("got identity %v, error %v; want refusal %q", id, err, reason)
	}
	if ie.Reason != reason {
		t.Fatalf("reason %q, want %q", ie.Reason, reason)
	}
	if !IsUnauthenticated(err) {
		t.Fatal("a refusal must be a 401")
	}
	if len(token) > 10 && strings.Contains(err.Error(), token[len(token)-10:]) {
		t.Fatal("the error repeats the token")
	}
}
