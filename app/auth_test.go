package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/keyflux/keyflux/streams/testkit"
)

// issuer mints RS256 tokens for a Keyflux started with --jwt-public-key.
type issuer struct {
	t       *testing.T
	key     *rsa.PrivateKey
	pemPath string
	pemData []byte
}

const (
	testIssuer   = "https://login.example.test"
	testAudience = "keyflux"
)

func newIssuer(t *testing.T) *issuer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path := filepath.Join(t.TempDir(), "public.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return &issuer{t: t, key: key, pemPath: path, pemData: data}
}

// flags start Keyflux trusting this issuer.
func (i *issuer) flags() []string {
	return []string{"--auth", "jwt", "--jwt-public-key", i.pemPath,
		"--jwt-issuer", testIssuer, "--jwt-audience", testAudience}
}

// claims are a valid token's for tenant 42, living for ttl.
func claims(ttl time.Duration) jwt.MapClaims {
	return jwt.MapClaims{
		"sub": "42", "iss": testIssuer, "aud": testAudience,
		"exp": time.Now().Add(ttl).Unix(), "nbf": time.Now().Add(-time.Minute).Unix(),
		"keyflux": map[string]any{
			"keys": []string{"user:42:*", "job:42"}, "channels": []string{"news", "chat:42:*"},
			"streams": []string{"audit:42"}, "db": []int{0}, "publish": []string{"chat:42:*"},
		},
	}
}

func (i *issuer) sign(c jwt.MapClaims) string {
	i.t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(i.key)
	if err != nil {
		i.t.Fatal(err)
	}
	return s
}

// refusedTokens are tokens Keyflux must answer with 401, by what is wrong.
func (i *issuer) refusedTokens() map[string]string {
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	wrongSig, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(time.Hour)).SignedString(other)
	// alg none: no signature at all.
	b64 := base64.RawURLEncoding.EncodeToString
	body, _ := json.Marshal(claims(time.Hour))
	none := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64(body) + "."
	// Algorithm confusion: HMAC keyed with the public key everybody has.
	confused, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(time.Hour)).SignedString(i.pemData)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es256, _ := jwt.NewWithClaims(jwt.SigningMethodES256, claims(time.Hour)).SignedString(ec)
	expired := claims(-2 * time.Minute) // past the 30 s leeway
	notYet := claims(time.Hour)
	notYet["nbf"] = time.Now().Add(2 * time.Minute).Unix()
	wrongIss := claims(time.Hour)
	wrongIss["iss"] = "https://evil.example.test"
	wrongAud := claims(time.Hour)
	wrongAud["aud"] = "someone-else"
	return map[string]string{
		"wrong signature":      wrongSig,
		"alg none":             none,
		"hmac with public key": confused,
		"other algorithm":      es256,
		"expired":              i.sign(expired),
		"not yet valid":        i.sign(notYet),
		"wrong iss":            i.sign(wrongIss),
		"wrong aud":            i.sign(wrongAud),
		"garbage":              "not.a.token",
	}
}

// call makes one request with an optional bearer token.
func (k *keyflux) call(method, path, token string) (int, http.Header, map[string]any) {
	k.t.Helper()
	body := ""
	if method == "POST" {
		body = `{"n":1}`
	}
	resp, m := k.request(method, path, body, "Authorization", bearer(token))
	return resp.StatusCode, resp.Header, m
}

func sub(s string) string { return url.QueryEscape(s) }

// endpoint is one route, with a request inside the token's scopes and
// requests just outside them.
type endpoint struct {
	name, method, inside string
	outside              []string
}

var authEndpoints = []endpoint{
	{"keyspace", "GET", "/streams/keyspace?pattern=user:42:*", []string{
		"/streams/keyspace?pattern=user:42*",              // matches user:420
		"/streams/keyspace?pattern=" + sub("user:4[2]:*"), // not provable
		"/streams/keyspace?pattern=" + sub(`user:42\:*`),  // an escape is not a literal start
		"/streams/keyspace?pattern=user:42:*&db=1",        // another database
		"/streams/keyspace?pattern=*",                     // everything
		"/streams/keyspace?pattern=job:4?",                // job:42 is a name, not a prefix
	}},
	{"key watch", "GET", "/streams/keys?key=user:42:a&key=job:42", []string{
		"/streams/keys?key=user:42:a&key=job:420",
		"/streams/keys?key=user:43:a",
	}},
	{"values", "GET", "/streams/keyspace?pattern=job:42&values=true", []string{
		"/streams/keyspace?pattern=job:*&values=true",
	}},
	{"api keys", "GET", "/api/keys/user:42:a", []string{"/api/keys/user:43:a", "/api/keys/job:420"}},
	{"channels", "GET", "/streams/channels/news", []string{
		"/streams/channels/news2",
		"/streams/channels?pattern=chat:42*",
		"/streams/channels?pattern=new?",
	}},
	{"stream log", "GET", "/streams/log/audit:42", []string{"/streams/log/audit:43", "/streams/log/user:42:x"}},
	{"combined", "GET", "/streams?sub=" + sub("a:keyspace?pattern=user:42:*") + "&sub=" + sub("b:channels/news"), []string{
		"/streams?sub=" + sub("a:keyspace?pattern=user:42:*") + "&sub=" + sub("b:channels/chat:43:x"),
		"/streams?sub=" + sub("a:keys?key=job:42") + "&sub=" + sub("b:keyspace?pattern=user:*"),
	}},
	{"publish", "POST", "/api/channels/chat:42:x", []string{"/api/channels/news", "/api/log/chat:43:x"}},
}

