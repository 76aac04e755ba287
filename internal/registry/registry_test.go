package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shoal-ml/shoal/examples"
)

// irisConfig describes the example iris model as `shoal push` would.
var irisConfig = Config{Models: []Model{{
	Name: "iris", Format: "xgboost",
	Versions: []Version{{
		Version: "1",
		Inputs:  []Tensor{{Name: "input-0", Datatype: "FP32", Shape: []int64{-1, 4}}},
		Outputs: []Tensor{{Name: "output-0", Datatype: "INT64", Shape: []int64{-1}}},
	}},
}}}

// irisDir copies the example iris model directory (iris/1/...) to a new
// directory and returns the model directory.
func irisDir(t *testing.T) string {
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

// newRegistry serves a Registry stored in a new directory, behind wrap
// (nil: none), and returns its host:port and directory.
func newRegistry(t *testing.T, wrap func(http.Handler) http.Handler) (string, string) {
	t.Helper()
	dir := t.TempDir()
	reg, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	var h http.Handler = reg
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), dir
}

// client is a Client that asks no credential store and does not retry.
func client() *Client { return &Client{Keychain: authn.NewMultiKeychain()} }

func pushIris(t *testing.T, c *Client, ref string) v1.Hash {
	t.Helper()
	src, err := Scan(irisDir(t))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Build(src, irisConfig, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	d, err := c.Push(context.Background(), a, ref)
	if err != nil {
		t.Fatal(err)
	}
	if d != a.Digest {
		t.Fatalf("Push = %s, want the built digest %s", d, a.Digest)
	}
	return d
}

// readTree returns the files under dir by slash path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			t.Errorf("%s: not a regular file", p)
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPushPullRoundTrip(t *testing.T) {
	host, _ := newRegistry(t, nil)
	c := client()
	ctx := context.Background()
	digest := pushIris(t, c, "oci://"+host+"/models/iris:1")

	want := readTree(t, filepath.Dir(irisDir(t)))
	for name, ref := range map[string]string{
		"tag":        "oci://" + host + "/models/iris:1",
		"digest":     "oci://" + host + "/models/iris@" + digest.String(),
		"tag@digest": "oci://" + host + "/models/iris:1@" + digest.String(),
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "repo")
			p, err := c.Pull(ctx, ref, dir)
			if err != nil {
				t.Fatal(err)
			}
			if p.Digest != digest {
				t.Errorf("Pull digest = %s, want %s", p.Digest, digest)
			}
			if got := p.Config.SignatureDigest(); got != irisConfig.SignatureDigest() {
				t.Errorf("pulled config signature %s, want %s", got, irisConfig.SignatureDigest())
			}
			got := readTree(t, dir)
			if len(got) != len(want) {
				t.Errorf("pulled files %v, want %d files", keys(got), len(want))
			}
			for f, b := range want {
				if got[f] != b {
					t.Errorf("pulled %s differs from the pushed file", f)
				}
			}
		})
	}

	m, err := c.Get(ctx, "oci://"+host+"/models/iris:1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Manifest.ArtifactType != string(ConfigMediaType) || m.Manifest.Annotations[AnnotationName] != "iris" ||
		m.Manifest.Annotations[AnnotationFormat] != "xgboost" || m.Manifest.Annotations[AnnotationVersions] != "1" ||
		m.Manifest.Annotations[AnnotationSignature] != irisConfig.SignatureDigest() {
		t.Errorf("manifest artifactType %q annotations %v", m.Manifest.ArtifactType, m.Manifest.Annotations)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestBuildIsReproducible(t *testing.T) {
	dir := irisDir(t)
	build := func() v1.Hash {
		src, err := Scan(dir)
		if err != nil {
			t.Fatal(err)
		}
		a, err := Build(src, irisConfig, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		return a.Digest
	}
	first := build()
	later := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "1", "model.json"), later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".DS_Store"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if again := build(); again != first {
		t.Errorf("digest after touching a file and adding a hidden one = %s, want %s", again, first)
	}
	if err := os.WriteFile(filepath.Join(dir, "1", "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed := build(); changed == first {
		t.Errorf("digest after adding a file = %s, the same as before", changed)
	}
}

func TestScan(t *testing.T) {
	model := irisDir(t)
	src, err := Scan(model)
	if err != nil {
		t.Fatal(err)
	}
	if src.Prefix != "iris" || len(src.Models) != 1 || src.Repository != filepath.Dir(model) {
		t.Errorf("Scan(model dir) = %+v", src)
	}
	src, err = Scan(filepath.Dir(model))
	if err != nil {
		t.Fatal(err)
	}
	if src.Prefix != "" || len(src.Models) != 1 || src.Models[0] != "iris" {
		t.Errorf("Scan(repository) = %+v", src)
	}
	if _, err := Scan(t.TempDir()); !errors.Is(err, ErrNotModel) {
		t.Errorf("Scan(empty dir) = %v, want ErrNotModel", err)
	}
	link := filepath.Join(model, "1", "link.json")
	if err := os.Symlink("model.json", link); err != nil {
		t.Fatal(err)
	}
	src, _ = Scan(model)
	if _, err := Build(src, irisConfig, t.TempDir()); err == nil || !strings.Contains(err.Error(), "link") {
		t.Errorf("Build with a symlink = %v, want an error naming links", err)
	}
}

// tamper returns a wrapper that flips one byte of the responses to GET
// requests whose path ends in suffix.
func tamper(suffix *string) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || *suffix == "" || !strings.HasSuffix(r.URL.Path, *suffix) {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			b := rec.Body.Bytes()
			if len(b) > 0 {
				b[len(b)/2] ^= 0x01
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(b)
		})
	}
}

func TestPullDetectsTampering(t *testing.T) {
	var suffix string
	host, _ := newRegistry(t, tamper(&suffix))
	c := client()
	ctx := context.Background()
	digest := pushIris(t, c, "oci://"+host+"/models/iris:1")
	m, err := c.Get(ctx, "oci://"+host+"/models/iris:1")
	if err != nil {
		t.Fatal(err)
	}
	pinned := "oci://" + host + "/models/iris@" + digest.String()
	for _, tc := range []struct {
		name, suffix, ref string
		want              error
	}{
		{"layer blob", "/blobs/" + m.Manifest.Layers[0].Digest.String(), pinned, ErrDigest},
		{"config blob", "/blobs/" + m.Manifest.Config.Digest.String(), pinned, ErrDigest},
		{"pinned manifest", "/manifests/" + digest.String(), pinned, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			suffix = tc.suffix
			defer func() { suffix = "" }()
			dir := filepath.Join(t.TempDir(), "repo")
			_, err := c.Pull(ctx, tc.ref, dir)
			if err == nil {
				t.Fatal("Pull of a tampered artifact succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Pull = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), "digest") {
				t.Errorf("Pull = %v, want an error about the digest", err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed pull left %s (stat: %v)", dir, err)
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".shoal-pull-*"))
			if len(left) > 0 {
				t.Errorf("a failed pull left %v", left)
			}
		})
	}
}

// tarEntry is one entry of a hand-made layer.
type tarEntry struct {
	name, link string
	typ        byte
	body       string
	size       int64 // header size when body is empty
}

func makeLayer(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body))}
		if e.size > 0 {
			h.Size = e.size
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			io.WriteString(tw, e.body)
			if e.size > int64(len(e.body)) {
				tw.Write(make([]byte, e.size-int64(len(e.body))))
			}
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// pushRaw pushes a model artifact made of a hand-made layer.
func pushRaw(t *testing.T, host, repo string, layer []byte) string {
	t.Helper()
	cfg, _ := json.Marshal(irisConfig)
	cl, ll := static.NewLayer(cfg, ConfigMediaType), static.NewLayer(layer, LayerMediaType)
	cd, _ := describe(cl, ConfigMediaType)
	ld, _ := describe(ll, LayerMediaType)
	raw, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: string(ConfigMediaType), Config: cd, Layers: []v1.Descriptor{ld}})
	ref, err := ParseReference("oci://" + host + "/" + repo + ":1")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []v1.Layer{cl, ll} {
		if err := remote.WriteLayer(ref.Context(), l); err != nil {
			t.Fatal(err)
		}
	}
	a := &Artifact{Manifest: raw}
	if err := remote.Put(ref, a); err != nil {
		t.Fatal(err)
	}
	return "oci://" + ref.String()
}

