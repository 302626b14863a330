package auth

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzJWTClaims feeds hostile keyflux claims (inside validly signed tokens)
// and hostile raw tokens (from every source) through Authenticate: nothing
// panics, every refusal is a 401, and a signed claim is accepted exactly
// when parseKeyflux accepts it, with scopes that hold the documented shape.
func FuzzJWTClaims(f *testing.F) {
	j, err := NewJWT(context.Background(), JWTOptions{Key: testSecret})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(j.Close)
	good := signJWT(f, jwt.SigningMethodHS256, []byte(testSecret), testClaims(), "")
	for _, seed := range []struct{ claim, token string }{
		{`{"keys":["user:42:*"],"db":[0]}`, good},
		{`{"keys":["user:42*"],"channels":["*"],"db":[65535]}`, "a.b.c"},
		{`{"db":[-1]}`, "eyJhbGciOiJub25lIn0.e30."},
		{`{"keys":[1]}`, "Bearer x"},
		{`null`, ""},
		{` {"keys":["a"]}`, "Bearer"},
		{`[]`, "...."},
		{`{"publish":["a*b"],"x":1}`, good + "x"},
	} {
		f.Add([]byte(seed.claim), seed.token)
	}
	f.Fuzz(func(t *testing.T, claim []byte, token string) {
		ctx := context.Background()
		for _, r := range []jwtRequest{
			bearer(token),
			{header: map[string]string{"Authorization": token}},
			{cookie: map[string]string{DefaultJWTCookie: token}},
			{query: map[string]string{AccessTokenParam: token}},
		} {
			if _, err := j.Authenticate(ctx, r); err != nil && !IsUnauthenticated(err) {
				t.Fatalf("error %v is not a 401", err)
			}
		}

		want, wantErr := parseKeyflux(claim)
		if wantErr == nil {
			for _, l := range []Selectors{want.Keys, want.Channels, want.Streams, want.Publish} {
				if _, err := ParseSelectors("x", l); err != nil {
					t.Fatalf("accepted selectors %q: %v", l, err)
				}
			}
			for _, db := range want.DB {
				if db < 0 || db > maxDB {
					t.Fatalf("accepted db %d", db)
				}
			}
			if want.AnyDB {
				t.Fatal("a claim granted every database")
			}
		}
		if !json.Valid(claim) {
			return
		}
		signed := signJWT(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{
			"sub": "fuzz", "keyflux": json.RawMessage(claim),
		}, "")
		id, err := j.Authenticate(ctx, bearer(signed))
		switch {
		case len(signed) > maxTokenLength:
			if err == nil {
				t.Fatal("an oversized token was accepted")
			}
		case (err == nil) != (wantErr == nil):
			t.Fatalf("Authenticate error %v, parseKeyflux error %v", err, wantErr)
		case err == nil && id.Subject != "fuzz":
			t.Fatalf("identity %+v", id)
		}
	})
}