// TestAuthEveryEndpoint walks every endpoint through every refusal of
// --auth jwt: no identity, each kind of bad token (401), each scope trap
// (403, with nothing subscribed), then the same requests inside the scopes.
func TestAuthEveryEndpoint(t *testing.T) {
	iss := newIssuer(t)
	k := startKeyflux(t, keyspaceFlags, append(iss.flags(), "--expose-db", "0,1")...)
	bad := iss.refusedTokens()
	for _, e := range authEndpoints {
		paths := append([]string{e.inside}, e.outside...)
		for _, p := range paths {
			status, h, body := k.call(e.method, p, "")
			if status != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") || body["error"] == nil {
				t.Errorf("%s %s without a token: %d %v, WWW-Authenticate %q", e.method, p, status, body, h.Get("WWW-Authenticate"))
			}
		}
		for what, tok := range bad {
			if status, _, body := k.call(e.method, e.inside, tok); status != 401 {
				t.Errorf("%s %s with a token (%s): %d %v, want 401", e.method, e.inside, what, status, body)
			}
		}
		good := iss.sign(claims(time.Hour))
		for _, p := range e.outside {
			if status, _, body := k.call(e.method, p, good); status != 403 || body["error"] == nil {
				t.Errorf("%s %s outside the scopes: %d %v, want 403", e.method, p, status, body)
			}
		}
	}
	if topics, clients, numpat, numsub := k.srv.hub.Topics(), k.srv.sink.Clients(), k.numpat(), k.numsub("news"); topics+clients != 0 || numpat+numsub != 0 {
		t.Fatalf("refused requests left %d topics, %d clients, %d patterns, %d channel subscriptions", topics, clients, numpat, numsub)
	}
	if t.Failed() {
		return
	}

	good := iss.sign(claims(time.Hour))
	bearer := []string{"Authorization", "Bearer " + good}
	// Inside the scopes: 200 and events.
	ks := k.open("/streams/keyspace?pattern=user:42:*", bearer...)
	ks.Expect("connected")
	kw := k.open("/streams/keys?key=user:42:a&key=job:42", bearer...)
	kw.Expect("connected")
	vals := k.open("/streams/keyspace?pattern=job:42&values=true", bearer...)
	vals.Expect("connected")
	ch := k.open("/streams/channels/news", bearer...)
	ch.Expect("connected")
	k.do("XADD", "audit:42", "*", "what", "login")
	lg := k.open("/streams/log/audit:42?backlog=1", bearer...)
	lg.Expect("connected")
	if ev := lg.Expect("entry"); !strings.Contains(ev.Data, "login") {
		t.Errorf("log entry %s", ev.Data)
	}
	cb := k.open("/streams?sub="+sub("a:keyspace?pattern=user:42:*")+"&sub="+sub("b:channels/news"), bearer...)
	cb.Expect("connected")
	cb.Expect("connected")
	for _, s := range []*testkit.Stream{kw, kw} {
		s.Expect("snapshot")
	}
	k.do("SET", "user:42:a", "1")
	if d := testkit.Data(t, ks.Expect("set")); d["key"] != "user:42:a" {
		t.Errorf("keyspace event %v", d)
	}
	if d := testkit.Data(t, kw.Expect("update")); d["key"] != "user:42:a" {
		t.Errorf("key watch update %v", d)
	}
	k.do("SET", "job:42", "done")
	if d := testkit.Data(t, vals.Expect("set")); d["value"] != "done" {
		t.Errorf("values event %v", d)
	}
	if status, _, body := k.call("GET", "/api/keys/job:42", good); status != 200 || body["value"] != "done" {
		t.Errorf("/api/keys/job:42: %d %v", status, body)
	}
	if status, _, body := k.call("POST", "/api/channels/chat:42:x", good); status != 200 {
		t.Errorf("publish inside the scopes: %d %v", status, body)
	}
	k.do("PUBLISH", "news", "hello")
	if ev := ch.Expect("message"); !strings.Contains(ev.Data, "hello") {
		t.Errorf("channel message %s", ev.Data)
	}
	if d := testkit.Data(t, cb.Expect("set")); d["sub"] != "a" || d["data"].(map[string]any)["key"] != "user:42:a" {
		t.Errorf("combined event %v", d)
	}
}

