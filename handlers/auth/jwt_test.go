package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestJWTAcceptsEachKeyType(t *testing.T) {
	rsaKey, ec, ed := rsaKeys()[0], ecKey(), edKey()
	for _, tc := range []struct {
		name   string
		opts   JWTOptions
		method jwt.SigningMethod
		key    any
	}{
		{"HS256", JWTOptions{Key: testSecret}, jwt.SigningMethodHS256, []byte(testSecret)},
		{"HS512", JWTOptions{Key: testSecret}, jwt.SigningMethodHS512, []byte(testSecret)},
		{"RS256", JWTOptions{PublicKey: writePEM(t, &rsaKey.PublicKey)}, jwt.SigningMethodRS256, rsaKey},
		{"PS384", JWTOptions{PublicKey: writePEM(t, &rsaKey.PublicKey)}, jwt.SigningMethodPS384, rsaKey},
		{"ES256", JWTOptions{PublicKey: writePEM(t, &ec.PublicKey)}, jwt.SigningMethodES256, ec},
		{"EdDSA", JWTOptions{PublicKey: writePEM(t, ed.Public())}, jwt.SigningMethodEdDSA, ed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newTestJWT(t, tc.opts)
			if j.Mode() != ModeJWT {
				t.Fatalf("Mode %q", j.Mode())
			}
			exp := time.Now().Add(time.Hour).Truncate(time.Second)
			id := mustAccept(t, j, bearer(signJWT(t, tc.method, tc.key, testClaims(func(c jwt.MapClaims) {
				c["exp"] = exp.Unix()
			}), "")))
			if id.Mode != ModeJWT || id.Subject != "user-42" || !id.Expires.Equal(exp) {
				t.Fatalf("identity %+v", id)
			}
			s := id.Scopes
			if !slices.Equal(s.Keys, Selectors{"user:42:*"}) || !slices.Equal(s.Channels, Selectors{"chat:42:*"}) ||
				!slices.Equal(s.Streams, Selectors{"audit:42"}) || !slices.Equal(s.Publish, Selectors{"chat:42:*"}) ||
				!slices.Equal(s.DB, []int{0, 2}) || s.AnyDB {
				t.Fatalf("scopes %+v", s)
			}
		})
	}
}

// A PEM file may hold a PKCS#1 RSA key or a certificate instead of PKIX.
func TestJWTPublicKeyPEMForms(t *testing.T) {
	k := rsaKeys()[0]
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	token := signJWT(t, jwt.SigningMethodRS256, k, testClaims(), "")
	for name, block := range map[string]*pem.Block{
		"pkcs1": {Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.PublicKey)},
		"cert":  {Type: "CERTIFICATE", Bytes: cert},
	} {
		t.Run(name, func(t *testing.T) {
			j := newTestJWT(t, JWTOptions{PublicKey: writeFile(t, "k.pem", pem.EncodeToMemory(block))})
			mustAccept(t, j, bearer(token))
		})
	}
}

