package auth

import "strings"

// maxTokenLength bounds what one token may cost to parse; real tokens with
// a keyflux claim are well under 2 KiB.
const maxTokenLength = 8 << 10

// Query parameter and default cookie that carry a token.
const (
	AccessTokenParam = "access_token"
	DefaultJWTCookie = "keyflux_token"
)

// tokenFrom finds the request's token: "Authorization: Bearer <t>" (the
// scheme in any case), else the cookie, else ?access_token= (last: URLs end
// up in logs). An Authorization header that is present but not a bearer
// token is refused rather than skipped, so a client's mistake is not
// silently replaced by a stale cookie. Errors never repeat the token.
func tokenFrom(r Request, cookie string) (string, error) {
	if h := r.Header("Authorization"); h != "" {
		scheme, t, _ := strings.Cut(strings.TrimSpace(h), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", invalid("Authorization header: not a Bearer token")
		}
		return bounded(strings.TrimSpace(t))
	}
	if t := r.Cookie(cookie); t != "" {
		return bounded(t)
	}
	if t := r.Query(AccessTokenParam); t != "" {
		return bounded(t)
	}
	return "", ErrNoCredentials
}

func bounded(t string) (string, error) {
	switch {
	case t == "":
		return "", invalid("malformed token")
	case len(t) > maxTokenLength:
		return "", invalid("token too long")
	}
	return t, nil
}
