package control

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/internal/gateway"
	"github.com/shoal-ml/shoal/internal/serve/servetest"
)

// testKeys is a control keys file with two keys, "ops-token" and
// "ci-token"; models do not apply.
func testKeys(t *testing.T) []gateway.APIKey {
	t.Helper()
	keys, err := gateway.ParseKeys([]byte("- name: ops\n  sha256: " + gateway.HashKey("ops-token") +
		"\n- name: ci\n  sha256: " + gateway.HashKey("ci-token") + "\n  models: [iris]\n"))
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestRequireKey drives the control API over a real store behind keys:
// 401 without or with a wrong key, the API with a right one (Bearer, or
// Basic as registry clients send it), the exemption, and no
// authentication at all without keys.
func TestRequireKey(t *testing.T) {
	st := irisStore(t)
	api := Handler(APIConfig{Store: st})
	mux := http.NewServeMux() // the registry's place, as shoal up serves it
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "registry") })
	mux.Handle("/", api)
	exempt := func(r *http.Request) bool { return r.Method == http.MethodGet && r.URL.Path == "/v2/public" }
	srv := httptest.NewServer(RequireKey(testKeys(t), exempt, mux))
	defer srv.Close()
	open := httptest.NewServer(RequireKey(nil, exempt, mux))
	defer open.Close()

	for _, tc := range []struct {
		name      string
		base      string
		method    string
		path      string
		auth      func(*http.Request)
		want      int
		challenge string
	}{
		{"no key", srv.URL, "GET", "/v1/deployments", nil, 401, "Bearer"},
		{"wrong key", srv.URL, "GET", "/v1/deployments", bearer("nope"), 401, "Bearer"},
		{"a key's digest as the key", srv.URL, "GET", "/v1/deployments", bearer(gateway.HashKey("ops-token")), 401, "Bearer"},
		{"empty bearer", srv.URL, "GET", "/v1/deployments", bearer(""), 401, "Bearer"},
		{"wrong key, apply", srv.URL, "POST", "/v1/deployments/iris/scale", bearer("nope"), 401, "Bearer"},
		{"ops", srv.URL, "GET", "/v1/deployments", bearer("ops-token"), 200, ""},
		{"ci: models do not apply", srv.URL, "DELETE", "/v1/deployments/iris", bearer("ci-token"), 204, ""},
		{"lower-case scheme", srv.URL, "GET", "/v1/info", func(r *http.Request) { r.Header.Set("Authorization", "bearer ops-token") }, 200, ""},
		{"basic, key as password", srv.URL, "GET", "/v2/x", func(r *http.Request) { r.SetBasicAuth("shoal", "ops-token") }, 200, ""},
		{"basic, wrong password", srv.URL, "GET", "/v2/x", func(r *http.Request) { r.SetBasicAuth("ops-token", "x") }, 401, "Basic"},
		{"registry without a key", srv.URL, "GET", "/v2/", nil, 401, "Basic"},
		{"exempt", srv.URL, "GET", "/v2/public", nil, 200, ""},
		{"exempt only as it says", srv.URL, "PUT", "/v2/public", nil, 401, "Basic"},
		{"without keys: open", open.URL, "GET", "/v1/deployments", nil, 200, ""},
		{"without keys: a wrong key is ignored", open.URL, "GET", "/v1/info", bearer("nope"), 200, ""},
	} {
		req, _ := http.NewRequest(tc.method, tc.base+tc.path, nil)
		if tc.auth != nil {
			tc.auth(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s %s = %d %s, want %d", tc.name, tc.method, tc.path, resp.StatusCode, b, tc.want)
			continue
		}
		if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, tc.challenge) || (tc.challenge == "") != (got == "") {
			t.Errorf("%s: WWW-Authenticate %q, want scheme %q", tc.name, got, tc.challenge)
		}
		if tc.want == 401 {
			var e struct{ Error string }
			if json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, "Authorization: Bearer") {
				t.Errorf("%s: body %s, want a JSON error naming the header", tc.name, b)
			}
		}
	}
	if _, err := st.Get("iris"); err == nil {
		t.Error("iris was not deleted with the ci key")
	}
}

func bearer(key string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }
}

// TestStandaloneGatewayToken runs a gateway apart from a control API that
// requires keys: without a token it gets no table (and 401s), with one it
// follows the routes and asks for scale-ups.
func TestStandaloneGatewayToken(t *testing.T) {
	st := irisStore(t)
	rep := startIris(t)
	var ts TableSource
	ts.Set(irisTable("v1"))
	var activations atomic.Int32
	api := Handler(APIConfig{Store: st, Routes: &ts, ScaleUp: func(ctx context.Context, name string) error {
		activations.Add(1)
		ts.Set(irisTable("v2", rep))
		return nil
	}})
	ctl := httptest.NewServer(RequireKey(testKeys(t), nil, api))
	defer ctl.Close()

	run := func(token string, errs *errorLog) (*gateway.Gateway, *gateway.ControlSource, func()) {
		cs := &gateway.ControlSource{URL: ctl.URL, Token: token, Heartbeat: 50 * time.Millisecond,
			MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, OnError: errs.add}
		g, err := gateway.New(gateway.Config{Source: cs, ScaleUp: cs.ScaleUp, ProbeInterval: -1, ActivatorTimeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- g.Run(ctx) }()
		return g, cs, func() {
			cancel()
			if err := <-ran; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}

	var denied errorLog
	g, cs, stop := run("wrong-token", &denied)
	servetest.WaitFor(t, 10*time.Second, "a wrong token: no error reported", func() bool { return denied.count() > 2 })
	stop()
	if g.Ready() {
		t.Error("the gateway with a wrong token is ready")
	}
	if !denied.has(gateway.ErrControl) || !strings.Contains(denied.errs[0].Error(), "401") {
		t.Errorf("wrong token: errors %v, want the control plane's 401", denied.errs)
	}
	if err := cs.ScaleUp(context.Background(), "iris"); !errors.Is(err, gateway.ErrControl) || activations.Load() != 0 {
		t.Errorf("ScaleUp with a wrong token = %v (%d activations), want a refusal", err, activations.Load())
	}

	var errs errorLog
	g, _, stop = run("ops-token", &errs)
	defer stop()
	gw := httptest.NewServer(g.Handler())
	defer gw.Close()
	servetest.WaitFor(t, 10*time.Second, "with the token: no table", g.Ready)
	// iris is at zero: the request waits in the activator, which asks the
	// control plane (with the token) for a replica.
	resp, err := http.Post(gw.URL+"/v2/models/iris/infer", "application/json", strings.NewReader(irisBody))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(gateway.HeaderRevision) != "v2" || activations.Load() == 0 {
		t.Errorf("with the token: infer = %s from %q after %d activations, want 200 from v2", resp.Status, resp.Header.Get(gateway.HeaderRevision), activations.Load())
	}
	if errs.count() != 0 {
		t.Errorf("with the token: errors %v", errs.errs)
	}
}