func TestJWTRefusals(t *testing.T) {
	rsaKey, other, ec := rsaKeys()[0], rsaKeys()[1], ecKey()
	pemPath := writePEM(t, &rsaKey.PublicKey)
	pemBytes, err := os.ReadFile(pemPath)
	if err != nil {
		t.Fatal(err)
	}
	rsaJWT := newTestJWT(t, JWTOptions{PublicKey: pemPath})
	ecJWT := newTestJWT(t, JWTOptions{PublicKey: writePEM(t, &ec.PublicKey)})
	hmacJWT := newTestJWT(t, JWTOptions{Key: testSecret})
	none := signJWT(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, testClaims(), "")
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token, reason string
		j                   *JWT
	}{
		{"wrong signature", signJWT(t, jwt.SigningMethodRS256, other, testClaims(), ""), "signature invalid", rsaJWT},
		{"wrong secret", signJWT(t, jwt.SigningMethodHS256, []byte(testSecret+"x"), testClaims(), ""), "signature invalid", hmacJWT},
		{"alg none vs public key", none, "algorithm not allowed", rsaJWT},
		{"alg none vs secret", none, "algorithm not allowed", hmacJWT},
		// The classic confusion: the public key's PEM bytes as an HMAC secret.
		{"HS256 with the public key as secret", signJWT(t, jwt.SigningMethodHS256, pemBytes, testClaims(), ""), "algorithm not allowed", rsaJWT},
		{"RS256 vs secret", signJWT(t, jwt.SigningMethodRS256, rsaKey, testClaims(), ""), "algorithm not allowed", hmacJWT},
		{"ES384 vs P-256 key", signJWT(t, jwt.SigningMethodES384, p384, testClaims(), ""), "algorithm not allowed", ecJWT},
		{"RS256 vs EC key", signJWT(t, jwt.SigningMethodRS256, rsaKey, testClaims(), ""), "algorithm not allowed", ecJWT},
		{"expired", signJWT(t, jwt.SigningMethodRS256, rsaKey, testClaims(func(c jwt.MapClaims) {
			c["exp"] = time.Now().Add(-time.Minute).Unix()
		}), ""), "token expired", rsaJWT},
		{"not valid yet", signJWT(t, jwt.SigningMethodRS256, rsaKey, testClaims(func(c jwt.MapClaims) {
			c["nbf"] = time.Now().Add(time.Minute).Unix()
		}), ""), "token not valid yet", rsaJWT},
		{"two segments", "abc.def", "malformed token", rsaJWT},
		{"garbage", "a.b.c", "malformed token", rsaJWT},
		{"exp not a number", signJWT(t, jwt.SigningMethodHS256, []byte(testSecret), testClaims(func(c jwt.MapClaims) {
			c["exp"] = "tomorrow"
		}), ""), "malformed token", hmacJWT},
		{"critical header", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, testClaims())
			tok.Header["crit"] = []string{"exp"}
			s, _ := tok.SignedString(rsaKey)
			return s
		}(), "malformed token", rsaJWT},
		{"tampered payload", tamper(signJWT(t, jwt.SigningMethodRS256, rsaKey, testClaims(), "")), "signature invalid", rsaJWT},
	} {
		t.Run(tc.name, func(t *testing.T) { mustRefuse(t, tc.j, tc.token, tc.reason) })
	}
}

// tamper swaps the payload for one that grants everything, keeping the
// header and signature.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	c := testClaims(func(c jwt.MapClaims) { c["keyflux"] = map[string]any{"keys": []string{"*"}} })
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte("x"))
	parts[1] = strings.Split(forged, ".")[1]
	return strings.Join(parts, ".")
}

func TestJWTLeeway(t *testing.T) {
	strict := newTestJWT(t, JWTOptions{Key: testSecret})
	lenient := newTestJWT(t, JWTOptions{Key: testSecret, Leeway: 30 * time.Second})
	at := func(claim string, d time.Duration) string {
		return signJWT(t, jwt.SigningMethodHS256, []byte(testSecret), testClaims(func(c jwt.MapClaims) {
			c[claim] = time.Now().Add(d).Unix()
		}), "")
	}
	expiredLately, startsSoon := at("exp", -10*time.Second), at("nbf", 10*time.Second)
	mustRefuse(t, strict, expiredLately, "token expired")
	mustRefuse(t, strict, startsSoon, "token not valid yet")
	id := mustAccept(t, lenient, bearer(expiredLately))
	if !id.Expires.Before(time.Now()) {
		t.Fatal("Expires must stay the token's exp, not exp plus leeway")
	}
	mustAccept(t, lenient, bearer(startsSoon))
	mustRefuse(t, lenient, at("exp", -40*time.Second), "token expired")
	mustRefuse(t, lenient, at("nbf", 40*time.Second), "token not valid yet")
}

