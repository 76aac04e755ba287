package registry

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Scheme prefixes a model reference: oci://HOST/REPOSITORY:TAG or
// oci://HOST/REPOSITORY@sha256:HEX (or both, TAG@DIGEST, where the digest
// wins).
const Scheme = "oci://"

// DefaultMaxBytes is the unpacked size limit of Client.MaxBytes' zero
// value.
const DefaultMaxBytes = 16 << 30

// maxConfigBytes bounds a config blob and a manifest.
const maxConfigBytes = 4 << 20

// Errors of Client.
var (
	// ErrReference is an oci:// reference that does not parse.
	ErrReference = errors.New("registry: bad oci:// reference")
	// ErrNotArtifact is a manifest that is not a shoal model artifact.
	ErrNotArtifact = errors.New("registry: not a shoal model artifact")
	// ErrDigest is content whose digest (or size) is not the one its
	// reference or descriptor names.
	ErrDigest = errors.New("registry: digest mismatch")
)

// IsReference reports whether s is an oci:// model reference.
func IsReference(s string) bool { return strings.HasPrefix(s, Scheme) }

// ParseReference parses an oci:// reference. Plain HTTP is used for
// loopback registries (localhost, 127.0.0.1, ::1) as go-containerregistry
// decides (it also does for RFC 1918 addresses and *.local names).
func ParseReference(s string) (name.Reference, error) {
	if !IsReference(s) {
		return nil, fmt.Errorf("%w: %q does not start with %s", ErrReference, s, Scheme)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(s, Scheme))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReference, err)
	}
	return ref, nil
}

// Client pushes, resolves and pulls model artifacts. The zero value is
// ready to use: credentials from the Docker config file, the default
// transport, DefaultMaxBytes. It is safe for concurrent use.
type Client struct {
	// Keychain gives registry credentials. Nil means authn.DefaultKeychain
	// (the Docker config file and its credential helpers).
	Keychain authn.Keychain
	// Transport carries the requests. Nil means remote.DefaultTransport.
	Transport http.RoundTripper
	// MaxBytes bounds what Pull accepts: the layer's compressed and
	// unpacked sizes. Zero means DefaultMaxBytes.
	MaxBytes int64
	// Progress, when set, is called from another goroutine as Push uploads
	// the layer, with the bytes sent so far and the layer's size. Nil
	// means no progress reports.
	Progress func(sent, total int64)
}

func (c *Client) options(ctx context.Context) []remote.Option {
	kc := c.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithUserAgent("shoal")}
	if c.Transport != nil {
		opts = append(opts, remote.WithTransport(c.Transport))
	}
	return opts
}

func (c *Client) maxBytes() int64 {
	if c.MaxBytes > 0 {
		return c.MaxBytes
	}
	return DefaultMaxBytes
}

// Push uploads a's blobs and then its manifest to ref (oci://...), and
// returns the manifest digest.
func (c *Client) Push(ctx context.Context, a *Artifact, ref string) (v1.Hash, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	if d, ok := r.(name.Digest); ok && d.DigestStr() != a.Digest.String() {
		return v1.Hash{}, fmt.Errorf("%w: pushing %s to a reference pinned to %s", ErrDigest, a.Digest, d.DigestStr())
	}
	opts := c.options(ctx)
	if err := remote.WriteLayer(r.Context(), a.config, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", r.Context(), err)
	}
	lopts := opts
	var reported chan struct{}
	if c.Progress != nil {
		size, err := a.layer.Size()
		if err != nil {
			return v1.Hash{}, err
		}
		updates := make(chan v1.Update, 64)
		reported = make(chan struct{})
		go func() {
			defer close(reported)
			for u := range updates { // closed by WriteLayer
				if u.Error == nil {
					c.Progress(u.Complete, size)
				}
			}
		}()
		lopts = append(slices.Clone(opts), remote.WithProgress(updates))
	}
	err = remote.WriteLayer(r.Context(), a.layer, lopts...)
	if reported != nil {
		<-reported
	}
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", r.Context(), err)
	}
	if err := remote.Put(r, a, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", r, err)
	}
	return a.Digest, nil
}

// Manifest is a fetched model artifact manifest.
type Manifest struct {
	// Ref is the reference pinned to Digest.
	Ref      name.Digest
	Digest   v1.Hash
	Manifest *v1.Manifest
}

// Get fetches the manifest ref names, checks that it is a shoal model
// artifact and, for a reference with a digest, that the manifest has that
// digest.
func (c *Client) Get(ctx context.Context, ref string) (Manifest, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return Manifest{}, err
	}
	desc, err := remote.Get(r, c.options(ctx)...)
	if err != nil {
		return Manifest{}, fmt.Errorf("get %s: %w", r, err)
	}
	if len(desc.Manifest) > maxConfigBytes {
		return Manifest{}, fmt.Errorf("%w: manifest of %d bytes", ErrTooLarge, len(desc.Manifest))
	}
	h, _, err := v1.SHA256(bytes.NewReader(desc.Manifest))
	if err != nil {
		return Manifest{}, err
	}
	if d, ok := r.(name.Digest); ok && d.DigestStr() != h.String() {
		return Manifest{}, fmt.Errorf("%w: manifest of %s has digest %s", ErrDigest, r, h)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return Manifest{}, fmt.Errorf("%w: %s: %v", ErrNotArtifact, r, err)
	}
	switch {
	case desc.MediaType != types.OCIManifestSchema1 && m.MediaType != types.OCIManifestSchema1:
		return Manifest{}, fmt.Errorf("%w: %s is a %s", ErrNotArtifact, r, desc.MediaType)
	case m.Config.MediaType != ConfigMediaType:
		return Manifest{}, fmt.Errorf("%w: %s has config media type %q, want %q", ErrNotArtifact, r, m.Config.MediaType, ConfigMediaType)
	case len(m.Layers) != 1 || m.Layers[0].MediaType != LayerMediaType:
		return Manifest{}, fmt.Errorf("%w: %s must have one layer of media type %q", ErrNotArtifact, r, LayerMediaType)
	}
	return Manifest{Ref: r.Context().Digest(h.String()), Digest: h, Manifest: m}, nil
}

