package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Key material limits: files and JWKS documents are read whole, so bound
// them; a short HMAC secret can be brute-forced offline from one token.
const (
	maxKeyFileSize  = 64 << 10
	maxJWKSSize     = 1 << 20
	minSecretLength = 32 // 256 bits, what jjwt and Nimbus demand for HS256
	minRSABits      = 2048
)

// Algorithms by key type. A key verifies only its own family: an HMAC
// method is never tried with a public key, so the public key's PEM bytes
// used as an HMAC secret (algorithm confusion) verify nothing.
var (
	hmacAlgs       = []string{"HS256", "HS384", "HS512"}
	rsaAlgs        = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
		"ES256", "ES384", "ES512", "EdDSA"}
)

// errAlgNotAllowed and errUnknownKID come out of key lookup; jwt wraps
// them, refusal turns them into reasons.
var (
	errAlgNotAllowed = errors.New("algorithm not allowed")
	errUnknownKID    = errors.New("unknown key id")
	errBadKID        = errors.New("kid is not a string")
)

// readSecret reads --jwt-key: the secret itself, or "@path" to read it from
// a file without its one trailing newline.
func readSecret(spec string) ([]byte, error) {
	secret := []byte(spec)
	if path, ok := strings.CutPrefix(spec, "@"); ok {
		b, err := readBounded(path, maxKeyFileSize)
		if err != nil {
			return nil, fmt.Errorf("jwt key: %w", err)
		}
		s, cut := strings.CutSuffix(string(b), "\n")
		if cut {
			s, _ = strings.CutSuffix(s, "\r")
		}
		secret = []byte(s)
	}
	if len(secret) < minSecretLength {
		return nil, fmt.Errorf("jwt key: the HMAC secret must be at least %d bytes", minSecretLength)
	}
	return secret, nil
}

// readPublicKey reads a PEM file holding one public key (PKIX "PUBLIC KEY",
// PKCS#1 "RSA PUBLIC KEY") or a certificate, and refuses private keys.
func readPublicKey(path string) (crypto.PublicKey, error) {
	b, err := readBounded(path, maxKeyFileSize)
	if err != nil {
		return nil, fmt.Errorf("jwt public key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("jwt public key: %s holds no PEM block", path)
	}
	var key any
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		return nil, fmt.Errorf("jwt public key: %s holds a %q block; give the public key or a certificate (never a private key)", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("jwt public key: %w", err)
	}
	if _, err := algsFor(key); err != nil {
		return nil, fmt.Errorf("jwt public key: %w", err)
	}
	return key, nil
}

// algsFor is the algorithms a public key verifies.
func algsFor(key any) ([]string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits: at least %d needed", k.N.BitLen(), minRSABits)
		}
		return rsaAlgs, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}, nil
		case elliptic.P384():
			return []string{"ES384"}, nil
		case elliptic.P521():
			return []string{"ES512"}, nil
		}
		return nil, fmt.Errorf("ECDSA curve %s has no JWT algorithm", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("unsupported key type %T (want RSA, ECDSA or Ed25519)", key)
}

// keySet verifies tokens with the keys of a JWKS, read from a
// jwkset.Storage that keyfunc (URL) or jwksFile keeps fresh.
type keySet struct{ storage jwkset.Storage }

// keyfunc picks the key for a token: by kid when the token names one (an
// unknown kid may make keyfunc's storage refresh, rate-limited), else every
// key of the set that fits. Each key verifies only its own algorithms and,
// when the JWK says so, only its declared "alg" and use "sig".
func (s keySet) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		kidValue, named := t.Header["kid"]
		if !named {
			all, err := s.storage.KeyReadAll(ctx)
			if err != nil {
				return nil, errUnknownKID
			}
			var set jwt.VerificationKeySet
			for _, k := range all {
				if key, ok := fits(k, alg); ok {
					set.Keys = append(set.Keys, key)
				}
			}
			if len(set.Keys) == 0 {
				return nil, errAlgNotAllowed
			}
			return set, nil
		}
		kid, ok := kidValue.(string)
		if !ok {
			return nil, errBadKID
		}
		k, err := s.storage.KeyRead(ctx, kid)
		if err != nil {
			return nil, errUnknownKID
		}
		key, ok := fits(k, alg)
		if !ok {
			return nil, errAlgNotAllowed
		}
		return key, nil
	}
}

// fits returns the public key of k if it may verify a token signed with alg.
func fits(k jwkset.JWK, alg string) (any, bool) {
	m := k.Marshal()
	if m.USE != "" && m.USE != jwkset.UseSig {
		return nil, false
	}
	if m.ALG != "" && m.ALG.String() != alg {
		return nil, false
	}
	key := k.Key()
	if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
		key = pk.Public() // a JWKS may hold private keys; verify with the public half
	}
	algs, err := algsFor(key)
	if err != nil || !slices.Contains(algs, alg) {
		return nil, false
	}
	return key, true
}

// parseJWKS reads a JWK Set document into keys; keys of types jwkset does
// not support (Ed448, say) are skipped as keyfunc's HTTP storage does.
func parseJWKS(b []byte) ([]jwkset.JWK, error) {
	var doc jwkset.JWKSMarshal
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a JWK Set: %w", err)
	}
	keys := make([]jwkset.JWK, 0, len(doc.Keys))
	for _, m := range doc.Keys {
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{Private: true}, jwkset.JWKValidateOptions{})
		if errors.Is(err, jwkset.ErrUnsupportedKey) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", m.KID, err)
		}
		keys = append(keys, k)
	}
	if !usable(keys) {
		return nil, errNoUsableKey
	}
	return keys, nil
}

var errNoUsableKey = errors.New("the JWK Set holds no RSA, ECDSA or Ed25519 key")

// usable reports whether a set holds a key that can verify some token: an
// "oct" (HMAC) key never does.
func usable(keys []jwkset.JWK) bool {
	for _, k := range keys {
		key := k.Key()
		if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
			key = pk.Public()
		}
		if _, err := algsFor(key); err == nil {
			return true
		}
	}
	return false
}

// readBounded reads a whole file of at most max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}

// limitBody bounds what a JWKS URL may send: keyfunc decodes the whole body.
type limitBody struct{ base http.RoundTripper }

func (l limitBody) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(r)
	if err == nil {
		resp.Body = http.MaxBytesReader(nil, resp.Body, maxJWKSSize)
	}
	return resp, err
}

func (l limitBody) CloseIdleConnections() {
	if c, ok := l.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
