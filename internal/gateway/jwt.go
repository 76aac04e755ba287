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
	"math/big"
	"slices"
	"strings"
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
	return &jwtVerifier{cfg: c, parser: jwt.NewParser(opts...)}, nil
}

// looksLikeJWT tells a token from an API key: three base64url parts.
func looksLikeJWT(s string) bool { return strings.Count(s, ".") == 2 }

// check validates token for model (against the wall clock):
// ErrUnauthenticated or ErrForbidden.
func (v *jwtVerifier) check(token, model string) error {
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
	return nil
}