func TestJWTIssuerAudience(t *testing.T) {
	j := newTestJWT(t, JWTOptions{Key: testSecret, Issuer: "https://auth.example", Audience: "keyflux"})
	tok := func(iss string, aud any) string {
		return signJWT(t, jwt.SigningMethodHS256, []byte(testSecret), testClaims(func(c jwt.MapClaims) {
			if iss != "" {
				c["iss"] = iss
			}
			if aud != nil {
				c["aud"] = aud
			}
		}), "")
	}
	mustAccept(t, j, bearer(tok("https://auth.example", "keyflux")))
	mustAccept(t, j, bearer(tok("https://auth.example", []string{"other", "keyflux"})))
	mustRefuse(t, j, tok("https://evil.example", "keyflux"), "wrong issuer")
	mustRefuse(t, j, tok("", "keyflux"), "wrong issuer")
	mustRefuse(t, j, tok("https://auth.example", "other"), "wrong audience")
	mustRefuse(t, j, tok("https://auth.example", nil), "wrong audience")

	// Unset, neither is checked.
	mustAccept(t, newTestJWT(t, JWTOptions{Key: testSecret}), bearer(tok("anyone", "anything")))
}

// A token without exp is valid until the key changes: its streams never end
// by time (documented).
func TestJWTWithoutExp(t *testing.T) {
	j := newTestJWT(t, JWTOptions{Key: testSecret})
	id := mustAccept(t, j, bearer(signJWT(t, jwt.SigningMethodHS256, []byte(testSecret),
		testClaims(func(c jwt.MapClaims) { delete(c, "exp") }), "")))
	if !id.Expires.IsZero() {
		t.Fatalf("Expires %v, want zero", id.Expires)
	}
}

func TestJWTSecretFromFile(t *testing.T) {
	j := newTestJWT(t, JWTOptions{Key: "@" + writeFile(t, "secret", []byte(testSecret+"\r\n"))})
	mustAccept(t, j, bearer(signJWT(t, jwt.SigningMethodHS256, []byte(testSecret), testClaims(), "")))
	mustRefuse(t, j, signJWT(t, jwt.SigningMethodHS256, []byte(testSecret+"\r\n"), testClaims(), ""), "signature invalid")
}

func TestNewJWTRefusesBadConfig(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(ecKey())
	if err != nil {
		t.Fatal(err)
	}
	pub := writePEM(t, &ecKey().PublicKey)
	for name, o := range map[string]JWTOptions{
		"nothing":          {},
		"two keys":         {Key: testSecret, PublicKey: pub},
		"short secret":     {Key: "short"},
		"short file":       {Key: "@" + writeFile(t, "s", []byte("short\n"))},
		"missing file":     {Key: "@/nonexistent/secret"},
		"private key":      {PublicKey: writeFile(t, "p.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))},
		"not PEM":          {PublicKey: writeFile(t, "x.pem", []byte("hello"))},
		"RSA 1024":         {PublicKey: writePEM(t, &weak.PublicKey)},
		"P-224":            {PublicKey: writePEM(t, &p224.PublicKey)},
		"negative leeway":  {Key: testSecret, Leeway: -time.Second},
		"JWKS not a set":   {JWKS: writeFile(t, "j.json", []byte(`{"keys": 3}`))},
		"JWKS empty":       {JWKS: writeFile(t, "j.json", []byte(`{"keys": []}`))},
		"JWKS bad URL":     {JWKS: "http://"},
		"JWKS missing":     {JWKS: "/nonexistent/jwks.json"},
		"JWKS unreachable": {JWKS: "http://127.0.0.1:1/jwks.json"},
	} {
		t.Run(name, func(t *testing.T) {
			j, err := NewJWT(context.Background(), o)
			if err == nil {
				j.Close()
				t.Fatal("accepted")
			}
			if errors.Is(err, ErrNoCredentials) {
				t.Fatal("a config error must not look like a request error")
			}
		})
	}
}
