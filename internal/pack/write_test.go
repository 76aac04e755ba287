package pack_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shoal-ml/shoal/internal/pack"
)

func TestWriteLayoutAndLoadBase(t *testing.T) {
	img := build(t, pack.Options{ModelDir: repo, Binary: staticBinary(t)})
	dir := filepath.Join(t.TempDir(), "oci")
	if err := pack.WriteLayout(dir, "iris:1", img); err != nil {
		t.Fatal(err)
	}
	// Writing again under the same name replaces the entry.
	if err := pack.WriteLayout(dir, "iris:1", img); err != nil {
		t.Fatal(err)
	}
	ii, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := ii.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "iris:1" {
		t.Fatalf("index.json manifests = %+v, want one named iris:1", im.Manifests)
	}
	back, err := pack.LoadBase(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := digest(t, back), digest(t, img); got != want {
		t.Errorf("image read back from the layout: %s, want %s", got, want)
	}
}

func TestWriteTarballAndLoadBase(t *testing.T) {
	img := build(t, pack.Options{ModelDir: repo, Binary: staticBinary(t)})
	p := filepath.Join(t.TempDir(), "iris.tar")
	if err := pack.WriteTarballFile(p, "iris:1", img); err != nil {
		t.Fatal(err)
	}
	back, err := pack.LoadBase(p)
	if err != nil {
		t.Fatal(err)
	}
	// A docker save tarball keeps the config and layers (not the manifest).
	gotCfg, _ := back.ConfigName()
	wantCfg, _ := img.ConfigName()
	if gotCfg != wantCfg {
		t.Errorf("config read back from the tarball: %s, want %s", gotCfg, wantCfg)
	}
	bl, _ := back.Layers()
	il, _ := img.Layers()
	for i := range il {
		gd, _ := bl[i].Digest()
		wd, _ := il[i].Digest()
		if gd != wd {
			t.Errorf("layer %d read back: %s, want %s", i, gd, wd)
		}
	}

	if err := pack.WriteTarballFile(p+"2", "Not A Tag!", img); err == nil {
		t.Error("WriteTarballFile with a bad tag succeeded")
	}
	if _, err := os.Stat(p + "2"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed WriteTarballFile left a file behind: %v", err)
	}
	if _, err := pack.LoadBase(filepath.Join(t.TempDir(), "missing.tar")); err == nil {
		t.Error("LoadBase of a missing file succeeded")
	}
}

func TestPushToARegistry(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	img := build(t, pack.Options{ModelDir: repo, Binary: staticBinary(t)})

	var lines []string
	ref := host + "/models/iris:1"
	if err := pack.Push(context.Background(), ref, img, func(s string) { lines = append(lines, s) }); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if len(lines) == 0 {
		t.Error("Push reported no progress")
	}
	r, _ := name.ParseReference(ref)
	got, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	if gd, wd := digest(t, got), digest(t, img); gd != wd {
		t.Errorf("pulled %s, pushed %s", gd, wd)
	}
}

func TestPushToAnUnreachableRegistry(t *testing.T) {
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	img := build(t, pack.Options{ModelDir: repo, Binary: staticBinary(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = pack.Push(ctx, addr+"/iris:1", img, nil)
	if !errors.Is(err, pack.ErrPush) || !strings.Contains(err.Error(), addr) {
		t.Errorf("Push to %s: %v, want an ErrPush naming the registry", addr, err)
	}
	if err := pack.Push(ctx, "Bad Ref", img, nil); !errors.Is(err, pack.ErrPush) {
		t.Errorf("Push to a bad reference: %v, want ErrPush", err)
	}
}
