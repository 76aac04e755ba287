package control

import (
	"errors"
	"net/http"
	"strings"

	"github.com/shoal-ml/shoal/internal/gateway"
)

// ErrUnauthenticated is the answer (401) to a request without a valid key
// when the control API requires keys (RequireKey).
var ErrUnauthenticated = errors.New("control: missing or invalid credentials: send Authorization: Bearer TOKEN")

// RequireKey returns h behind API keys (`shoal up -control-keys`, the file
// format of the gateway's keys, gateway.ParseKeys): every request needs
// "Authorization: Bearer KEY", or HTTP Basic authentication with KEY as
// the password (what registry clients send after `docker login`), where
// KEY's SHA-256 is the digest of one of keys. Other requests get 401 with
// {"error": "..."} and a WWW-Authenticate challenge: Basic under /v2/ (the
// embedded OCI registry, whose clients need that scheme), Bearer elsewhere.
//
// Every key has full access: the keys' models and rates do not apply.
// exempt, when not nil, lets the requests it reports through without a
// key. With no keys, RequireKey returns h itself: no authentication.
func RequireKey(keys []gateway.APIKey, exempt func(*http.Request) bool, h http.Handler) http.Handler {
	if len(keys) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (exempt == nil || !exempt(r)) && !hasKey(keys, r) {
			scheme := `Bearer realm="shoal"`
			if strings.HasPrefix(r.URL.Path, "/v2/") {
				scheme = `Basic realm="shoal"`
			}
			w.Header().Set("WWW-Authenticate", scheme)
			writeError(w, ErrUnauthenticated)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// hasKey reports whether r carries one of keys, as a Bearer token or a
// Basic password.
func hasKey(keys []gateway.APIKey, r *http.Request) bool {
	key := ""
	if _, pass, ok := r.BasicAuth(); ok {
		key = pass
	} else if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		key = strings.TrimSpace(a[7:])
	}
	_, ok := gateway.MatchKey(keys, key)
	return ok
}