func TestPullRefusesHostileArchives(t *testing.T) {
	host, _ := newRegistry(t, nil)
	c := &Client{Keychain: authn.NewMultiKeychain(), MaxBytes: 1 << 20}
	ok := tarEntry{name: "iris/1/model.json", typ: tar.TypeReg, body: "{}"}
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		want    error
	}{
		{"parent path", []tarEntry{ok, {name: "../evil", typ: tar.TypeReg, body: "x"}}, ErrUnsafePath},
		{"nested parent path", []tarEntry{{name: "iris/../../evil", typ: tar.TypeReg, body: "x"}}, ErrUnsafePath},
		{"absolute path", []tarEntry{{name: "/tmp/evil", typ: tar.TypeReg, body: "x"}}, ErrUnsafePath},
		{"backslash path", []tarEntry{{name: `..\evil`, typ: tar.TypeReg, body: "x"}}, ErrUnsafePath},
		{"symlink", []tarEntry{{name: "iris/link", link: "/etc/passwd", typ: tar.TypeSymlink}}, ErrEntryType},
		{"symlink then write through it", []tarEntry{{name: "iris", link: "/tmp", typ: tar.TypeSymlink}, ok}, ErrEntryType},
		{"hard link", []tarEntry{ok, {name: "iris/hard", link: "iris/1/model.json", typ: tar.TypeLink}}, ErrEntryType},
		{"device", []tarEntry{{name: "iris/dev", typ: tar.TypeChar}}, ErrEntryType},
		{"fifo", []tarEntry{{name: "iris/fifo", typ: tar.TypeFifo}}, ErrEntryType},
		{"oversized file", []tarEntry{{name: "iris/big", typ: tar.TypeReg, size: 2 << 20}}, ErrTooLarge},
		{"oversized in total", []tarEntry{{name: "iris/a", typ: tar.TypeReg, size: 600 << 10}, {name: "iris/b", typ: tar.TypeReg, size: 600 << 10}}, ErrTooLarge},
		{"file written twice", []tarEntry{ok, ok}, os.ErrExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := pushRaw(t, host, "hostile/"+strings.ReplaceAll(tc.name, " ", "-"), makeLayer(t, tc.entries))
			parent := t.TempDir()
			dir := filepath.Join(parent, "repo")
			_, err := c.Pull(context.Background(), ref, dir)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Pull = %v, want %v", err, tc.want)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("a refused pull left %v in the parent directory", ents)
			}
		})
	}
}

