package auth

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestParseKeyflux(t *testing.T) {
	s, err := parseKeyflux(json.RawMessage(`{"keys":["user:42*","job:42"],"channels":["*"],"streams":[],"db":[0,65535]}`))
	if err != nil {
		t.Fatal(err)
	}
	// "user:42*" is a valid selector; that it does not contain "user:42:*"
	// globs is scope.go's business.
	if !slices.Equal(s.Keys, Selectors{"user:42*", "job:42"}) || !slices.Equal(s.Channels, All) ||
		len(s.Streams) != 0 || s.Publish != nil || !slices.Equal(s.DB, []int{0, 65535}) || s.AnyDB {
		t.Fatalf("scopes %+v", s)
	}
	for _, raw := range []string{"", "null", "{}"} {
		s, err := parseKeyflux(json.RawMessage(raw))
		if err != nil || len(s.Keys)+len(s.Channels)+len(s.Streams)+len(s.Publish)+len(s.DB) != 0 || s.AnyDB {
			t.Fatalf("%q: scopes %+v, error %v; want nothing allowed", raw, s, err)
		}
		if s.AllowsDB(1, 0) || s.Keys.AllowsName("a") {
			t.Fatalf("%q allows something", raw)
		}
	}
}

func TestParseKeyfluxRefusals(t *testing.T) {
	for raw, want := range map[string]string{
		`"keys"`:               "must be an object",
		`["keys"]`:             "must be an object",
		`{"keys":"user:*"}`:    "keys: must be a list of strings",
		`{"keys":[1]}`:         "keys: must be a list of strings",
		`{"channels":["a*b"]}`: "'*' may only end an entry",
		`{"streams":[""]}`:     "empty",
		`{"publish":["**"]}`:   "'*' may only end an entry",
		`{"db":[-1]}`:          "db: entries must be 0..65535",
		`{"db":[65536]}`:       "db: entries must be 0..65535",
		`{"db":[1.5]}`:         "db: entries must be integers",
		`{"db":[1e30]}`:        "db: entries must be integers",
		`{"db":["0"]}`:         "db: entries must be integers",
		`{"db":0}`:             "db: entries must be integers",
		`{"key":["user:*"]}`:   `unknown field "key"`,
		`{"keys":[` + strings.Repeat(`"a",`, maxSelectors) + `"a"]}`: "more than",
	} {
		_, err := parseKeyflux(json.RawMessage(raw))
		if err == nil || !strings.HasPrefix(err.Error(), "keyflux claim: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40s: error %v, want one containing %q", raw, err, want)
		}
	}
}

// A token whose keyflux claim is invalid is a 401 with the reason; one
// without the claim is a valid identity that may use nothing.
func TestJWTKeyfluxClaim(t *testing.T) {
	j := newTestJWT(t, JWTOptions{Key: testSecret})
	bad := signJWT(t, jwt.SigningMethodHS256, []byte(testSecret), testClaims(func(c jwt.MapClaims) {
		c["keyflux"] = map[string]any{"keys": []string{"user:*:42"}}
	}), "")
	_, err := j.Authenticate(context.Background(), bearer(bad))
	var ie *InvalidError
	if !errors.As(err, &ie) || !strings.HasPrefix(ie.Reason, "keyflux claim: keys: ") {
		t.Fatalf("error %v, want a keyflux claim refusal", err)
	}
	id := mustAccept(t, j, bearer(signJWT(t, jwt.SigningMethodHS256, []byte(testSecret),
		testClaims(func(c jwt.MapClaims) { delete(c, "keyflux") }), "")))
	if len(id.Scopes.Keys)+len(id.Scopes.Channels)+len(id.Scopes.Streams)+len(id.Scopes.Publish) != 0 || id.Scopes.AnyDB {
		t.Fatalf("no claim must allow nothing, got %+v", id.Scopes)
	}
	// A forged token with a bad claim is refused for its signature: the
	// claim is only read once the signature holds.
	mustRefuse(t, j, signJWT(t, jwt.SigningMethodHS256, []byte(testSecret+"x"), testClaims(func(c jwt.MapClaims) {
		c["keyflux"] = "nonsense"
	}), ""), "signature invalid")
}
