package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// JWTOptions configure --auth jwt. Exactly one of Key, PublicKey and JWKS.
type JWTOptions struct {
	Key       string        // HMAC secret, or "@path" to read it from a file (one trailing newline trimmed)
	PublicKey string        // path of a PEM file: RSA, ECDSA or Ed25519 public key (or certificate)
	JWKS      string        // path of a JWKS file, or an http(s) URL
	Refresh   time.Duration // how often the JWKS is re-read (default 5m)
	Leeway    time.Duration // clock skew allowed on exp and nbf
	Issuer    string        // checked when set
	Audience  string        // checked when set
	Cookie    string        // cookie name (default keyflux_token)
	// HTTPClient fetches the JWKS URL (nil: a client with a 10 s timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
}

const (
	defaultJWKSRefresh = 5 * time.Minute
	jwksFetchTimeout   = 10 * time.Second
	// maxUnknownKIDEvery caps how often tokens naming an unknown kid may
	// make Keyflux fetch the JWKS URL early (to pick up a new key before
	// the next refresh); more often than that they are simply refused.
	maxUnknownKIDEvery = time.Minute
)

// JWT authenticates requests by a signed token (--auth jwt).
type JWT struct {
	parser  *jwt.Parser
	algs    []string
	keyfunc func(ctx context.Context) jwt.Keyfunc
	cookie  string
	issuer  string

	stop      context.CancelFunc
	done      sync.WaitGroup
	client    *http.Client // created here, so closed here
	closeOnce sync.Once
}

// NewJWT loads the key. A JWKS URL must answer now; it is then re-fetched
// every Refresh (and, rate-limited, when a token names an unknown kid)
// until Close. A JWKS file is re-read when it changes.
func NewJWT(ctx context.Context, o JWTOptions) (*JWT, error) {
	given := 0
	for _, s := range []string{o.Key, o.PublicKey, o.JWKS} {
		if s != "" {
			given++
		}
	}
	if given != 1 {
		return nil, errors.New("jwt: give exactly one of --jwt-key, --jwt-public-key and --jwt-jwks")
	}
	if o.Leeway < 0 || o.Refresh < 0 {
		return nil, errors.New("jwt: leeway and refresh must not be negative")
	}
	if o.Refresh == 0 {
		o.Refresh = defaultJWKSRefresh
	}
	if o.Cookie == "" {
		o.Cookie = DefaultJWTCookie
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	bg, stop := context.WithCancel(ctx)
	j := &JWT{cookie: o.Cookie, issuer: o.Issuer, stop: stop}
	var err error
	switch {
	case o.Key != "":
		err = j.useSecret(o.Key)
	case o.PublicKey != "":
		err = j.usePublicKey(o.PublicKey)
	case isURL(o.JWKS):
		err = j.useJWKSURL(bg, o)
	default:
		err = j.useJWKSFile(bg, o)
	}
	if err != nil {
		j.Close()
		return nil, err
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(j.algs), jwt.WithLeeway(o.Leeway)}
	if o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		opts = append(opts, jwt.WithAudience(o.Audience))
	}
	j.parser = jwt.NewParser(opts...)
	return j, nil
}

// Mode is "jwt".
func (j *JWT) Mode() string { return ModeJWT }

// Close stops refreshing the JWKS.
func (j *JWT) Close() {
	j.closeOnce.Do(func() {
		j.stop()
		j.done.Wait()
		if j.client != nil {
			j.client.CloseIdleConnections()
		}
	})
}

// Authenticate checks the request's token and returns its identity. The
// scopes come from the keyflux claim; Expires is exp (zero for a token
// without exp: its streams never end by time).
func (j *JWT) Authenticate(ctx context.Context, r Request) (*Identity, error) {
	raw, err := tokenFrom(r, j.cookie)
	if err != nil {
		return nil, err
	}
	var c tokenClaims
	t, err := j.parser.ParseWithClaims(raw, &c, j.keyfunc(ctx))
	if err != nil {
		return nil, invalid(j.refusal(t, &c, err))
	}
	if _, ok := t.Header["crit"]; ok {
		return nil, invalid("malformed token") // RFC 7515: unknown critical extensions must be refused
	}
	scopes, err := parseKeyflux(c.Keyflux)
	if err != nil {
		return nil, invalid(err.Error())
	}
	id := &Identity{Mode: ModeJWT, Subject: c.Subject, Scopes: scopes}
	if c.ExpiresAt != nil {
		id.Expires = c.ExpiresAt.Time
	}
	return id, nil
}

