package pack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// refNameAnnotation names an image in an OCI image layout's index.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// ErrPush wraps every error of Push: a bad reference, an unreachable
// registry, refused credentials.
var ErrPush = errors.New("pack: push")

// WriteTarball writes img to w as a tarball `docker load` reads (the
// `docker save` format), tagged tag ("iris:1", "registry.example/iris:1").
func WriteTarball(w io.Writer, tag string, img v1.Image) error {
	t, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	return tarball.Write(t, img, w)
}

// WriteTarballFile is WriteTarball to a new file at path. A failed write
// leaves no file behind.
func WriteTarballFile(path, tag string, img v1.Image) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	return WriteTarball(f, tag, img)
}

// WriteLayout adds img to the OCI image layout in dir, creating the layout
// if dir holds none. With a non-empty tag the image's index entry is
// annotated org.opencontainers.image.ref.name=tag, replacing an entry
// already holding that name; blobs already in the layout are not
// rewritten.
func WriteLayout(dir, tag string, img v1.Image) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "index.json")); !errors.Is(serr, os.ErrNotExist) {
			return fmt.Errorf("image layout %s: %w", dir, err)
		}
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("image layout %s: %w", dir, err)
		}
	}
	if tag == "" {
		return p.AppendImage(img)
	}
	ann := layout.WithAnnotations(map[string]string{refNameAnnotation: tag})
	return p.ReplaceImage(img, match.Annotation(refNameAnnotation, tag), ann)
}

// Push bounds each step of talking to a registry, so an unreachable
// one fails in seconds rather than hanging; the caller's ctx bounds the
// whole push.
const (
	dialTimeout   = 10 * time.Second
	headerTimeout = 30 * time.Second
)

// Push uploads img to the registry as ref ("registry.example/iris:1"),
// with credentials from the Docker config file (as `docker login` writes
// it). Registries on localhost and private addresses are spoken to over
// plain HTTP. progress, if not nil, receives a line per quarter uploaded.
// Every error wraps ErrPush.
func Push(ctx context.Context, ref string, img v1.Image, progress func(string)) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("%w: reference %q: %w", ErrPush, ref, err)
	}
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = headerTimeout
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithTransport(tr),
		remote.WithUserAgent("shoal-package"),
	}
	done := make(chan struct{})
	if progress != nil {
		updates := make(chan v1.Update, 16)
		opts = append(opts, remote.WithProgress(updates))
		go func() {
			defer close(done)
			reportProgress(updates, progress)
		}()
	} else {
		close(done)
	}
	err = remote.Write(r, img, opts...)
	<-done
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrPush, r.Context().RegistryStr(), err)
	}
	return nil
}

// reportProgress turns upload updates into a line per quarter; it returns
// when updates is closed.
func reportProgress(updates <-chan v1.Update, progress func(string)) {
	last := int64(-1)
	for u := range updates {
		if u.Error != nil || u.Total <= 0 {
			continue
		}
		q := u.Complete * 4 / u.Total
		if q > last {
			last = q
			progress(fmt.Sprintf("pushed %.1f of %.1f MiB", float64(u.Complete)/(1<<20), float64(u.Total)/(1<<20)))
		}
	}
}

// LoadBase reads a base image from a `docker save` tarball or an OCI image
// layout directory. The tarball or layout must hold one image, or several
// of which one is for linux on this machine's architecture.
func LoadBase(path string) (v1.Image, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("base image: %w", err)
	}
	if !st.IsDir() {
		img, err := tarball.ImageFromPath(path, nil)
		if err != nil {
			return nil, fmt.Errorf("base image %s (want a docker save tarball or an OCI layout directory): %w", path, err)
		}
		return img, nil
	}
	ii, err := layout.ImageIndexFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("base image %s (want a docker save tarball or an OCI layout directory): %w", path, err)
	}
	return pickImage(ii, path)
}

// pickImage returns the one image of ii, or its image for linux on this
// machine's architecture, looking through nested indexes.
func pickImage(ii v1.ImageIndex, where string) (v1.Image, error) {
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, err
	}
	var found []v1.Descriptor
	for _, d := range im.Manifests {
		if d.MediaType.IsIndex() {
			child, err := ii.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			img, err := pickImage(child, where)
			if err == nil {
				return img, nil
			}
			continue
		}
		if d.MediaType.IsImage() {
			found = append(found, d)
		}
	}
	if len(found) == 1 {
		return ii.Image(found[0].Digest)
	}
	for _, d := range found {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
			return ii.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("base image %s: %d images and none only for linux/%s", where, len(found), runtime.GOARCH)
}
