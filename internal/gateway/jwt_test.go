package gateway

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-ml/shoal/internal/oip/inferencepb"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestJWT signs tokens with EC, RSA and Ed25519 keys published in a JWKS
// and sends them through a real gateway.
func TestJWT(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := ec.PublicKey.Bytes()
	jwks := fmt.Sprintf(`{"keys":[
		{"kty":"EC","kid":"ec1","crv":"P-256","x":%q,"y":%q},
		{"kty":"RSA","kid":"rsa1","n":%q,"e":%q},
		{"kty":"OKP","kid":"ed1","crv":"Ed25519","x":%q}]}`,
		b64(raw[1:33]), b64(raw[33:]), b64(rk.N.Bytes()), b64(big.NewInt(int64(rk.E)).Bytes()), b64(edPub))
	keys, err := ParseJWKS([]byte(jwks))
	if err != nil {
		t.Fatal(err)
	}
	rep := startReplica(t, "1")
	tg := startGateway(t, Config{JWT: &JWTConfig{Keys: keys, Issuer: "shoal-test", Audience: "gateway"}}, oneRevision(rep))

	sign := func(method jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := func(models any) jwt.MapClaims {
		return jwt.MapClaims{"iss": "shoal-test", "aud": "gateway", "exp": time.Now().Add(time.Hour).Unix(), "models": models}
	}
	expired := good("iris")
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	wrongAud := good("iris")
	wrongAud["aud"] = "someone-else"
	noExp := good("iris")
	delete(noExp, "exp")
	for _, tc := range []struct {
		name  string
		token string
		want  int
	}{
		{"EC, model listed", sign(jwt.SigningMethodES256, "ec1", ec, good([]any{"iris"})), 200},
		{"RSA, all models", sign(jwt.SigningMethodRS256, "rsa1", rk, good("*")), 200},
		{"Ed25519, space-separated models", sign(jwt.SigningMethodEdDSA, "ed1", edPriv, good("other iris")), 200},
		{"no kid: keys tried in turn", sign(jwt.SigningMethodES256, "", ec, good("iris")), 200},
		{"other model only", sign(jwt.SigningMethodES256, "ec1", ec, good("other")), 403},
		{"no models claim", sign(jwt.SigningMethodES256, "ec1", ec, jwt.MapClaims{"iss": "shoal-test", "aud": "gateway", "exp": time.Now().Add(time.Hour).Unix()}), 403},
		{"expired", sign(jwt.SigningMethodES256, "ec1", ec, expired), 401},
		{"no expiry", sign(jwt.SigningMethodES256, "ec1", ec, noExp), 401},
		{"wrong audience", sign(jwt.SigningMethodES256, "ec1", ec, wrongAud), 401},
		{"unknown signer", sign(jwt.SigningMethodES256, "ec1", other, good("iris")), 401},
		{"unknown kid", sign(jwt.SigningMethodES256, "nope", ec, good("iris")), 401},
		{"HMAC with the public key", sign(jwt.SigningMethodHS256, "ec1", raw, good("iris")), 401},
		{"unsigned", sign(jwt.SigningMethodNone, "ec1", jwt.UnsafeAllowNoneSignatureType, good("iris")), 401},
		{"not a token", "a.b.c", 401},
	} {
		code, _, b := tg.post(t, "/v2/models/iris/infer", irisBody, "Authorization", "Bearer "+tc.token)
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, b, tc.want)
		}
	}
	if code, _, _ := tg.post(t, "/v2/models/iris/infer", irisBody); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
}

