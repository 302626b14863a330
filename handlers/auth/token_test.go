package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestTokenSourceOrder(t *testing.T) {
	j := newTestJWT(t, JWTOptions{Key: testSecret, Cookie: "tok"})
	tok := func(sub string) string {
		return signJWT(t, jwt.SigningMethodHS256, []byte(testSecret), testClaims(func(c jwt.MapClaims) { c["sub"] = sub }), "")
	}
	header, cookie, query := tok("from-header"), tok("from-cookie"), tok("from-query")
	for _, tc := range []struct {
		name string
		r    jwtRequest
		want string
	}{
		{"header first", jwtRequest{
			header: map[string]string{"Authorization": "Bearer " + header},
			cookie: map[string]string{"tok": cookie}, query: map[string]string{"access_token": query},
		}, "from-header"},
		{"scheme in any case", jwtRequest{header: map[string]string{"Authorization": "bEARER  " + header}}, "from-header"},
		{"cookie before query", jwtRequest{
			cookie: map[string]string{"tok": cookie, "keyflux_token": header}, query: map[string]string{"access_token": query},
		}, "from-cookie"},
		{"query last", jwtRequest{
			cookie: map[string]string{"keyflux_token": header}, query: map[string]string{"access_token": query},
		}, "from-query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if id := mustAccept(t, j, tc.r); id.Subject != tc.want {
				t.Fatalf("subject %q, want %q", id.Subject, tc.want)
			}
		})
	}
}

func TestTokenSourceRefusals(t *testing.T) {
	j := newTestJWT(t, JWTOptions{Key: testSecret})
	good := signJWT(t, jwt.SigningMethodHS256, []byte(testSecret), testClaims(), "")
	withCookie := func(auth string) jwtRequest {
		return jwtRequest{header: map[string]string{"Authorization": auth}, cookie: map[string]string{DefaultJWTCookie: good}}
	}
	for _, tc := range []struct {
		name   string
		r      jwtRequest
		reason string
	}{
		// A broken header is refused, never replaced by the cookie.
		{"basic scheme", withCookie("Basic dXNlcjpwYXNz"), "Authorization header: not a Bearer token"},
		{"bearer without token", withCookie("Bearer"), "malformed token"},
		{"bearer and spaces", withCookie("Bearer   "), "malformed token"},
		{"token only", withCookie(good), "Authorization header: not a Bearer token"},
		{"oversized header", bearer(good + "." + strings.Repeat("A", maxTokenLength)), "token too long"},
		{"oversized cookie", jwtRequest{cookie: map[string]string{DefaultJWTCookie: strings.Repeat("A", maxTokenLength+1)}}, "token too long"},
		{"oversized query", jwtRequest{query: map[string]string{"access_token": strings.Repeat("A", maxTokenLength+1)}}, "token too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := j.Authenticate(context.Background(), tc.r)
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Reason != tc.reason {
				t.Fatalf("error %v, want reason %q", err, tc.reason)
			}
			if strings.Contains(err.Error(), good[len(good)-10:]) {
				t.Fatal("the error repeats the token")
			}
		})
	}
	// Exactly at the bound a token is parsed (and here refused as forged).
	mustRefuse(t, j, good[:strings.LastIndexByte(good, '.')+1]+strings.Repeat("A", maxTokenLength-strings.LastIndexByte(good, '.')-1), "signature invalid")
}

func TestTokenSourceNone(t *testing.T) {
	j := newTestJWT(t, JWTOptions{Key: testSecret})
	for _, r := range []jwtRequest{
		{},
		{cookie: map[string]string{"other": "x"}, query: map[string]string{"token": "x"}},
		{cookie: map[string]string{DefaultJWTCookie: ""}},
	} {
		if _, err := j.Authenticate(context.Background(), r); !errors.Is(err, ErrNoCredentials) || !IsUnauthenticated(err) {
			t.Fatalf("%+v: error %v, want ErrNoCredentials", r, err)
		}
	}
}
