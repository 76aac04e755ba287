package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Cache keeps pulled model repositories in content-addressed directories:
// Dir/sha256/<hex of the manifest digest>/. A directory appears there only
// by a rename after its artifact was verified, so one that exists is
// complete and was verified. Its methods are safe for concurrent use, also
// by several processes sharing Dir.
type Cache struct {
	// Dir is the cache's root directory. Required.
	Dir string
	// Client pulls. The zero Client is fine.
	Client *Client
}

// Fetch returns the directory holding the model repository of ref and the
// artifact's digest. A reference with a digest whose directory exists is
// served from the cache without asking the registry; any other is
// resolved and, unless its digest is cached already, pulled and verified.
func (c *Cache) Fetch(ctx context.Context, ref string) (string, v1.Hash, error) {
	if c.Dir == "" {
		return "", v1.Hash{}, errors.New("registry: Cache.Dir is empty")
	}
	cl := c.Client
	if cl == nil {
		cl = &Client{}
	}
	r, err := ParseReference(ref)
	if err != nil {
		return "", v1.Hash{}, err
	}
	if d, ok := r.(name.Digest); ok {
		h, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return "", v1.Hash{}, fmt.Errorf("%w: %v", ErrReference, err)
		}
		if dir := c.path(h); exists(dir) {
			return dir, h, nil
		}
	}
	m, err := cl.Get(ctx, ref)
	if err != nil {
		return "", v1.Hash{}, err
	}
	dir := c.path(m.Digest)
	if exists(dir) {
		return dir, m.Digest, nil
	}
	if _, err := cl.Pull(ctx, Scheme+m.Ref.String(), dir); err != nil {
		if exists(dir) { // another process pulled it meanwhile
			return dir, m.Digest, nil
		}
		return "", v1.Hash{}, err
	}
	return dir, m.Digest, nil
}

func (c *Cache) path(h v1.Hash) string { return filepath.Join(c.Dir, h.Algorithm, h.Hex) }

func exists(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}
