package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shoal-ml/shoal/internal/pack"
)

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func runPackage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("package", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var (
		tag         = fl.String("t", "", "image `NAME:TAG` (required with -o and -layout)")
		out         = fl.String("o", "", "write a docker load tarball to `FILE`")
		layoutDir   = fl.String("layout", "", "add the image to the OCI image layout in `DIR`")
		push        = fl.String("push", "", "push the image to `REF` (registry/name:tag; credentials from the Docker config file)")
		pushTimeout = fl.Duration("push-timeout", 5*time.Minute, "limit on the whole push")
		base        = fl.String("base", "", "base image: a docker save tarball or OCI layout `PATH` (default: scratch)")
		binary      = fl.String("binary", "", "static linux shoal binary to put in the image (default: this one)")
		source      = fl.String("source", "", "org.opencontainers.image.source label `URL`")
		created     = fl.String("created", "", "image creation `time`, RFC 3339 (default: $SOURCE_DATE_EPOCH, else the Unix epoch, for reproducible builds)")
		pyBase      = fl.String("python-base", "", "custom code: write a Docker build context FROM this Python `IMAGE` (python:3.11-slim) instead of building")
		contextDir  = fl.String("context", "", "with -python-base: the build context `DIR` to write (absent or empty)")
		reqs        = fl.String("requirements", "", "with -python-base: a requirements.txt `FILE` to pip install")
		quiet       = fl.Bool("q", false, "no progress output")
		pkgs        stringsFlag
	)
	fl.Var(&pkgs, "pip", "with -python-base: a pip `PACKAGE` to install (repeatable)")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "Usage: shoal package MODEL_REPOSITORY|MODEL_FILE -t NAME:TAG [-o FILE | -layout DIR | -push REF] [flags]\n"+
			"       shoal package MODEL_REPOSITORY -python-base IMAGE -context DIR [-requirements FILE] [-pip PKG]...\n\n"+
			"Builds an OCI image that serves the models (the static shoal binary and the models as two\n"+
			"layers, FROM scratch unless -base) without a Docker daemon, reproducibly. Models with custom\n"+
			"code (python, http) need an interpreter: -python-base writes a Dockerfile and build context\n"+
			"for your docker instead. See docs/packaging.md.\n\nFlags:\n")
		fl.PrintDefaults()
	}
	// Flags may come before or after the model (shoal package ./models -t iris:1).
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{err}
		}
		if fl.NArg() == 0 {
			break
		}
		pos = append(pos, fl.Arg(0))
		args = fl.Args()[1:]
	}
	if len(pos) != 1 {
		return usageError{fmt.Errorf("want one model repository or file, got %d arguments", len(pos))}
	}
	model := pos[0]
	var progress func(string)
	if !*quiet {
		progress = func(s string) { fmt.Fprintln(stderr, s) }
	}
	when := time.Time{}
	if *created != "" {
		t, err := time.Parse(time.RFC3339, *created)
		if err != nil {
			return usageError{fmt.Errorf("-created %q: want RFC 3339 (2026-01-02T15:04:05Z)", *created)}
		}
		when = t
	} else if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		// The reproducible-builds.org convention: seconds since the epoch.
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec < 0 {
			return usageError{fmt.Errorf("SOURCE_DATE_EPOCH %q: want whole seconds since 1970", v)}
		}
		when = time.Unix(sec, 0)
	}

	if *pyBase != "" {
		if *out != "" || *layoutDir != "" || *push != "" || *base != "" {
			return usageError{errors.New("-python-base writes a build context: it does not take -o, -layout, -push or -base")}
		}
		if *contextDir == "" {
			return usageError{errors.New("-python-base needs -context DIR, where to write the build context")}
		}
		_, err := pack.Context(ctx, pack.ContextOptions{
			ModelDir: model, Binary: *binary, PythonBase: *pyBase,
			Requirements: *reqs, Packages: pkgs, Source: *source, Created: when,
			Dir: *contextDir, Progress: progress,
		})
		if err != nil {
			return err
		}
		name := *tag
		if name == "" {
			name = "NAME:TAG"
		}
		fmt.Fprintf(stdout, "wrote build context %s; build it with:\n  docker build -t %s %s\n", *contextDir, name, *contextDir)
		return nil
	}
	if *contextDir != "" || *reqs != "" || len(pkgs) > 0 {
		return usageError{errors.New("-context, -requirements and -pip go with -python-base")}
	}
	if *out == "" && *layoutDir == "" && *push == "" {
		return usageError{errors.New("say where the image goes: -o FILE, -layout DIR or -push REF")}
	}
	if (*out != "" || *layoutDir != "") && *tag == "" {
		return usageError{errors.New("-o and -layout need -t NAME:TAG")}
	}
	if *pushTimeout <= 0 {
		return usageError{errors.New("-push-timeout must be positive")}
	}

	opts := pack.Options{ModelDir: model, Binary: *binary, Source: *source, Created: when, Progress: progress}
	if *base != "" {
		img, err := pack.LoadBase(*base)
		if err != nil {
			return err
		}
		opts.Base = img
	}
	start := time.Now()
	img, err := pack.Image(ctx, opts)
	if err != nil {
		return err
	}
	if *out != "" {
		if progress != nil {
			progress("writing " + *out)
		}
		if err := pack.WriteTarballFile(*out, *tag, img); err != nil {
			return fmt.Errorf("write %s: %w", *out, err)
		}
	}
	if *layoutDir != "" {
		if progress != nil {
			progress("writing OCI layout " + *layoutDir)
		}
		if err := pack.WriteLayout(*layoutDir, *tag, img); err != nil {
			return fmt.Errorf("write %s: %w", *layoutDir, err)
		}
	}
	if *push != "" {
		if progress != nil {
			progress("pushing " + *push)
		}
		pctx, cancel := context.WithTimeout(ctx, *pushTimeout)
		err := pack.Push(pctx, *push, img, progress)
		cancel()
		if err != nil {
			return err
		}
	}
	return printImage(stdout, img, *tag, time.Since(start))
}

// printImage prints the image's digest and size, the summary a build ends
// with.
func printImage(w io.Writer, img v1.Image, tag string, took time.Duration) error {
	d, err := img.Digest()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var size int64
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return err
		}
		size += n
	}
	if tag == "" {
		tag = "image"
	}
	fmt.Fprintf(w, "%s %s (%d layers, %.1f MiB compressed) in %.1fs\n", tag, d, len(layers), float64(size)/(1<<20), took.Seconds())
	return nil
}