// TestAuthTokenSources: the cookie and ?access_token carry a token as well
// as the header, and the header wins.
func TestAuthTokenSources(t *testing.T) {
	iss := newIssuer(t)
	k := startKeyflux(t, keyspaceFlags, iss.flags()...)
	good := iss.sign(claims(time.Hour))
	k.open("/streams/keyspace?pattern=user:42:*", "Cookie", "keyflux_token="+good).Expect("connected")
	k.open("/streams/keyspace?pattern=user:42:*&access_token=" + good).Expect("connected")
	// A bad header is not rescued by a good cookie.
	if status, _, _ := k.call("GET", "/api/keys/job:42?access_token="+good, "not.a.token"); status != 401 {
		t.Errorf("a bad Authorization header with a good access_token: %d, want 401", status)
	}
	if strings.Contains(k.logs.String(), good) {
		t.Error("the token reached the logs")
	}
	status, body := k.get("/api/identity?access_token=" + good)
	if status != 200 || body["auth"] != "jwt" || body["subject"] != "42" || body["expires"] == nil {
		t.Errorf("/api/identity: %d %v", status, body)
	}
	status, body = k.get("/api/identity")
	if status != 401 || body["auth"] != "jwt" || body["cookie"] != "keyflux_token" {
		t.Errorf("/api/identity without a token: %d %v", status, body)
	}
}

// TestAuthTokenExpiresDuringStream: at exp the stream gets auth-expired and
// closes; a reconnect with a fresh token resumes with nothing missed.
func TestAuthTokenExpiresDuringStream(t *testing.T) {
	iss := newIssuer(t)
	k := startKeyflux(t, keyspaceFlags, append(iss.flags(), "--linger", "1m")...)
	exp := time.Now().Add(3 * time.Second).Truncate(time.Second) // 2 to 3 s: opened well before
	c := claims(0)
	c["exp"] = exp.Unix()
	s := k.open("/streams/keyspace?pattern=user:42:*", "Authorization", "Bearer "+iss.sign(c))
	s.Expect("connected")
	k.do("SET", "user:42:a", "1")
	s.Expect("set")
	ev := s.Expect("auth-expired")
	if late := time.Since(exp); late > time.Second || late < 0 {
		t.Errorf("auth-expired came %v after exp", late)
	}
	if d := testkit.Data(t, ev); d["reason"] != "token-expired" {
		t.Errorf("auth-expired data %v", d)
	}
	s.Ended()
	// Missed while away, then resumed with a fresh token.
	k.do("SET", "user:42:b", "2")
	k.do("DEL", "user:42:a")
	r := k.open("/streams/keyspace?pattern=user:42:*", "Authorization", "Bearer "+iss.sign(claims(time.Hour)),
		"Last-Event-ID", s.LastID)
	r.Expect("connected")
	if d := testkit.Data(t, r.Expect("set")); d["key"] != "user:42:b" {
		t.Errorf("resumed with %v", d)
	}
	if d := testkit.Data(t, r.Expect("del")); d["key"] != "user:42:a" {
		t.Errorf("resumed with %v", d)
	}
	// A token already past exp cannot open a stream, even inside the leeway.
	late := claims(0)
	late["exp"] = time.Now().Add(-5 * time.Second).Unix()
	if status, _, body := k.call("GET", "/streams/keyspace?pattern=user:42:*", iss.sign(late)); status != 401 {
		t.Errorf("a stream with an expired token inside the leeway: %d %v", status, body)
	}
}

// TestAuthNoneWarnsOffLoopback: --auth none on an address others can reach
// says so at start; on loopback it does not.
func TestAuthNoneWarnsOffLoopback(t *testing.T) {
	const warning = "--auth none on a non-loopback address"
	k := startKeyflux(t, nil)
	if strings.Contains(k.logs.String(), warning) {
		t.Error("warned on loopback")
	}
	k = startKeyflux(t, nil, "--listen", "0.0.0.0:0")
	if !strings.Contains(k.logs.String(), warning) {
		t.Errorf("no warning on 0.0.0.0:\n%s", k.logs)
	}
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "localhost:1": true,
		":8080": false, "0.0.0.0:1": false, "10.0.0.1:1": false, "example.test:1": false} {
		if loopback(addr) != want {
			t.Errorf("loopback(%q) = %v", addr, !want)
		}
	}
}