func TestParseJWKS(t *testing.T) {
	for _, tc := range []struct{ name, jwks string }{
		{"not JSON", "{"},
		{"empty", `{"keys":[]}`},
		{"symmetric", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`},
		{"weak RSA", `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`},
		{"bad curve", `{"keys":[{"kty":"EC","crv":"P-192","x":"AQ","y":"AQ"}]}`},
		{"point off the curve", `{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]}`},
		{"only encryption keys", `{"keys":[{"kty":"OKP","crv":"Ed25519","use":"enc","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}`},
	} {
		if _, err := ParseJWKS([]byte(tc.jwks)); err == nil {
			t.Errorf("%s: ParseJWKS accepted %s", tc.name, tc.jwks)
		}
	}
}

// jwtSigner is an EC key published as the JWKS of a JWTConfig.
type jwtSigner struct {
	key  *ecdsa.PrivateKey
	keys map[string]crypto.PublicKey
}

func newJWTSigner(t testing.TB) *jwtSigner {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := ec.PublicKey.Bytes()
	keys, err := ParseJWKS(fmt.Appendf(nil, `{"keys":[{"kty":"EC","kid":"ec1","crv":"P-256","x":%q,"y":%q}]}`, b64(raw[1:33]), b64(raw[33:])))
	if err != nil {
		t.Fatal(err)
	}
	return &jwtSigner{key: ec, keys: keys}
}

// token signs claims (with an expiry an hour away added) for the models
// of the iris tests.
func (s *jwtSigner) token(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	c := jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix(), "models": "iris"}
	for k, v := range claims {
		c[k] = v
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = "ec1"
	str, err := tok.SignedString(s.key)
	if err != nil {
		t.Fatal(err)
	}
	return str
}

// TestJWTSubjectRateLimit sends real tokens through a real gateway with
// per-subject limits: each subject has its own bucket across its tokens,
// a token without "sub" is refused, 429 carries Retry-After and counts as
// rate_limited, and gRPC gets RESOURCE_EXHAUSTED.
func TestJWTSubjectRateLimit(t *testing.T) {
	s := newJWTSigner(t)
	rep := startReplica(t, "1")
	tg := startGateway(t, Config{JWT: &JWTConfig{Keys: s.keys, Rate: 0.001, Burst: 2}}, oneRevision(rep))
	alice, alice2 := s.token(t, jwt.MapClaims{"sub": "alice"}), s.token(t, jwt.MapClaims{"sub": "alice", "jti": "2"})
	bob := s.token(t, jwt.MapClaims{"sub": "bob"})
	for _, tc := range []struct {
		name  string
		token string
		want  int
	}{
		{"alice 1", alice, 200},
		{"alice 2", alice, 200},
		{"alice past her burst", alice, 429},
		{"alice with another token", alice2, 429},
		{"bob has his own bucket", bob, 200},
		{"no sub", s.token(t, nil), 401},
		{"empty sub", s.token(t, jwt.MapClaims{"sub": ""}), 401},
		{"sub not a string", s.token(t, jwt.MapClaims{"sub": 7}), 401},
		{"other model: 403 before the rate", s.token(t, jwt.MapClaims{"sub": "alice", "models": "other"}), 403},
	} {
		code, h, b := tg.post(t, "/v2/models/iris/infer", irisBody, "Authorization", "Bearer "+tc.token)
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, b, tc.want)
		}
		if code == 429 && h.Get("Retry-After") == "" {
			t.Errorf("%s: 429 without Retry-After", tc.name)
		}
		if tc.name == "no sub" && !strings.Contains(string(b), `\"sub\" claim`) {
			t.Errorf("no sub: body %s does not name the sub claim", b)
		}
	}
	if got := tg.metric(t, `shoal_gateway_rejected_total{model="iris",reason="rate_limited"}`); got != 2 {
		t.Errorf("rate_limited = %v, want 2", got)
	}

	cl := inferencepb.NewGRPCInferenceServiceClient(tg.GRPC)
	req := &inferencepb.ModelReadyRequest{Name: "iris"}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+bob)
	if r, err := cl.ModelReady(ctx, req); err != nil || !r.Ready {
		t.Errorf("gRPC, bob's second request: %v, %v", r, err)
	}
	if _, err := cl.ModelReady(ctx, req); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("gRPC, bob past his burst: %v, want ResourceExhausted", err)
	}
	ctx = metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+s.token(t, nil))
	if _, err := cl.ModelReady(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC without sub: %v, want Unauthenticated", err)
	}
}

