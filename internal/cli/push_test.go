package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/examples"
	"github.com/shoal-ml/shoal/internal/control"
	"github.com/shoal-ml/shoal/internal/control/store"
	"github.com/shoal-ml/shoal/internal/registry"
	"github.com/shoal-ml/shoal/internal/serve/servetest"
)

// exampleModel copies the example iris model directory to a new directory
// and returns it (DIR/iris, holding 1/).
func exampleModel(t *testing.T) string {
	t.Helper()
	root, err := fs.Sub(examples.Models, "models")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, root); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "iris")
}

// testRegistry serves an internal/registry Registry and returns its
// host:port; stop closes it.
func testRegistry(t *testing.T) (host string, stop func()) {
	t.Helper()
	reg, err := registry.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	stop = func() { srv.Close(); reg.Close() }
	t.Cleanup(stop)
	return strings.TrimPrefix(srv.URL, "http://"), stop
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestPushPullServe pushes the example model with shoal push, pulls it
// with shoal pull, and serves it with shoal serve oci://..., then again
// from the cache with the registry gone.
func TestPushPullServe(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials of this machine
	host, stop := testRegistry(t)
	ref := "oci://" + host + "/models/iris:1"
	code, out, errs := run(t, "push", exampleModel(t), ref)
	if code != 0 {
		t.Fatalf("push = %d\n%s", code, errs)
	}
	digest := strings.TrimSpace(out)
	if !strings.HasPrefix(digest, "sha256:") || len(digest) != 71 {
		t.Fatalf("push printed %q, want the manifest digest", out)
	}

	dir := filepath.Join(t.TempDir(), "repo")
	if code, out, errs := run(t, "pull", ref, dir); code != 0 || !strings.Contains(out, digest) {
		t.Fatalf("pull = %d %q\n%s", code, out, errs)
	}
	want, _ := os.ReadFile(filepath.Join(exampleModel(t), "1", "model.json"))
	if got, err := os.ReadFile(filepath.Join(dir, "iris", "1", "model.json")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("pulled model.json differs from the pushed one (err %v)", err)
	}
	if code, _, errs := run(t, "pull", ref, dir); code != 1 || !strings.Contains(errs, "not an empty directory") {
		t.Errorf("pull into a full directory = %d %s, want 1", code, errs)
	}

	cache := t.TempDir()
	logs := serveAndPredict(t, "-model-cache", cache, ref)
	if !strings.Contains(logs, "model artifact verified") || !strings.Contains(logs, digest) {
		t.Errorf("serve logs lack the verified digest:\n%s", logs)
	}
	stop()
	// Pinned, with the registry gone: served from the cache.
	pinned := "oci://" + host + "/models/iris@" + digest
	serveAndPredict(t, "-model-cache", cache, pinned)
	if code, _, errs := run(t, "serve", "-http", "127.0.0.1:0", "-grpc", "", "-model-cache", cache, ref); code != 1 || !strings.Contains(errs, host) {
		t.Errorf("serve of a tag with the registry gone = %d %s, want 1 naming the registry", code, errs)
	}
}

// serveAndPredict runs shoal serve with args until it answers the iris
// example correctly, then stops it and returns its logs.
func serveAndPredict(t *testing.T, args ...string) string {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr servetest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, append([]string{"serve", "-http", addr, "-grpc", ""}, args...), io.Discard, &stderr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 30s:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Post("http://"+addr+"/predict", "application/json", strings.NewReader(`{"instances":[[5.1,3.5,1.4,0.2],[6.2,2.9,4.3,1.3],[6.7,3.0,5.2,2.3]]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != `{"predictions":[0,1,2]}` {
		t.Errorf("POST /predict = %d %s, want {\"predictions\":[0,1,2]}", resp.StatusCode, b)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exit code %d:\n%s", code, stderr.String())
	}
	return stderr.String()
}

func TestPushPullUsage(t *testing.T) {
	model := exampleModel(t)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"push", model}, 2, "usage"},
		{[]string{"push", model, "127.0.0.1:1/iris:1"}, 2, "oci://"},
		{[]string{"push", t.TempDir(), "oci://127.0.0.1:1/iris:1"}, 1, "not a model directory"},
		{[]string{"push", "/definitely/not/here", "oci://127.0.0.1:1/iris:1"}, 1, "no such file"},
		{[]string{"push", model, "oci://127.0.0.1:1/iris:1"}, 1, "127.0.0.1:1"},
		{[]string{"pull", "oci://127.0.0.1:1/iris:1"}, 2, "usage"},
		{[]string{"pull", "iris:1", t.TempDir()}, 2, "oci://"},
		{[]string{"pull", "oci://127.0.0.1:1/iris:1", t.TempDir(), "-max-size", "0"}, 2, "-max-size"},
	} {
		if code, out, errs := run(t, c.args...); code != c.code || !strings.Contains(out+errs, c.want) {
			t.Errorf("shoal %q = %d\n%s%s\nwant %d with %q", c.args, code, out, errs, c.code, c.want)
		}
	}
}

// TestUpServesAModelFromItsRegistry pushes the example model into the
// registry shoal up embeds on its control listener, applies the iris
// deployment again with a reference to it by tag (a rolling update from
// the built-in model's revision), and predicts through the gateway; the
// stored revision is pinned to the digest. Restarted with a file that references
// the tag, shoal up resolves it before its listeners serve (from its
// registry's manifests on disk) and keeps the same revision.
func TestUpServesAModelFromItsRegistry(t *testing.T) {
	t.Setenv("SHOAL_MODEL_CACHE", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	state := t.TempDir()
	u := startUp(t, state, nil)
	resp, err := http.Get(u.ctl + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Distribution-API-Version") == "" {
		t.Fatalf("GET /v2/ on the control listener = %s %v, want the registry", resp.Status, resp.Header)
	}
	waitFor(t, 30*time.Second, "the built-in iris ready", func() bool { return u.settled("iris", 1) })
	builtin := u.deployment("iris")
	ref := "oci://" + u.ctlAddr + "/models/iris:1"
	code, out, errs := run(t, "push", exampleModel(t), ref)
	if code != 0 {
		t.Fatalf("push = %d\n%s", code, errs)
	}
	digest := strings.TrimSpace(out)
	doc := "apiVersion: shoal.dev/v1alpha1\nkind: ModelDeployment\nmetadata:\n  name: iris\nspec:\n  model:\n    uri: " + ref + "\n"
	u.apply(doc)
	d := u.deployment("iris")
	if d.Spec.Model.URI != ref+"@"+digest {
		t.Fatalf("stored model uri %s, want %s@%s", d.Spec.Model.URI, ref, digest)
	}
	rev := control.RevisionName(&d)
	if rev == control.RevisionName(&builtin) {
		t.Fatalf("the oci:// model did not make a new revision (%s)", rev)
	}
	waitFor(t, 60*time.Second, "iris ready", func() bool { return u.settled("iris", 1) })
	if err := u.predict("iris"); err != nil {
		t.Fatal(err)
	}

	// An unresolvable tag is refused at apply.
	resp, err = http.Post(u.ctl+"/v1/deployments", "application/yaml", strings.NewReader(strings.Replace(doc, ":1\n", ":nope\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "iris:nope") {
		t.Errorf("apply of a missing tag = %s %s, want 400", resp.Status, b)
	}

	u.kill()
	file := filepath.Join(t.TempDir(), "iris.yaml")
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	u2 := startUp(t, state, u, file)
	d2 := u2.deployment("iris")
	if got := control.RevisionName(&d2); got != rev || d2.Spec.Model.URI != d.Spec.Model.URI {
		t.Errorf("after restart: revision %s uri %s, want %s %s", got, d2.Spec.Model.URI, rev, d.Spec.Model.URI)
	}
	waitFor(t, 60*time.Second, "iris ready after restart", func() bool { return u2.settled("iris", 1) })
	waitFor(t, 10*time.Second, "a prediction after restart", func() bool { return u2.predict("iris") == nil })
}

// TestUpRegistryListeners: shoal up's registry on a listener of its own
// (-registry), and under /v2/ of the control API's handler otherwise.
func TestUpRegistryListeners(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	u, err := openUpRegistry(t.TempDir(), "127.0.0.1:1", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- u.serve(ctx) }()
	ref := "oci://" + u.addr + "/models/iris:1"
	code, out, errs := run(t, "push", exampleModel(t), ref)
	if code != 0 {
		t.Fatalf("push to -registry = %d\n%s", code, errs)
	}
	if pinned, err := u.resolve(ctx, ref); err != nil || pinned != ref+"@"+strings.TrimSpace(out) {
		t.Errorf("resolve(%s) = %s, %v, want it pinned to %s", ref, pinned, err, out)
	}
	if p, err := u.resolve(ctx, "/models/iris"); err != nil || p != "/models/iris" {
		t.Errorf("resolve(path) = %s, %v, want it unchanged", p, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve = %v", err)
	}

	shared, err := openUpRegistry(t.TempDir(), "127.0.0.1:8070", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "control API") })
	srv := httptest.NewServer(shared.handler(api))
	defer srv.Close()
	for path, want := range map[string]string{"/v1/info": "control API", "/v2/": "{}"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/v2/" && (resp.StatusCode != 200 || resp.Header.Get("Docker-Distribution-API-Version") == "") {
			t.Errorf("GET /v2/ = %s %v, want the registry", resp.Status, resp.Header)
		}
		if path == "/v1/info" && string(b) != want {
			t.Errorf("GET /v1/info = %q, want the control API", b)
		}
	}
}

// TestUpStartupKeepsThePinWithoutTheRegistry: an object given to shoal up
// whose registry is down keeps the pin stored for it, so a restart does
// not need the registry; one never pinned fails.
func TestUpStartupKeepsThePinWithoutTheRegistry(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	st, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u, err := openUpRegistry(t.TempDir(), "127.0.0.1:8070", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	const tag = "oci://127.0.0.1:1/models/iris:1"
	pinned := tag + "@sha256:" + strings.Repeat("ab", 32)
	dep := func(name, uri string) v1alpha1.ModelDeployment {
		d := v1alpha1.ModelDeployment{
			TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindModelDeployment},
			Metadata: v1alpha1.ObjectMeta{Name: name},
			Spec:     v1alpha1.ModelDeploymentSpec{Model: v1alpha1.ModelSource{URI: uri}},
		}
		d.Default()
		return d
	}
	if _, err := st.Create(dep("iris", pinned)); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	d := dep("iris", tag)
	if err := u.pinStartup(t.Context(), st, &d, log); err != nil || d.Spec.Model.URI != pinned {
		t.Errorf("pinStartup(stored pin, registry down) = %v, uri %s, want the stored pin", err, d.Spec.Model.URI)
	}
	other := dep("wine", tag)
	if err := u.pinStartup(t.Context(), st, &other, log); !errors.Is(err, control.ErrBadRequest) {
		t.Errorf("pinStartup(never pinned, registry down) = %v, want ErrBadRequest", err)
	}
}
