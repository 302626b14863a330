package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// tokenClaims is everything Keyflux reads from a token. Its size is bounded
// by maxTokenLength; the keyflux claim stays raw until the signature is
// checked, so a refusal of its content never happens for a forged token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Keyflux json.RawMessage `json:"keyflux"`
}

// keyfluxClaim is the "keyflux" claim:
// {"keys":[],"channels":[],"streams":[],"publish":[],"db":[]}.
type keyfluxClaim struct {
	Keys     []string `json:"keys"`
	Channels []string `json:"channels"`
	Streams  []string `json:"streams"`
	Publish  []string `json:"publish"`
	DB       []int    `json:"db"`
}

const maxDB = 65535

// parseKeyflux turns the raw claim into Scopes. No claim (or null) is empty
// scopes: the token proves who it is but may read nothing. Unknown fields
// are refused: a misspelt "key" would otherwise grant silently less and
// leave its author puzzled by 403s.
func parseKeyflux(raw json.RawMessage) (Scopes, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return Scopes{}, nil
	}
	if raw[0] != '{' {
		return Scopes{}, errors.New("keyflux claim: must be an object")
	}
	var c keyfluxClaim
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Scopes{}, fmt.Errorf("keyflux claim: %s", claimJSONError(err))
	}
	var s Scopes
	var err error
	for _, l := range []struct {
		name string
		in   []string
		out  *Selectors
	}{
		{"keys", c.Keys, &s.Keys},
		{"channels", c.Channels, &s.Channels},
		{"streams", c.Streams, &s.Streams},
		{"publish", c.Publish, &s.Publish},
	} {
		if *l.out, err = ParseSelectors(l.name, l.in); err != nil {
			return Scopes{}, fmt.Errorf("keyflux claim: %w", err)
		}
	}
	if len(c.DB) > maxSelectors {
		return Scopes{}, fmt.Errorf("keyflux claim: db: more than %d entries", maxSelectors)
	}
	for _, db := range c.DB {
		if db < 0 || db > maxDB {
			return Scopes{}, fmt.Errorf("keyflux claim: db: entries must be 0..%d", maxDB)
		}
	}
	s.DB = c.DB
	return s, nil
}

// claimJSONError says what is wrong without repeating the claim's text.
func claimJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "db" || len(te.Field) > 3 && te.Field[:3] == "db." {
			return fmt.Sprintf("db: entries must be integers 0..%d", maxDB)
		}
		return fmt.Sprintf("%s: must be a list of strings", te.Field)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return "not valid JSON"
	}
	if msg := err.Error(); len(msg) < 80 {
		return msg // "json: unknown field \"x\"": the name is the minter's own
	}
	return "not in the documented shape"
}
