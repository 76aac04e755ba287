package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/yaml"
)

// APIKey is one accepted API key. Only the SHA-256 of the key is kept, so
// a leaked configuration does not leak keys.
type APIKey struct {
	// Name identifies the key in logs and metrics. Required.
	Name string `json:"name"`
	// SHA256 is the hex SHA-256 digest of the key (`printf %s KEY |
	// sha256sum`). Required.
	SHA256 string `json:"sha256"`
	// Models the key may call; "*" means all. Empty means none.
	Models []string `json:"models"`
	// Rate is the key's sustained limit in requests per second. Zero
	// means no limit.
	Rate float64 `json:"rate,omitempty"`
	// Burst is how many requests the key may send at once beyond Rate.
	// Zero means max(1, Rate).
	Burst int `json:"burst,omitempty"`
}

// HashKey returns the SHA256 field for key.
func HashKey(key string) string {
	s := sha256.Sum256([]byte(key))
	return hex.EncodeToString(s[:])
}

func (k *APIKey) validate() error {
	if k.Name == "" {
		return errors.New("gateway: APIKey.Name is empty")
	}
	if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("gateway: key %q: sha256 must be 64 hex digits", k.Name)
	}
	if k.Rate < 0 || k.Burst < 0 {
		return fmt.Errorf("gateway: key %q: negative rate or burst", k.Name)
	}
	if k.Burst == 0 {
		k.Burst = max(1, int(k.Rate))
	}
	k.SHA256 = strings.ToLower(k.SHA256)
	return nil
}

// keyring checks API keys; nil means no authentication.
type keyring struct {
	byHash map[[sha256.Size]byte]*keyState
}

type keyState struct {
	key APIKey
	mu  sync.Mutex
	tb  tokenBucket
}

func newKeyring(keys []APIKey) *keyring {
	if len(keys) == 0 {
		return nil
	}
	kr := &keyring{byHash: map[[sha256.Size]byte]*keyState{}}
	for _, k := range keys {
		var h [sha256.Size]byte
		hex.Decode(h[:], []byte(k.SHA256))
		kr.byHash[h] = &keyState{key: k, tb: tokenBucket{rate: k.Rate, burst: float64(k.Burst), tokens: float64(k.Burst)}}
	}
	return kr
}

// credential extracts the key from "Authorization: Bearer KEY" or
// "X-Api-Key: KEY".
func credential(get func(string) string) string {
	if k := get(HeaderAPIKey); k != "" {
		return k
	}
	if a := get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

// authOn reports whether requests must carry credentials.
func (g *Gateway) authOn() bool { return g.keys != nil || g.jwt != nil }

// authorize checks the credentials that get reads (a header or metadata
// lookup) for model at now: ErrUnauthenticated, ErrForbidden,
// ErrRateLimited, or nil. Tokens shaped like a JWT go to the JWT
// verifier when one is configured, everything else to the API keys.
func (g *Gateway) authorize(get func(string) string, model string, now time.Time) error {
	cred := credential(get)
	switch {
	case cred == "":
		return ErrUnauthenticated
	case g.jwt != nil && looksLikeJWT(cred):
		return g.jwt.check(cred, model, now)
	case g.keys != nil:
		return g.keys.checkKey(cred, model, now)
	}
	return ErrUnauthenticated
}

func (kr *keyring) checkKey(key, model string, now time.Time) error {
	if key == "" {
		return ErrUnauthenticated
	}
	sum := sha256.Sum256([]byte(key))
	ks := kr.byHash[sum]
	// The map lookup is on a hash of the key, so its timing says nothing
	// useful about the key; compare once more in constant time anyway.
	if ks == nil {
		return ErrUnauthenticated
	}
	var want [sha256.Size]byte
	hex.Decode(want[:], []byte(ks.key.SHA256))
	if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
		return ErrUnauthenticated
	}
	if !slices.Contains(ks.key.Models, "*") && !slices.Contains(ks.key.Models, model) {
		return ErrForbidden
	}
	if ks.key.Rate > 0 {
		ks.mu.Lock()
		ok := ks.tb.take(now)
		ks.mu.Unlock()
		if !ok {
			return ErrRateLimited
		}
	}
	return nil
}

// ParseKeys reads an API keys file: a YAML (or JSON) list of APIKey,
// strictly (unknown fields are errors), each validated.
func ParseKeys(b []byte) ([]APIKey, error) {
	var keys []APIKey
	if err := yaml.UnmarshalStrict(b, &keys); err != nil {
		return nil, fmt.Errorf("gateway: keys: %w", err)
	}
	for i := range keys {
		if err := keys[i].validate(); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// MatchKey returns the key of keys whose digest is key's SHA-256, and
// false when there is none. It compares every digest in constant time;
// keys must be validated (ParseKeys). Model scopes and rates are the
// caller's business.
func MatchKey(keys []APIKey, key string) (APIKey, bool) {
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i := range keys {
		var want [sha256.Size]byte
		hex.Decode(want[:], []byte(keys[i].SHA256))
		if subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
			found = i
		}
	}
	if key == "" || found < 0 {
		return APIKey{}, false
	}
	return keys[found], true
}

// tokenBucket allows rate events per second with bursts of burst. The
// caller passes the time and holds any lock.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

// take spends one token at now, reporting whether there was one.
func (b *tokenBucket) take(now time.Time) bool {
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// full reports whether the bucket holds burst tokens at now, so that
// dropping it changes nothing: a new bucket starts full.
func (b *tokenBucket) full(now time.Time) bool {
	return b.tokens+max(0, now.Sub(b.last).Seconds())*b.rate >= b.burst
}

// rejectReason names an auth error for the rejected metric.
func rejectReason(err error) string {
	switch {
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, ErrRateLimited):
		return "rate_limited"
	}
	return "unauthenticated"
}