// Resolve returns ref pinned to the digest of the model artifact it names
// now: oci://HOST/REPO:TAG becomes oci://HOST/REPO:TAG@sha256:HEX. A
// reference that already has a digest is checked and returned as it is.
func (c *Client) Resolve(ctx context.Context, ref string) (string, error) {
	m, err := c.Get(ctx, ref)
	if err != nil {
		return "", err
	}
	if strings.Contains(ref, "@") {
		return ref, nil
	}
	return ref + "@" + m.Digest.String(), nil
}

// Pulled describes a pulled artifact.
type Pulled struct {
	Digest v1.Hash
	Config Config
}

// Pull writes the model repository of the artifact ref names into dir,
// which must not exist or be empty. It verifies the manifest digest when
// ref has one, and the digest and size of every blob; it unpacks into a
// temporary directory beside dir and renames it into place only once
// everything is verified, so dir never holds a partial or unverified
// repository.
func (c *Client) Pull(ctx context.Context, ref, dir string) (Pulled, error) {
	m, err := c.Get(ctx, ref)
	if err != nil {
		return Pulled{}, err
	}
	if fi, err := os.Stat(dir); err == nil {
		ents, err := os.ReadDir(dir)
		if !fi.IsDir() || err != nil || len(ents) > 0 {
			return Pulled{}, fmt.Errorf("pull into %s: not an empty directory", dir)
		}
	}
	var p Pulled
	p.Digest = m.Digest
	var cb bytes.Buffer
	if err := c.fetch(ctx, m.Ref, m.Manifest.Config, maxConfigBytes, &cb); err != nil {
		return Pulled{}, err
	}
	if err := json.Unmarshal(cb.Bytes(), &p.Config); err != nil {
		return Pulled{}, fmt.Errorf("%w: config: %v", ErrNotArtifact, err)
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return Pulled{}, err
	}
	tmp, err := os.MkdirTemp(parent, ".shoal-pull-")
	if err != nil {
		return Pulled{}, err
	}
	defer os.RemoveAll(tmp)
	// The layer is verified whole before gzip and tar read a byte of it.
	blob, err := os.Create(filepath.Join(tmp, "layer.tar.gz"))
	if err != nil {
		return Pulled{}, err
	}
	defer blob.Close()
	limit := c.maxBytes()
	if err := c.fetch(ctx, m.Ref, m.Manifest.Layers[0], limit, blob); err != nil {
		return Pulled{}, err
	}
	if _, err := blob.Seek(0, io.SeekStart); err != nil {
		return Pulled{}, err
	}
	zr, err := gzip.NewReader(blob)
	if err != nil {
		return Pulled{}, fmt.Errorf("layer: %w", err)
	}
	repo := filepath.Join(tmp, "repo")
	if err := os.Mkdir(repo, 0o755); err != nil {
		return Pulled{}, err
	}
	if err := extract(zr, repo, limit); err != nil {
		return Pulled{}, err
	}
	os.Remove(dir) // an empty directory; a missing one is fine
	if err := os.Rename(repo, dir); err != nil {
		return Pulled{}, err
	}
	return p, nil
}

// fetch copies the blob desc describes, from ref's repository, to w. It
// fails with ErrTooLarge if desc says more than limit bytes, and with
// ErrDigest if the blob's size or digest is not desc's.
func (c *Client) fetch(ctx context.Context, ref name.Digest, desc v1.Descriptor, limit int64, w io.Writer) error {
	if desc.Size < 0 || desc.Size > limit {
		return fmt.Errorf("%w: blob %s of %d bytes (limit %d)", ErrTooLarge, desc.Digest, desc.Size, limit)
	}
	if desc.Digest.Algorithm != "sha256" {
		return fmt.Errorf("%w: blob %s: only sha256 digests are supported", ErrNotArtifact, desc.Digest)
	}
	l, err := remote.Layer(ref.Context().Digest(desc.Digest.String()), c.options(ctx)...)
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	hr := &hashReader{r: io.LimitReader(rc, desc.Size+1), h: sha256.New()}
	_, err = io.Copy(w, hr)
	got := "sha256:" + hex.EncodeToString(hr.h.Sum(nil))
	switch {
	case hr.n == desc.Size && got != desc.Digest.String():
		// go-containerregistry's own check fails the last read too.
		return fmt.Errorf("%w: blob %s has digest %s", ErrDigest, desc.Digest, got)
	case err != nil:
		return fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
	case hr.n != desc.Size:
		return fmt.Errorf("%w: blob %s: got %d bytes or more, want %d", ErrDigest, desc.Digest, hr.n, desc.Size)
	}
	return nil
}

// hashReader hashes and counts what is read through it.
type hashReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}