// TestJWTRateClaim checks the verifier at explicit times: a subject's own
// rate from a claim (the burst following it), refills, and refusal of a
// bad claim.
func TestJWTRateClaim(t *testing.T) {
	s := newJWTSigner(t)
	v, err := newJWTVerifier(&JWTConfig{Keys: s.keys, Rate: 1, RateClaim: "rps"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	fast := s.token(t, jwt.MapClaims{"sub": "fast", "rps": 3})
	slow := s.token(t, jwt.MapClaims{"sub": "slow"})
	for i, tc := range []struct {
		token string
		at    time.Duration
		want  error
	}{
		{fast, 0, nil}, {fast, 0, nil}, {fast, 0, nil}, {fast, 0, ErrRateLimited}, // burst 3 from the claim
		{slow, 0, nil}, {slow, 0, ErrRateLimited}, // Rate 1: burst 1
		{fast, 340 * time.Millisecond, nil}, {fast, 340 * time.Millisecond, ErrRateLimited}, // one token in 1/3 s
		{slow, 900 * time.Millisecond, ErrRateLimited}, {slow, time.Second, nil},
		{s.token(t, jwt.MapClaims{"sub": "x", "rps": "lots"}), 0, ErrUnauthenticated},
		{s.token(t, jwt.MapClaims{"sub": "x", "rps": 0}), 0, ErrUnauthenticated},
	} {
		if err := v.check(tc.token, "iris", t0.Add(tc.at)); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("#%d check at %v = %v, want %v", i, tc.at, err, tc.want)
		}
	}
}

// TestJWTSubjectsBounded shows that the buckets do not grow with the
// number of subjects: full buckets are dropped, and the set never passes
// MaxSubjects, while a subject whose bucket is spent stays limited.
func TestJWTSubjectsBounded(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &subjectLimits{max: 1000, m: map[string]*tokenBucket{}}
	if !l.take("spent", 0.001, t0) || l.take("spent", 0.001, t0) {
		t.Fatal("a burst of 1 does not allow exactly one request")
	}
	peak := 0
	for i := range 100_000 { // all at once: only the bound holds the set
		l.take(fmt.Sprint("s", i), 0.001, t0)
		peak = max(peak, l.len())
	}
	if peak > 1000 {
		t.Errorf("%d buckets at once, want at most MaxSubjects (1000)", peak)
	}
	l = &subjectLimits{max: 1000, m: map[string]*tokenBucket{}}
	l.take("spent", 0.001, t0)
	peak = 0
	for i := range 100_000 { // one subject every 10ms, each refilled after 100ms
		l.take(fmt.Sprint("s", i), 10, t0.Add(time.Duration(i)*10*time.Millisecond))
		peak = max(peak, l.len())
	}
	if peak > int(sweepEvery/(10*time.Millisecond))+2 {
		t.Errorf("%d buckets at once, want only those not yet refilled since the last sweep (%d)", peak, sweepEvery/(10*time.Millisecond)+2)
	}
	if l.take("spent", 0.001, t0.Add(500*time.Second)) {
		t.Error("the spent subject got a token back before its refill (its bucket was dropped)")
	}

	// Through the verifier, with real tokens.
	s := newJWTSigner(t)
	v, err := newJWTVerifier(&JWTConfig{Keys: s.keys, Rate: 0.001, MaxSubjects: 50})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if err := v.check(s.token(t, jwt.MapClaims{"sub": fmt.Sprint("user", i)}), "iris", time.Now()); err != nil {
			t.Fatal(err)
		}
		if n := v.limits.len(); n > 50 {
			t.Fatalf("after %d subjects: %d buckets, want at most 50", i+1, n)
		}
	}
}
