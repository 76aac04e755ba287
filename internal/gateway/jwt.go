package gateway

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTConfig validates JSON Web Tokens presented as "Authorization: Bearer
// TOKEN". A token is accepted when its signature verifies with a key of
// the set (chosen by the token's "kid", or tried in turn without one), it
// is within its exp/nbf window, and its issuer and audience match when
// set. The models it may call come from a claim.
type JWTConfig struct {
	// Keys are the verification keys by key id; ParseJWKS builds them
	// from a JSON Web Key Set. Required.
	Keys map[string]crypto.PublicKey
	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// Audience, when set, must be among the token's "aud".
	Audience string
	// ModelsClaim names the claim listing the models the token may call:
	// an array of names or one space-separated string; "*" allows all.
	// Empty means "models".
	ModelsClaim string

	// Rate is each subject's sustained limit in requests per second: a
	// token bucket per "sub" claim, across all of the subject's tokens.
	// While Rate or RateClaim is set, tokens without "sub" are refused
	// (401). Zero means no limit.
	Rate float64
	// Burst is how many requests a subject may send at once beyond its
	// rate. Zero means max(1, the rate).
	Burst int
	// RateClaim, when set, names a numeric claim that gives the token's
	// subject its own rate (requests per second, > 0) instead of Rate.
	// Empty means every subject gets Rate.
	RateClaim string
	// MaxSubjects bounds the subjects whose buckets are kept. Buckets
	// that have refilled are dropped (a new one starts full, so that
	// changes nothing); when the set still reaches MaxSubjects, the least
	// recently used half is dropped, and those subjects start over with
	// a full burst. Zero means 100,000.
	MaxSubjects int
}

// ParseJWKS reads a JSON Web Key Set (RFC 7517) of RSA, EC (P-256,
// P-384, P-521) and Ed25519 public keys. Keys without "kid" get their
// index as id.
func ParseJWKS(b []byte) (map[string]crypto.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty, Kid, Crv, N, E, X, Y, Use string
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("gateway: JWKS: %w", err)
	}
	keys := map[string]crypto.PublicKey{}
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		id := k.Kid
		if id == "" {
			id = fmt.Sprint(i)
		}
		num := func(s string) (*big.Int, error) {
			b, err := base64.RawURLEncoding.DecodeString(s)
			if err != nil || len(b) == 0 {
				return nil, fmt.Errorf("gateway: JWKS key %q: bad base64url number", id)
			}
			return new(big.Int).SetBytes(b), nil
		}
		switch k.Kty {
		case "RSA":
			n, err := num(k.N)
			if err != nil {
				return nil, err
			}
			e, err := num(k.E)
			if err != nil {
				return nil, err
			}
			if !e.IsInt64() || e.Int64() < 3 || n.BitLen() < 2048 {
				return nil, fmt.Errorf("gateway: JWKS key %q: RSA key too weak or malformed", id)
			}
			keys[id] = &rsa.PublicKey{N: n, E: int(e.Int64())}
		case "EC":
			var c elliptic.Curve
			switch k.Crv {
			case "P-256":
				c = elliptic.P256()
			case "P-384":
				c = elliptic.P384()
			case "P-521":
				c = elliptic.P521()
			default:
				return nil, fmt.Errorf("gateway: JWKS key %q: curve %q", id, k.Crv)
			}
			x, err := num(k.X)
			if err != nil {
				return nil, err
			}
			y, err := num(k.Y)
			if err != nil {
				return nil, err
			}
			size := (c.Params().BitSize + 7) / 8
			raw := make([]byte, 1+2*size)
			raw[0] = 4
			x.FillBytes(raw[1 : 1+size])
			y.FillBytes(raw[1+size:])
			pub, err := ecdsa.ParseUncompressedPublicKey(c, raw)
			if err != nil {
				return nil, fmt.Errorf("gateway: JWKS key %q: %w", id, err)
			}
			keys[id] = pub
		case "OKP":
			x, err := base64.RawURLEncoding.DecodeString(k.X)
			if k.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("gateway: JWKS key %q: want an Ed25519 OKP key", id)
			}
			keys[id] = ed25519.PublicKey(x)
		default:
			return nil, fmt.Errorf("gateway: JWKS key %q: key type %q", id, k.Kty)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("gateway: JWKS has no signing key")
	}
	return keys, nil
}

// jwtVerifier checks tokens against a JWTConfig.
type jwtVerifier struct {
	cfg    JWTConfig
	parser *jwt.Parser
	limits *subjectLimits // nil: no per-subject rate limits
}

