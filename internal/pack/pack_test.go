package pack_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/xgboost"
	"github.com/shoal-ml/shoal/internal/pack"
	"github.com/shoal-ml/shoal/internal/serve"
)

// repo is the example model repository (it holds the iris model).
const repo = "../../examples/models"

// writeELF writes a minimal x86-64 linux ELF executable: one PT_LOAD
// program header for a static binary, or a PT_INTERP naming the dynamic
// loader, as a dynamically linked binary has.
func writeELF(t *testing.T, path string, dynamic bool) {
	t.Helper()
	var b bytes.Buffer
	hdr := elf.Header64{
		Ident:     [16]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(elf.EM_X86_64),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     0x400078,
		Phoff:     64,
		Ehsize:    64,
		Phentsize: 56,
		Phnum:     1,
		Shentsize: 64,
	}
	interp := "/lib64/ld-linux-x86-64.so.2\x00"
	ph := elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: 0x400000, Paddr: 0x400000, Filesz: 120, Memsz: 120, Align: 0x1000}
	if dynamic {
		ph = elf.Prog64{Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R), Off: 120, Vaddr: 0x400078, Filesz: uint64(len(interp)), Memsz: uint64(len(interp)), Align: 1}
	}
	binary.Write(&b, binary.LittleEndian, hdr)
	binary.Write(&b, binary.LittleEndian, ph)
	if dynamic {
		b.WriteString(interp)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
}

// staticBinary returns a path holding a static ELF executable.
func staticBinary(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shoal")
	writeELF(t, p, false)
	return p
}

func build(t *testing.T, o pack.Options) v1.Image {
	t.Helper()
	img, err := pack.Image(context.Background(), o)
	if err != nil {
		t.Fatalf("Image: %v", err)
	}
	return img
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestImageIsReproducible(t *testing.T) {
	bin := staticBinary(t)
	a := build(t, pack.Options{ModelDir: repo, Binary: bin})
	b := build(t, pack.Options{ModelDir: repo, Binary: bin})
	if da, db := digest(t, a), digest(t, b); da != db {
		t.Fatalf("two builds of the same inputs: digests %s and %s", da, db)
	}

	// A copy of the repository elsewhere, with other modification times,
	// gives the same model layer; another creation time gives another
	// image but the same layers.
	cp := t.TempDir()
	if err := os.CopyFS(cp, os.DirFS(repo)); err != nil {
		t.Fatal(err)
	}
	later := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	filepath.WalkDir(cp, func(p string, _ fs.DirEntry, _ error) error { return os.Chtimes(p, later, later) })
	c := build(t, pack.Options{ModelDir: cp, Binary: bin, Created: later})
	if digest(t, c) == digest(t, a) {
		t.Errorf("a different creation time gave the same image digest")
	}
	la, _ := a.Layers()
	lc, _ := c.Layers()
	for i := range la {
		da, _ := la[i].Digest()
		dc, _ := lc[i].Digest()
		if da != dc {
			t.Errorf("layer %d: %s from the repository, %s from a copy with other mtimes", i, da, dc)
		}
	}
}

// tarEntry is what the tests check of one layer entry.
type tarEntry struct {
	Name     string
	Mode     int64
	UID, GID int
	Size     int64
	ModTime  int64
}

func layerEntries(t *testing.T, l v1.Layer) []tarEntry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []tarEntry
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{h.Name, h.Mode, h.Uid, h.Gid, h.Size, h.ModTime.Unix()})
	}
}

func TestImageLayers(t *testing.T) {
	bin := staticBinary(t)
	st, _ := os.Stat(bin)
	img := build(t, pack.Options{ModelDir: repo, Binary: bin})
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Fatalf("got %d layers, want 2 (binary, models)", len(layers))
	}
	for i, l := range layers {
		if mt, _ := l.MediaType(); mt != types.OCILayer {
			t.Errorf("layer %d media type %s, want %s", i, mt, types.OCILayer)
		}
	}
	wantBin := []tarEntry{
		{Name: "shoal", Mode: 0o755, Size: st.Size()},
		{Name: "tmp/", Mode: 0o1777},
	}
	if d := diff(wantBin, layerEntries(t, layers[0])); d != "" {
		t.Errorf("binary layer :\n%s", d)
	}

	// The model layer holds the repository's files, sorted, owned by root,
	// readable by all, at the epoch.
	want := []tarEntry{{Name: "models/", Mode: 0o755}}
	filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(repo, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			want = append(want, tarEntry{Name: "models/" + filepath.ToSlash(rel) + "/", Mode: 0o755})
			return nil
		}
		info, _ := d.Info()
		want = append(want, tarEntry{Name: "models/" + filepath.ToSlash(rel), Mode: 0o644, Size: info.Size()})
		return nil
	})
	got := layerEntries(t, layers[1])
	if d := diff(want, got); d != "" {
		t.Errorf("model layer :\n%s", d)
	}
	if !slices.Contains(got, tarEntry{Name: "models/iris/1/model.json", Mode: 0o644, Size: fileSize(t, repo+"/iris/1/model.json")}) {
		t.Errorf("model layer lacks models/iris/1/model.json: %v", got)
	}
}

