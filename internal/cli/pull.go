package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoal-ml/shoal/internal/registry"
)

func runPull(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("pull", flag.ContinueOnError)
	fl.SetOutput(stderr)
	maxSize := fl.Int64("max-size", registry.DefaultMaxBytes, "largest artifact accepted, `bytes` (compressed layer and unpacked files)")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "Usage: shoal pull oci://HOST/REPOSITORY[:TAG|@sha256:HEX] DIR\n\n"+
			"Pulls a model artifact and writes its model repository into DIR (which must\n"+
			"not exist or be empty), verifying every blob digest, and the manifest digest\n"+
			"when the reference has one. Serve it with `shoal serve DIR`.\n"+
			"See docs/registry.md.\n\nFlags:\n")
		fl.PrintDefaults()
	}
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError{errors.New("usage: shoal pull oci://HOST/REPOSITORY[:TAG|@DIGEST] DIR")}
	}
	if _, err := registry.ParseReference(pos[0]); err != nil {
		return usageError{err}
	}
	if *maxSize <= 0 {
		return usageError{fmt.Errorf("-max-size %d: want a positive number of bytes", *maxSize)}
	}
	c := &registry.Client{MaxBytes: *maxSize}
	p, err := c.Pull(ctx, pos[0], pos[1])
	if err != nil {
		return err
	}
	var names []string
	for _, m := range p.Config.Models {
		names = append(names, m.Name)
	}
	fmt.Fprintf(stdout, "%s: %s into %s\n", p.Digest, strings.Join(names, ", "), pos[1])
	return nil
}

// modelCacheDir returns the default directory of `shoal serve oci://`'s
// cache: $SHOAL_MODEL_CACHE, else shoal/models under the user's cache
// directory, else under the system's temporary directory.
func modelCacheDir() string {
	if d := os.Getenv("SHOAL_MODEL_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "shoal", "models")
	}
	return filepath.Join(os.TempDir(), "shoal-models")
}
