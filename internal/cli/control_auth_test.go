package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/control"
	"github.com/shoal-ml/shoal/internal/gateway"
)

// keyedUp is a `shoal up` process whose control API requires a key.
type keyedUp struct {
	ctl, gw string // host:port
	token   string
	base    string // http:// or https:// and ctl
	client  *http.Client
	log     string // its stderr
}

// startKeyedUp runs `shoal up` (a real process, its replicas real `shoal
// serve` processes) with args until the test ends, and waits until its
// control API answers (any answer: without a token it is 401).
func startKeyedUp(t *testing.T, token, scheme string, client *http.Client, args ...string) *keyedUp {
	t.Helper()
	state := t.TempDir()
	u := &keyedUp{ctl: freeAddr(t), gw: freeAddr(t), token: token, client: client, log: filepath.Join(t.TempDir(), "stderr")}
	u.base = scheme + "://" + u.ctl
	logf, err := os.Create(u.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(shoalBinary(t), append([]string{"up", "-state", state, "-http", u.gw, "-grpc", "", "-control", u.ctl, "-grace-period", "3s"}, args...)...)
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		files, _ := filepath.Glob(filepath.Join(state, "replicas", "*.json"))
		for _, f := range files {
			var r control.Replica
			if b, err := os.ReadFile(f); err == nil && json.Unmarshal(b, &r) == nil && r.PID > 0 {
				syscall.Kill(-r.PID, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile(u.log)
			t.Logf("shoal up stderr:\n%s", b)
		}
	})
	u.poll(t, 20*time.Second, "the control API", func() bool {
		code, _ := u.do(t, "GET", "/v1/info", "", "")
		return code != 0
	})
	return u
}

// do sends a request to the control API with token (empty: none); a
// connection error is code 0.
func (u *keyedUp) do(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ready reports whether model runs one replica, of its current revision,
// and that one is ready.
func (u *keyedUp) ready(t *testing.T, model string) bool {
	_, body := u.do(t, "GET", "/v1/deployments/"+model, u.token, "")
	var d v1alpha1.ModelDeployment
	if json.Unmarshal([]byte(body), &d) != nil {
		return false
	}
	_, body = u.do(t, "GET", "/v1/deployments/"+model+"/replicas", u.token, "")
	var rs []control.Replica
	if json.Unmarshal([]byte(body), &rs) != nil || len(rs) != 1 {
		return false
	}
	return rs[0].Ready && rs[0].Revision == control.RevisionName(&d)
}

func (u *keyedUp) poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

func writeKeys(t *testing.T, yamlDoc string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(f, []byte(yamlDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestUpControlKeys runs `shoal up -control-keys`: the control API and
// the registry beside it refuse requests without the token; the CLI
// sends it from SHOAL_CONTROL_TOKEN or -control-token-file; shoal push
// authenticates with the Docker config's credentials; and shoal up's own
// replicas still pull oci:// models from the registry (loopback reads).
func TestUpControlKeys(t *testing.T) {
	t.Setenv("SHOAL_MODEL_CACHE", t.TempDir())
	docker := t.TempDir()
	t.Setenv("DOCKER_CONFIG", docker)
	t.Setenv("SHOAL_CONTROL_TOKEN", "")
	const token = "s3cret-control-token"
	keys := writeKeys(t, "- name: ops\n  sha256: "+gateway.HashKey(token)+"\n")
	u := startKeyedUp(t, token, "http", http.DefaultClient, "-control-keys", keys)

	for _, tc := range []struct {
		name, method, path, token string
		want                      int
	}{
		{"no token", "GET", "/v1/deployments", "", 401},
		{"wrong token", "GET", "/v1/deployments", "nope", 401},
		{"no token, scale", "POST", "/v1/deployments/iris/scale", "", 401},
		{"no token, routes", "GET", "/v1/routes", "", 401},
		{"registry version check", "GET", "/v2/", "", 401},
		{"token", "GET", "/v1/deployments", token, 200},
		{"token, registry", "GET", "/v2/", token, 200},
	} {
		code, body := u.do(t, tc.method, tc.path, tc.token, "")
		if code != tc.want {
			t.Errorf("%s: %s %s = %d %s, want %d", tc.name, tc.method, tc.path, code, body, tc.want)
		}
	}

	code, _, errs := run(t, "get", "-control", u.ctl)
	if code != 1 || !strings.Contains(errs, "Authorization: Bearer") {
		t.Errorf("shoal get without a token = %d %q, want 1 and the API's 401 message", code, errs)
	}
	t.Setenv("SHOAL_CONTROL_TOKEN", "nope")
	if code, _, errs := run(t, "get", "-control", u.ctl); code != 1 || !strings.Contains(errs, "invalid credentials") {
		t.Errorf("shoal get with a wrong token = %d %q, want 1", code, errs)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	if code, out, errs := run(t, "get", "-control", u.ctl, "-control-token-file", tokenFile); code != 0 || !strings.Contains(out, "iris") {
		t.Errorf("shoal get -control-token-file (over a wrong SHOAL_CONTROL_TOKEN) = %d %q %q", code, out, errs)
	}
	t.Setenv("SHOAL_CONTROL_TOKEN", token)
	u.poll(t, 30*time.Second, "the built-in iris ready", func() bool { return u.ready(t, "iris") })
	for _, args := range [][]string{
		{"get", "iris"}, {"describe", "iris"}, {"events", "iris"}, {"logs", "iris"}, {"predict", "iris", keyedIrisRequest},
	} {
		if code, out, errs := run(t, append(args, "-control", u.ctl)...); code != 0 || out == "" {
			t.Errorf("shoal %s with SHOAL_CONTROL_TOKEN = %d %q %q", args[0], code, out, errs)
		}
	}

	// shoal push needs credentials: the Docker config's, as after
	// `docker login HOST -u shoal --password-stdin`.
	ref := "oci://" + u.ctl + "/models/iris:1"
	if code, _, errs := run(t, "push", exampleModel(t), ref); code == 0 {
		t.Fatal("shoal push without credentials succeeded")
	} else if !strings.Contains(strings.ToLower(errs), "unauthorized") {
		t.Errorf("shoal push without credentials: %q, want UNAUTHORIZED", errs)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("shoal:" + token))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, u.ctl, auth)
	if err := os.WriteFile(filepath.Join(docker, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "push", exampleModel(t), ref)
	if code != 0 {
		t.Fatalf("shoal push with the Docker config's credentials = %d %q", code, errs)
	}
	digest := strings.TrimSpace(out)
	// A manifest read from loopback needs no token (the replicas' pulls);
	// one from elsewhere would (TestRequireKey checks the rule itself).
	if code, body := u.do(t, "GET", "/v2/models/iris/manifests/1", "", ""); code != 200 {
		t.Errorf("loopback manifest read without a token = %d %s, want 200", code, body)
	}

	// Apply (with SHOAL_CONTROL_TOKEN) a deployment of the pushed model:
	// its replica, a `shoal serve oci://` without credentials (the Docker
	// config is gone), pulls it.
	if err := os.Remove(filepath.Join(docker, "config.json")); err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(t.TempDir(), "iris.yaml")
	os.WriteFile(doc, []byte("apiVersion: shoal.dev/v1alpha1\nkind: ModelDeployment\nmetadata:\n  name: iris\nspec:\n  model:\n    uri: "+ref+"\n"), 0o644)
	if code, _, errs := run(t, "apply", "-f", doc, "-control", u.ctl); code != 0 {
		t.Fatalf("shoal apply = %d %q", code, errs)
	}
	u.poll(t, 60*time.Second, "iris from the registry ready", func() bool {
		return strings.Contains(u.deploymentURI(t), digest) && u.ready(t, "iris")
	})
	if code, out, errs := run(t, "predict", "iris", keyedIrisRequest, "-control", u.ctl); code != 0 || !strings.Contains(out, `"data":[0]`) {
		t.Errorf("shoal predict of the pulled model = %d %q %q", code, out, errs)
	}
}

func (u *keyedUp) deploymentURI(t *testing.T) string {
	_, body := u.do(t, "GET", "/v1/deployments/iris", u.token, "")
	var d struct {
		Spec struct{ Model struct{ URI string } }
	}
	json.Unmarshal([]byte(body), &d)
	return d.Spec.Model.URI
}

// TestUpControlTLS runs `shoal up` with keys and a TLS certificate: the
// CLI (with -control-ca) and `shoal gateway -control https://...` (with
// -control-ca and -control-token-file) reach it.
func TestUpControlTLS(t *testing.T) {
	t.Setenv("SHOAL_CONTROL_TOKEN", "")
	const token = "tls-control-token"
	keys := writeKeys(t, "- name: ops\n  sha256: "+gateway.HashKey(token)+"\n  models: [\"*\"]\n")
	ca := newTestCA(t)
	certFile, keyFile := ca.leaf("shoal-up", x509.ExtKeyUsageServerAuth, net.IPv4(127, 0, 0, 1))
	caFile, pool := ca.File, ca.Pool
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	u := startKeyedUp(t, token, "https", client, "-control-keys", keys, "-control-tls-cert", certFile, "-control-tls-key", keyFile)
	if code, body := u.do(t, "GET", "/v1/info", "", ""); code != 401 {
		t.Errorf("GET /v1/info over TLS without a token = %d %s, want 401", code, body)
	}
	if code, body := u.do(t, "GET", "/v1/info", token, ""); code != 200 {
		t.Errorf("GET /v1/info over TLS = %d %s, want 200", code, body)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte(token), 0o600)
	if code, _, errs := run(t, "get", "-control", u.base, "-control-token-file", tokenFile); code != 1 || !strings.Contains(errs, "certificate") {
		t.Errorf("shoal get over TLS without -control-ca = %d %q, want a certificate error", code, errs)
	}
	if code, out, errs := run(t, "get", "-control", u.base, "-control-token-file", tokenFile, "-control-ca", caFile); code != 0 || !strings.Contains(out, "iris") {
		t.Errorf("shoal get -control https://... -control-ca = %d %q %q", code, out, errs)
	}
	u.poll(t, 30*time.Second, "iris ready", func() bool { return u.ready(t, "iris") })

	gwAddr := freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	gwLog, err := os.Create(filepath.Join(t.TempDir(), "gateway.log"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- Run(ctx, []string{"gateway", "-control", u.base, "-control-ca", caFile, "-control-token-file", tokenFile,
			"-http", gwAddr, "-grpc", ""}, io.Discard, gwLog)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("shoal gateway exited %d", code)
		}
		if t.Failed() {
			b, _ := os.ReadFile(gwLog.Name())
			t.Logf("shoal gateway stderr:\n%s", b)
		}
		gwLog.Close()
	}()
	u.poll(t, 20*time.Second, "a prediction through shoal gateway -control https://...", func() bool {
		resp, err := http.Post("http://"+gwAddr+"/v2/models/iris/infer", "application/json", strings.NewReader(keyedIrisRequest))
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200 && strings.Contains(string(b), `"data":[0]`)
	})
}

func TestControlAuthUsage(t *testing.T) {
	rated := writeKeys(t, "- name: ops\n  sha256: "+gateway.HashKey("x")+"\n  rate: 5\n")
	empty := writeKeys(t, "[]\n")
	for _, c := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"up", "-control-tls-cert", "c.pem"}, 2, "-control-tls-cert and -control-tls-key go together"},
		{[]string{"up", "-control-keys", rated}, 1, "rate limits do not apply to the control API"},
		{[]string{"up", "-control-keys", empty}, 1, "no keys"},
		{[]string{"up", "-control-keys", "/definitely/not/here"}, 1, "no such file"},
		{[]string{"gateway", "-routes", "r.yaml", "-jwt-rate", "5"}, 2, "need -jwks"},
		{[]string{"get", "-control-token-file", empty + ".none"}, 1, "no such file"},
	} {
		code, _, errs := run(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.inStderr) {
			t.Errorf("Run(%q) = %d, stderr %q; want %d and %q", c.args, code, errs, c.code, c.inStderr)
		}
	}
}

const keyedIrisRequest = `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}`