// refusal is the short reason a token was refused; jwt's own messages can
// quote header values, so they are never passed on.
func (j *JWT) refusal(t *jwt.Token, c *tokenClaims, err error) string {
	switch {
	case errors.Is(err, errUnknownKID):
		return "unknown key id"
	case errors.Is(err, errAlgNotAllowed):
		return "algorithm not allowed"
	case errors.Is(err, errBadKID), errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "algorithm not allowed" // alg missing or unknown to the library
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if t != nil && t.Method != nil && !slices.Contains(j.algs, t.Method.Alg()) {
			return "algorithm not allowed" // alg none, HS256 against a public key, ...
		}
		return "signature invalid"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing): // only iss and aud are required
		if j.issuer != "" && c.Issuer == "" {
			return "wrong issuer"
		}
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	}
	return "invalid token"
}

func (j *JWT) useSecret(spec string) error {
	secret, err := readSecret(spec)
	if err != nil {
		return err
	}
	j.algs = hmacAlgs
	j.keyfunc = func(context.Context) jwt.Keyfunc {
		return func(*jwt.Token) (any, error) { return secret, nil }
	}
	return nil
}

func (j *JWT) usePublicKey(path string) error {
	key, err := readPublicKey(path)
	if err != nil {
		return err
	}
	j.algs, _ = algsFor(key)
	j.keyfunc = func(context.Context) jwt.Keyfunc {
		return func(*jwt.Token) (any, error) { return key, nil }
	}
	return nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

func isURL(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// useJWKSURL lets keyfunc fetch the set now (an error if it does not
// answer), refresh it every Refresh, and refresh early for an unknown kid
// at most once per min(Refresh, 1m); a refresh that fails keeps the last
// keys.
func (j *JWT) useJWKSURL(ctx context.Context, o JWTOptions) error {
	u, err := url.Parse(o.JWKS)
	if err != nil || u.Host == "" {
		return errors.New("jwt jwks: not a valid URL")
	}
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: jwksFetchTimeout, Transport: http.DefaultTransport.(*http.Transport).Clone()}
		j.client = client
	}
	limited := *client
	if limited.Transport == nil {
		limited.Transport = http.DefaultTransport
	}
	limited.Transport = limitBody{base: limited.Transport}
	shown := u.Redacted()
	if strings.EqualFold(u.Scheme, "http") && !isLoopback(u.Hostname()) {
		o.Logger.Warn("jwt: the JWKS URL is plain http: anyone on the path can swap the keys", "url", shown)
	}
	fail := false
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{o.JWKS}, keyfunc.Override{
		Client:                    &limited,
		HTTPTimeout:               jwksFetchTimeout,
		NoErrorReturnFirstHTTPReq: &fail,
		RefreshInterval:           o.Refresh,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(min(o.Refresh, maxUnknownKIDEvery)), 1),
		RateLimitWaitMax:          jwksFetchTimeout,
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				if ctx.Err() == nil || !errors.Is(err, context.Canceled) {
					o.Logger.Warn("jwt: JWKS refresh failed, keeping the last keys", "url", shown, "error", err)
				}
			}
		},
	})
	if err != nil {
		return fmt.Errorf("jwt jwks %s: %w", shown, err)
	}
	if keys, err := kf.Storage().KeyReadAll(ctx); err != nil || !usable(keys) {
		return fmt.Errorf("jwt jwks %s: %w", shown, errNoUsableKey)
	}
	j.algs = asymmetricAlgs
	j.keyfunc = keySet{storage: kf.Storage()}.keyfunc
	return nil
}

// useJWKSFile reads the set now and re-reads it when the file changes
// (checked every Refresh), so a rotated key needs no restart. A file that
// cannot be read or parsed keeps the last keys.
func (j *JWT) useJWKSFile(ctx context.Context, o JWTOptions) error {
	read := func() ([]jwkset.JWK, error) {
		b, err := readBounded(o.JWKS, maxJWKSSize)
		if err != nil {
			return nil, err
		}
		return parseJWKS(b)
	}
	// seen is the file as of the last read, good or bad: each change is
	// read, and logged if bad, once.
	seen, err := os.Stat(o.JWKS)
	if err != nil {
		return fmt.Errorf("jwt jwks: %w", err)
	}
	keys, err := read()
	if err != nil {
		return fmt.Errorf("jwt jwks: %w", err)
	}
	storage := jwkset.NewMemoryStorage()
	if err := storage.KeyReplaceAll(ctx, keys); err != nil {
		return err
	}
	j.algs = asymmetricAlgs
	j.keyfunc = keySet{storage: storage}.keyfunc
	j.done.Go(func() {
		tick := time.NewTicker(o.Refresh)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			info, err := os.Stat(o.JWKS)
			if err != nil || info.ModTime().Equal(seen.ModTime()) && info.Size() == seen.Size() {
				continue
			}
			seen = info
			keys, err := read()
			if err != nil {
				o.Logger.Warn("jwt: JWKS file unusable, keeping the last keys", "path", o.JWKS, "error", err)
				continue
			}
			_ = storage.KeyReplaceAll(ctx, keys) // memory storage: never fails
		}
	})
	return nil
}