func fileSize(t *testing.T, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// servedSignature is the sha256 of what a real shoal server answers for
// GET /v2/models/iris.
func servedSignature(t *testing.T) string {
	t.Helper()
	s, err := serve.New(serve.Config{Repository: repo, Loaders: map[string]backend.Loader{"xgboost": xgboost.Load}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.LoadAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v2/models/iris")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestImageConfig(t *testing.T) {
	img := build(t, pack.Options{ModelDir: repo, Binary: staticBinary(t), Source: "https://github.com/shoal-ml/shoal"})
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("User = %q, want 65532:65532 (not root)", cf.Config.User)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64 (the binary's)", cf.OS, cf.Architecture)
	}
	if !cf.Created.Time.Equal(time.Unix(0, 0)) {
		t.Errorf("Created = %v, want the epoch", cf.Created)
	}
	if d := diff([]string{"/shoal", "serve"}, cf.Config.Entrypoint); d != "" {
		t.Errorf("Entrypoint :\n%s", d)
	}
	if d := diff([]string{"-http", "0.0.0.0:8080", "-grpc", "0.0.0.0:8081", "/models"}, cf.Config.Cmd); d != "" {
		t.Errorf("Cmd :\n%s", d)
	}
	if d := diff(map[string]struct{}{"8080/tcp": {}, "8081/tcp": {}}, cf.Config.ExposedPorts); d != "" {
		t.Errorf("ExposedPorts :\n%s", d)
	}
	want := map[string]string{
		"io.shoal.models":                  "iris",
		"io.shoal.model.iris.versions":     "1",
		"io.shoal.model.iris.format":       "xgboost",
		"io.shoal.model.iris.signature":    servedSignature(t),
		"org.opencontainers.image.title":   "iris",
		"org.opencontainers.image.source":  "https://github.com/shoal-ml/shoal",
		"org.opencontainers.image.created": "1970-01-01T00:00:00Z",
	}
	if d := diff(want, cf.Config.Labels); d != "" {
		t.Errorf("Labels :\n%s", d)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s, want %s", m.MediaType, types.OCIManifestSchema1)
	}
	if d := diff(want, m.Annotations); d != "" {
		t.Errorf("manifest annotations :\n%s", d)
	}
	if len(cf.History) != 2 {
		t.Errorf("history has %d entries, want 2: %+v", len(cf.History), cf.History)
	}
}

func TestImageOfOneModelFile(t *testing.T) {
	img := build(t, pack.Options{ModelDir: repo + "/iris/1/model.json", Binary: staticBinary(t)})
	cf, _ := img.ConfigFile()
	if got := cf.Config.Cmd[len(cf.Config.Cmd)-1]; got != "/models/model.json" {
		t.Errorf("serve path %q, want /models/model.json", got)
	}
	if got := cf.Config.Labels["io.shoal.models"]; got != "model" {
		t.Errorf("models label %q, want model (a file's model is named after it)", got)
	}
	layers, _ := img.Layers()
	var names []string
	for _, e := range layerEntries(t, layers[1]) {
		names = append(names, e.Name)
	}
	if d := diff([]string{"models/", "models/model.json"}, names); d != "" {
		t.Errorf("model layer :\n%s", d)
	}
}

func TestImageOnABase(t *testing.T) {
	bin := staticBinary(t)
	base := build(t, pack.Options{ModelDir: repo, Binary: bin})
	img := build(t, pack.Options{ModelDir: repo, Binary: bin, Base: base})
	layers, _ := img.Layers()
	if len(layers) != 4 {
		t.Errorf("got %d layers on a 2-layer base, want 4", len(layers))
	}

	// A base for another architecture is refused.
	cf, _ := base.ConfigFile()
	cf = cf.DeepCopy()
	cf.Architecture = "arm64"
	other, err := mutate.ConfigFile(base, cf)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pack.Image(context.Background(), pack.Options{ModelDir: repo, Binary: bin, Base: other})
	if !errors.Is(err, pack.ErrPlatform) {
		t.Errorf("Image on an arm64 base with an amd64 binary: %v, want ErrPlatform", err)
	}
}

func TestImageRefuses(t *testing.T) {
	dir := t.TempDir()
	dynamic := filepath.Join(dir, "dynamic")
	writeELF(t, dynamic, true)
	script := filepath.Join(dir, "script")
	os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755)

	custom := t.TempDir()
	writeFile(t, custom+"/app/1/model.yaml", "format: http\nparameters:\n  command: python3 predict.py\n")
	unknown := t.TempDir()
	writeFile(t, unknown+"/m/1/model.yaml", "format: sklearn\n")
	writeFile(t, unknown+"/m/1/model.pkl", "x")
	garbled := t.TempDir()
	writeFile(t, garbled+"/m/1/model.json", "{not xgboost")
	empty := t.TempDir()

	bin := staticBinary(t)
	for _, tc := range []struct {
		name    string
		o       pack.Options
		wantErr error  // errors.Is
		wantMsg string // in the message
	}{
		{"dynamic binary", pack.Options{ModelDir: repo, Binary: dynamic}, pack.ErrDynamicBinary, "CGO_ENABLED=0"},
		{"not an ELF", pack.Options{ModelDir: repo, Binary: script}, pack.ErrNotLinuxBinary, "script"},
		{"missing binary", pack.Options{ModelDir: repo, Binary: dir + "/nope"}, pack.ErrNotLinuxBinary, "nope"},
		{"missing model", pack.Options{ModelDir: dir + "/no-models", Binary: bin}, fs.ErrNotExist, "no-models"},
		{"custom code", pack.Options{ModelDir: custom, Binary: bin}, pack.ErrCustomCode, "-python-base"},
		{"unknown format", pack.Options{ModelDir: unknown, Binary: bin}, serve.ErrBadConfig, `unknown format "sklearn"`},
		{"model that does not parse", pack.Options{ModelDir: garbled, Binary: bin}, nil, `load model "m" version 1`},
		{"empty repository", pack.Options{ModelDir: empty, Binary: bin}, pack.ErrNoModels, "no models"},
		{"a model directory", pack.Options{ModelDir: repo + "/iris", Binary: bin}, pack.ErrModelDir, "give the repository above it (../../examples/models)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pack.Image(context.Background(), tc.o)
			if err == nil {
				t.Fatal("Image succeeded, want an error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Image: %v, want an error wrapping %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Image: %q, want it to mention %q", err, tc.wantMsg)
			}
		})
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestModelLayerLeavesOutHiddenAndPycache(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(repo)); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir+"/.git/HEAD", "ref: main\n")
	writeFile(t, dir+"/iris/1/__pycache__/x.cpython-311.pyc", "bytecode")
	a := build(t, pack.Options{ModelDir: repo, Binary: staticBinary(t)})
	b := build(t, pack.Options{ModelDir: dir, Binary: staticBinary(t)})
	la, _ := a.Layers()
	lb, _ := b.Layers()
	da, _ := la[1].Digest()
	db, _ := lb[1].Digest()
	if da != db {
		t.Errorf("model layer %s with .git and __pycache__ added, want %s (left out)", db, da)
	}
}

// diff returns "" if want and got are deeply equal, else both.
func diff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	return fmt.Sprintf("want %+v\n got %+v", want, got)
}

func TestCheckBinary(t *testing.T) {
	p, err := pack.CheckBinary(staticBinary(t))
	if err != nil || p.OS != "linux" || p.Architecture != "amd64" {
		t.Errorf("CheckBinary(static x86-64 ELF) = %+v, %v; want linux/amd64", p, err)
	}
	dyn := filepath.Join(t.TempDir(), "dyn")
	writeELF(t, dyn, true)
	if _, err := pack.CheckBinary(dyn); !errors.Is(err, pack.ErrDynamicBinary) {
		t.Errorf("CheckBinary(ELF with PT_INTERP) = %v, want ErrDynamicBinary", err)
	}
}