func TestPullRefusesWhatIsNotAModel(t *testing.T) {
	host, _ := newRegistry(t, nil)
	c := client()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := ParseReference("oci://" + host + "/image:1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(context.Background(), "oci://"+host+"/image:1", filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrNotArtifact) {
		t.Errorf("Pull(container image) = %v, want ErrNotArtifact", err)
	}
	for _, bad := range []string{host + "/models/iris:1", "oci://", "oci://" + host + "/Bad Name:1", "oci://" + host + "/x@sha256:nothex"} {
		if _, err := c.Pull(context.Background(), bad, t.TempDir()); !errors.Is(err, ErrReference) {
			t.Errorf("Pull(%q) = %v, want ErrReference", bad, err)
		}
	}
	pushIris(t, c, "oci://"+host+"/models/iris:1")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "keep"), []byte("x"), 0o644)
	if _, err := c.Pull(context.Background(), "oci://"+host+"/models/iris:1", dir); err == nil {
		t.Error("Pull into a non-empty directory succeeded")
	}
	if _, err := c.Pull(context.Background(), "oci://"+host+"/models/iris:1", filepath.Join(dir, "keep")); err == nil {
		t.Error("Pull onto a file succeeded")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "keep")); err != nil || string(b) != "x" {
		t.Errorf("a refused pull touched an existing file: %q, %v", b, err)
	}
}

