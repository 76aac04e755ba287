package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/shoal-ml/shoal/examples"
	"github.com/shoal-ml/shoal/internal/pack"
	"github.com/shoal-ml/shoal/internal/replica/replicatest"
	"github.com/shoal-ml/shoal/internal/serve/servetest"
)

// These tests run against the real Docker engine of the environment
// (DOCKER_HOST or the default socket) and are skipped when none answers.
// They pull no image: every image is built by internal/pack from a static
// shoal binary built once in TestMain. Each test uses its own owner label,
// network and image repository, and removes them when it ends.

var (
	// shoalBin is the static shoal binary built for the package's tests.
	shoalBin string
	// noEngine says why no engine can be used; empty when one answers.
	noEngine string
	// imageRepo is the image repository of every test: they share the
	// images (one per model content), which TestMain removes at the end.
	imageRepo string
	// irisImage is the tag of the example repository's image, loaded by
	// TestMain.
	irisImage string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = api.Ping(ctx)
		cancel()
		api.Close()
	}
	if err != nil {
		noEngine = err.Error()
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "shoal-docker-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	imageRepo = uniqueName()
	defer removeImages(imageRepo)
	shoalBin = filepath.Join(dir, "shoal")
	if err := buildStatic(shoalBin, "github.com/shoal-ml/shoal/cmd/shoal"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := prebuild(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// buildStatic builds a static linux binary of pkg at out.
func buildStatic(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build static %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// prebuild builds the image of the example repository with `shoal
// package` and loads it, tagged as the backend tags it: the tests start
// their iris replicas from it, so that no test compresses the 30 MB
// binary in this process, which takes minutes under the race detector.
// TestImageBuildAndLoad covers the backend's own build.
func prebuild(dir string) error {
	model := filepath.Join(dir, "models")
	root, err := fs.Sub(examples.Models, "models")
	if err != nil {
		return err
	}
	if err := os.CopyFS(model, root); err != nil {
		return err
	}
	src, err := source(model, shoalBin)
	if err != nil {
		return err
	}
	tag := imageRepo + "/iris:" + src
	irisImage = tag
	tar := filepath.Join(dir, "iris.tar")
	if out, err := exec.Command(shoalBin, "package", "-q", "-t", tag, "-o", tar, model).CombinedOutput(); err != nil {
		return fmt.Errorf("shoal package: %v\n%s", err, out)
	}
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer api.Close()
	return load(context.Background(), api, tag, func(w io.Writer) error {
		f, err := os.Open(tar)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
}

// engine returns a client of the engine, or skips the test when none
// answers.
func engine(t *testing.T) *client.Client {
	t.Helper()
	if noEngine != "" {
		t.Skipf("no Docker engine answers: %s", noEngine)
	}
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	return api
}

func uniqueName() string {
	var b [4]byte
	rand.Read(b[:])
	return "shoaltest-" + hex.EncodeToString(b[:])
}

// removeImages removes the images of a repository.
func removeImages(repo string) {
	api, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return
	}
	defer api.Close()
	ctx := context.Background()
	imgs, err := api.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", repo+"/*"))})
	if err != nil {
		fmt.Fprintf(os.Stderr, "remove test images: %v\n", err)
	}
	for _, im := range imgs {
		if _, err := api.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			fmt.Fprintf(os.Stderr, "remove test image: %v\n", err)
		}
	}
}

// testConfig returns a Config with a unique owner and network, the shared
// image repository, and a logger that the test prints if it fails. It
// removes the containers and network when the test ends, even if it
// fails.
func testConfig(t *testing.T, api *client.Client) (Config, *servetest.SyncBuffer) {
	t.Helper()
	name := uniqueName()
	logs := &servetest.SyncBuffer{}
	cfg := Config{
		Client: api, Binary: shoalBin, Owner: name, Network: name, ImageRepository: imageRepo,
		Grace: 2 * time.Second, HealthInterval: 100 * time.Millisecond, StartTimeout: 30 * time.Second,
		MinBackoff: 50 * time.Millisecond,
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("backend log:\n%s", logs.String())
		}
		cleanup(t, api, name)
	})
	return cfg, logs
}

// cleanup removes the containers and network of a test.
func cleanup(t *testing.T, api *client.Client, name string) {
	ctx := context.Background()
	cs, err := api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelManagedBy+"="+name))})
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, c := range cs {
		if err := api.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if err := api.NetworkRemove(ctx, name); err != nil && !cerrdefs.IsNotFound(err) {
		t.Errorf("cleanup: network: %v", err)
	}
}

// containers returns the test's containers (running or not).
func containers(t *testing.T, api *client.Client, owner string) []container.Summary {
	t.Helper()
	cs, err := api.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelManagedBy+"="+owner))})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// The helpers shared with the process backend's and shoal up's tests.
var (
	modelDir = replicatest.ModelDir
	waitFor  = replicatest.WaitFor
)

const irisRequest = replicatest.IrisRequest

var predictClient = &http.Client{Timeout: 30 * time.Second}

// predict asks base (a URL) for an iris prediction and checks its class.
func predict(base string) error { return replicatest.Predict(base, "iris") }

func one(t *testing.T, b *Backend) Replica {
	t.Helper()
	l := b.List()
	if len(l) != 1 {
		t.Fatalf("List() = %d replicas, want 1: %+v", len(l), l)
	}
	return l[0]
}

// TestStartKillStop starts a replica with limits, predicts through its
// published port, reads its logs, kills its container (the backend
// starts it again), and stops it: no container is left.
func TestStartKillStop(t *testing.T) {
	api := engine(t)
	cfg, _ := testConfig(t, api)
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, err := b.Start(Spec{
		Deployment: "iris", Revision: "iris-abc", Model: modelDir(t),
		Args: []string{"-default-timeout", "20s"}, Env: []string{"SHOAL_TEST=1"},
		MilliCPU: 500, Memory: 256 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ready || r.ID != "iris-abc-000001" {
		t.Errorf("Start() = %+v, want iris-abc-000001 not ready", r)
	}
	waitFor(t, 60*time.Second, "ready", func() bool { return one(t, b).Ready })
	r = one(t, b)
	if !strings.HasPrefix(r.HTTP, "127.0.0.1:") || !strings.HasPrefix(r.GRPC, "127.0.0.1:") || r.Container == "" {
		t.Fatalf("ready replica %+v, want 127.0.0.1 ports and a container", r)
	}
	if err := predict("http://" + r.HTTP); err != nil {
		t.Fatal(err)
	}

	info, err := api.ContainerInspect(t.Context(), r.Container)
	if err != nil {
		t.Fatal(err)
	}
	hc := info.HostConfig
	if hc.NanoCPUs != 500e6 || hc.Memory != 256<<20 || string(hc.NetworkMode) != cfg.Network {
		t.Errorf("container NanoCPUs %d, Memory %d, network %s; want 5e8, %d, %s", hc.NanoCPUs, hc.Memory, hc.NetworkMode, 256<<20, cfg.Network)
	}
	for k, want := range map[string]string{LabelManagedBy: cfg.Owner, LabelDeployment: "iris", LabelModel: "iris", LabelRevision: "iris-abc", LabelReplica: r.ID} {
		if got := info.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if info.Config.User != pack.User || !strings.Contains(strings.Join(info.Config.Cmd, " "), "-default-timeout 20s /models") {
		t.Errorf("container user %q cmd %q", info.Config.User, info.Config.Cmd)
	}
	logs, err := b.Logs(t.Context(), r.ID, 50)
	if err != nil || !strings.Contains(string(logs), "model ready") {
		t.Errorf("Logs() = %q, %v; want the server's log with \"model ready\"", logs, err)
	}

	// Killed, the container is started again, on new host ports.
	if err := api.ContainerKill(t.Context(), r.Container, "KILL"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "restart", func() bool { n := one(t, b); return n.Ready && n.Restarts == 1 })
	after := one(t, b)
	if err := predict("http://" + after.HTTP); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	// The container's log keeps the output of both runs.
	if logs, _ := b.Logs(t.Context(), r.ID, 1000); strings.Count(string(logs), "model ready") != 2 {
		t.Errorf("Logs() after the restart = %q, want \"model ready\" twice", logs)
	}

	if err := b.Stop(r.ID); err != nil {
		t.Fatal(err)
	}
	if l := b.List(); len(l) != 0 {
		t.Errorf("List() after Stop = %+v, want none", l)
	}
	if cs := containers(t, api, cfg.Owner); len(cs) != 0 {
		t.Errorf("%d containers left after Stop", len(cs))
	}
	if err := b.Stop(r.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Stop = %v, want ErrNotFound", err)
	}
	if _, err := b.Logs(t.Context(), r.ID, 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("Logs of a stopped replica = %v, want ErrNotFound", err)
	}
}

// TestAdopt plays a control plane that dies: a new Backend of the same
// owner adopts the running container (same replica, same container),
// removes the one that is no longer running, numbers new replicas after
// the adopted ones, drops an adopted replica whose container is removed,
// and leaves no container once closed.
func TestAdopt(t *testing.T) {
	api := engine(t)
	cfg, logs := testConfig(t, api)
	b1, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	model := modelDir(t)
	spec := Spec{Deployment: "iris", Revision: "iris-abc", Model: model}
	for range 2 {
		if _, err := b1.Start(spec); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 60*time.Second, "two ready", func() bool {
		l := b1.List()
		return len(l) == 2 && l[0].Ready && l[1].Ready
	})
	l := b1.List()
	kept, dead := l[0], l[1]
	b1.Detach()
	before := len(logs.String())
	if err := api.ContainerStop(t.Context(), dead.Container, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}

	b2, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	r := one(t, b2)
	if r.ID != kept.ID || r.Container != kept.Container || !r.Adopted {
		t.Fatalf("adopted %+v, want %s in container %s", r, kept.ID, shortID(kept.Container))
	}
	waitFor(t, 10*time.Second, "adopted ready", func() bool { return one(t, b2).Ready })
	if err := predict("http://" + one(t, b2).HTTP); err != nil {
		t.Fatal(err)
	}
	if cs := containers(t, api, cfg.Owner); len(cs) != 1 {
		t.Errorf("%d containers after adoption, want 1 (the stopped one removed)", len(cs))
	}

	n, err := b2.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	if n.ID != "iris-abc-000003" {
		t.Errorf("new replica ID %s, want iris-abc-000003", n.ID)
	}
	waitFor(t, 60*time.Second, "new replica ready", func() bool {
		for _, r := range b2.List() {
			if r.ID == n.ID {
				return r.Ready
			}
		}
		return false
	})
	// The new Backend found the image in the engine by its source tag.
	if l := logs.String()[before:]; strings.Contains(l, "image loaded") {
		t.Errorf("the new Backend loaded the image again:\n%s", l)
	}

	// The adopted container is removed behind the backend's back: it
	// leaves the list (it cannot be made again without its Spec).
	if err := api.ContainerRemove(t.Context(), kept.Container, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "removed replica gone", func() bool { return len(b2.List()) == 1 })

	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	if cs := containers(t, api, cfg.Owner); len(cs) != 0 {
		t.Errorf("%d containers left after Close", len(cs))
	}
}

// TestStartErrors: bad specs fail at once; a model the image cannot hold
// keeps failing, with the reason in the replica's logs.
func TestStartErrors(t *testing.T) {
	api := engine(t)
	cfg, _ := testConfig(t, api)
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, s := range []Spec{
		{Revision: "r", Model: "m"},
		{Deployment: "d", Revision: "r", Model: "oci://registry/iris:1"},
		{Deployment: "d", Revision: "r", Model: "m", Memory: -1},
	} {
		if _, err := b.Start(s); err == nil {
			t.Errorf("Start(%+v) = nil error", s)
		}
	}
	r, err := b.Start(Spec{Deployment: "d", Revision: "d-1", Model: filepath.Join(t.TempDir(), "missing")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "failed attempt", func() bool { return one(t, b).Restarts > 0 })
	logs, err := b.Logs(t.Context(), r.ID, 10)
	if err != nil || !strings.Contains(string(logs), "shoal: build image") {
		t.Errorf("Logs() = %q, %v; want the build error", logs, err)
	}
	if one(t, b).Ready {
		t.Error("replica of a missing model is ready")
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	notELF := filepath.Join(t.TempDir(), "shoal")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  Config
		want error
	}{
		{"not an ELF binary", Config{Binary: notELF}, pack.ErrNotLinuxBinary},
		{"negative grace", Config{Binary: notELF, Grace: -1}, nil},
		{"upper-case repository", Config{Binary: notELF, ImageRepository: "Shoal"}, nil},
	} {
		_, err := New(t.Context(), c.cfg)
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: New() = %v, want %v", c.name, err, c.want)
		}
	}
}

// TestSource: the source digest names the content, not where it lies.
func TestSource(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "shoal")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, b := modelDir(t), modelDir(t)
	digest := func(model string) string {
		t.Helper()
		d, err := source(model, bin)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	da := digest(a)
	if len(da) != 20 || digest(b) != da {
		t.Fatalf("source of two copies: %s and %s, want equal, 20 digits", da, digest(b))
	}
	file := filepath.Join(b, "iris", "1", "model.json")
	if err := os.Chmod(file, 0o755); err != nil {
		t.Fatal(err)
	}
	if digest(b) == da {
		t.Error("source unchanged by an executable bit")
	}
	if err := os.WriteFile(file, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if digest(b) == da {
		t.Error("source unchanged by a file's content")
	}
	if err := os.WriteFile(bin, []byte("other binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	if digest(a) == da {
		t.Error("source unchanged by the binary")
	}
	if _, err := source(filepath.Join(a, "missing"), bin); err == nil {
		t.Error("source of a missing model: want an error")
	}
}

// TestImageBuildAndLoad builds an image in the backend (with a small
// static binary standing in for shoal) and streams it into the engine: it
// is tagged by its source, is the image `shoal package` makes of the same
// inputs, and is found, not built again, for another revision.
func TestImageBuildAndLoad(t *testing.T) {
	api := engine(t)
	tiny := filepath.Join(t.TempDir(), "tiny")
	if err := buildStatic(tiny, "github.com/shoal-ml/shoal/internal/replica/docker/testdata/tiny"); err != nil {
		t.Fatal(err)
	}
	cfg, logs := testConfig(t, api)
	cfg.Binary = tiny
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	model := modelDir(t)
	id, _, err := b.image(t.Context(), Spec{Deployment: "tiny", Revision: "tiny-1", Model: model})
	if err != nil {
		t.Fatal(err)
	}
	src, err := source(model, tiny)
	if err != nil {
		t.Fatal(err)
	}
	info, err := api.ImageInspect(t.Context(), imageRepo+"/tiny:"+src)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != id || info.Config.User != pack.User || strings.Join(info.Config.Entrypoint, " ") != "/shoal serve" ||
		info.Config.Labels[pack.LabelModels] != "iris" {
		t.Errorf("image %s: user %q, entrypoint %q, labels %v", info.ID, info.Config.User, info.Config.Entrypoint, info.Config.Labels)
	}

	// `shoal package` of the same binary and model makes the same image.
	tar := filepath.Join(t.TempDir(), "tiny.tar")
	if out, err := exec.Command(shoalBin, "package", "-q", "-binary", tiny, "-t", "tiny:1", "-o", tar, model).CombinedOutput(); err != nil {
		t.Fatalf("shoal package: %v\n%s", err, out)
	}
	tag, err := name.NewTag("tiny:1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(tar, &tag)
	if err != nil {
		t.Fatal(err)
	}
	if cfgName, err := img.ConfigName(); err != nil || cfgName.String() != id {
		t.Errorf("shoal package made %v (%v), the backend %s", cfgName, err, id)
	}

	// Another revision of the same source: found by its tag.
	id2, _, err := b.image(t.Context(), Spec{Deployment: "tiny", Revision: "tiny-2", Model: modelDir(t)})
	if err != nil || id2 != id {
		t.Errorf("image of another revision = %s, %v; want %s", id2, err, id)
	}
	if n := strings.Count(logs.String(), "image loaded"); n != 1 {
		t.Errorf("%d images loaded, want 1", n)
	}
}