func newJWTVerifier(cfg *JWTConfig) (*jwtVerifier, error) {
	if cfg == nil {
		return nil, nil
	}
	if len(cfg.Keys) == 0 {
		return nil, errors.New("gateway: JWTConfig.Keys is empty")
	}
	c := *cfg
	if c.ModelsClaim == "" {
		c.ModelsClaim = "models"
	}
	if c.Rate < 0 || c.Burst < 0 || c.MaxSubjects < 0 {
		return nil, errors.New("gateway: JWTConfig: negative rate, burst or subject bound")
	}
	if c.MaxSubjects == 0 {
		c.MaxSubjects = 100_000
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(30 * time.Second),
	}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	v := &jwtVerifier{cfg: c, parser: jwt.NewParser(opts...)}
	if c.Rate > 0 || c.RateClaim != "" {
		v.limits = &subjectLimits{burst: c.Burst, max: c.MaxSubjects, m: map[string]*tokenBucket{}}
	}
	return v, nil
}

// looksLikeJWT tells a token from an API key: three base64url parts.
func looksLikeJWT(s string) bool { return strings.Count(s, ".") == 2 }

// check validates token for model (its expiry against the wall clock)
// and spends one request of its subject's rate at now:
// ErrUnauthenticated, ErrForbidden or ErrRateLimited.
func (v *jwtVerifier) check(token, model string, now time.Time) error {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if kid, ok := t.Header["kid"].(string); ok {
			if k := v.cfg.Keys[kid]; k != nil {
				return k, nil
			}
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		ks := jwt.VerificationKeySet{}
		for _, k := range v.cfg.Keys {
			ks.Keys = append(ks.Keys, k)
		}
		return ks, nil
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	sub, _ := claims["sub"].(string)
	rate := v.cfg.Rate
	if v.limits != nil {
		if sub == "" {
			return fmt.Errorf("%w: the token has no \"sub\" claim, which per-subject rate limits need", ErrUnauthenticated)
		}
		if x, ok := claims[v.cfg.RateClaim]; ok && v.cfg.RateClaim != "" {
			r, ok := x.(float64)
			if !ok || !(r > 0) {
				return fmt.Errorf("%w: claim %q: want a positive number of requests per second", ErrUnauthenticated, v.cfg.RateClaim)
			}
			rate = r
		}
	}
	var models []string
	switch m := claims[v.cfg.ModelsClaim].(type) {
	case string:
		models = strings.Fields(m)
	case []any:
		for _, x := range m {
			if s, ok := x.(string); ok {
				models = append(models, s)
			}
		}
	}
	if !slices.Contains(models, "*") && !slices.Contains(models, model) {
		return ErrForbidden
	}
	if v.limits != nil && rate > 0 && !v.limits.take(sub, rate, now) {
		return ErrRateLimited
	}
	return nil
}

// subjectLimits holds a token bucket per JWT subject, bounded as
// JWTConfig.MaxSubjects says. Buckets that have refilled are dropped
// when a new subject arrives, at most once a minute, and whenever the
// set is at its bound.
type subjectLimits struct {
	burst int // 0: max(1, rate)
	max   int
	mu    sync.Mutex
	m     map[string]*tokenBucket
	swept time.Time
}

// sweepEvery is how often new subjects trigger a sweep of full buckets.
const sweepEvery = time.Minute

// take spends one of sub's requests at rate (per second) at now,
// reporting whether its bucket had one.
func (s *subjectLimits) take(sub string, rate float64, now time.Time) bool {
	burst := float64(s.burst)
	if burst == 0 {
		burst = max(1, math.Floor(rate))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.m[sub]
	if b == nil {
		if len(s.m) >= s.max || now.Sub(s.swept) >= sweepEvery {
			s.sweep(now)
		}
		b = &tokenBucket{tokens: burst}
		s.m[sub] = b
	}
	b.rate, b.burst = rate, burst // a token may carry another rate claim
	b.tokens = min(b.tokens, burst)
	return b.take(now)
}

// sweep drops the full buckets, then, if the set is still at its bound,
// the least recently used half.
func (s *subjectLimits) sweep(now time.Time) {
	s.swept = now
	for k, b := range s.m {
		if b.full(now) {
			delete(s.m, k)
		}
	}
	if len(s.m) < s.max {
		return
	}
	last := make([]time.Time, 0, len(s.m))
	for _, b := range s.m {
		last = append(last, b.last)
	}
	slices.SortFunc(last, func(a, b time.Time) int { return a.Compare(b) })
	cut := last[len(last)/2]
	for k, b := range s.m {
		if !b.last.After(cut) {
			delete(s.m, k)
		}
	}
}

// len returns the number of subjects with a bucket.
func (s *subjectLimits) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