func TestResolve(t *testing.T) {
	host, _ := newRegistry(t, nil)
	c := client()
	ctx := context.Background()
	tag := "oci://" + host + "/models/iris:stable"
	first := pushIris(t, c, tag)
	got, err := c.Resolve(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if want := tag + "@" + first.String(); got != want {
		t.Errorf("Resolve(%s) = %s, want %s", tag, got, want)
	}
	if again, err := c.Resolve(ctx, got); err != nil || again != got {
		t.Errorf("Resolve(pinned) = %s, %v, want it unchanged", again, err)
	}

	// Move the tag: the pinned reference still names the first artifact.
	dir := irisDir(t)
	os.WriteFile(filepath.Join(dir, "1", "notes.txt"), []byte("v2"), 0o644)
	src, _ := Scan(dir)
	a, err := Build(src, irisConfig, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := c.Push(ctx, a, tag); err != nil {
		t.Fatal(err)
	}
	moved, _ := c.Resolve(ctx, tag)
	if moved == got || !strings.HasSuffix(moved, a.Digest.String()) {
		t.Errorf("Resolve after the tag moved = %s, want the new digest %s", moved, a.Digest)
	}
	p, err := c.Pull(ctx, got, filepath.Join(t.TempDir(), "r"))
	if err != nil || p.Digest != first {
		t.Errorf("Pull(first pin) = %v, %v, want digest %s", p.Digest, err, first)
	}
	if _, err := c.Resolve(ctx, "oci://"+host+"/models/iris:missing"); err == nil {
		t.Error("Resolve of a missing tag succeeded")
	}
}

func TestRegistryKeepsManifestsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	reg, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	host := strings.TrimPrefix(srv.URL, "http://")
	c := client()
	digest := pushIris(t, c, "oci://"+host+"/models/iris:1")
	// A deleted tag stays deleted.
	ref, _ := ParseReference("oci://" + host + "/models/iris:gone")
	if err := remote.Tag(ref.Context().Tag("gone"), &Artifact{Manifest: mustGet(t, c, "oci://"+host+"/models/iris:1")}); err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(ref); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	reg.Close()

	reg, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	srv = httptest.NewServer(reg)
	defer srv.Close()
	host = strings.TrimPrefix(srv.URL, "http://")
	p, err := c.Pull(context.Background(), "oci://"+host+"/models/iris:1", filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Digest != digest {
		t.Errorf("after restart: digest %s, want %s", p.Digest, digest)
	}
	if _, err := c.Get(context.Background(), "oci://"+host+"/models/iris:gone"); err == nil {
		t.Error("after restart: a deleted tag is back")
	}
}

func mustGet(t *testing.T, c *Client, ref string) []byte {
	t.Helper()
	r, _ := ParseReference(ref)
	d, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	return d.Manifest
}

func TestCacheReusesAndVerifies(t *testing.T) {
	host, _ := newRegistry(t, nil)
	c := client()
	digest := pushIris(t, c, "oci://"+host+"/models/iris:1")
	cache := &Cache{Dir: t.TempDir(), Client: c}
	ctx := context.Background()
	dir, d, err := cache.Fetch(ctx, "oci://"+host+"/models/iris:1")
	if err != nil {
		t.Fatal(err)
	}
	if d != digest || dir != filepath.Join(cache.Dir, "sha256", digest.Hex) {
		t.Errorf("Fetch = %s, %s, want the digest's directory", dir, d)
	}
	if _, err := os.Stat(filepath.Join(dir, "iris", "1", "model.json")); err != nil {
		t.Error(err)
	}
	// A pinned reference is served from the cache, even with the
	// registry gone.
	pinned := "oci://127.0.0.1:1/models/iris@" + digest.String()
	if again, _, err := cache.Fetch(ctx, pinned); err != nil || again != dir {
		t.Errorf("Fetch(pinned, registry gone) = %s, %v, want %s from the cache", again, err, dir)
	}
}

func TestLoopbackHosts(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8070": "127.0.0.1:8070 localhost:8070 [::1]:8070",
		":5000":          ":5000 localhost:5000 127.0.0.1:5000 [::1]:5000",
		"10.0.0.1:5000":  "10.0.0.1:5000",
	} {
		if got := strings.Join(LoopbackHosts(addr), " "); got != want {
			t.Errorf("LoopbackHosts(%q) = %q, want %q", addr, got, want)
		}
	}
}

func TestTransportAnswersInProcess(t *testing.T) {
	dir := t.TempDir()
	reg, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg)
	host := strings.TrimPrefix(srv.URL, "http://")
	c := client()
	digest := pushIris(t, c, "oci://"+host+"/models/iris:1")
	srv.Close() // nothing listens any more
	local := &Client{Keychain: authn.NewMultiKeychain(), Transport: reg.Transport(nil, host)}
	got, err := local.Resolve(context.Background(), "oci://"+host+"/models/iris:1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(got, "@"+digest.String()) {
		t.Errorf("Resolve in process = %s, want digest %s", got, digest)
	}
}
