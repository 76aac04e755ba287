package gateway

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
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
