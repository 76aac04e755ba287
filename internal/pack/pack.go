// Package pack builds runnable OCI images of a model repository without a
// Docker daemon: the static shoal binary and the model repository as two
// separate layers on scratch (or a given base image), run as a non-root
// user with `shoal serve` as the entrypoint, labelled with the models'
// names, versions, formats and signature digests. Builds are reproducible:
// the same binary, model files and Options give the same image digest.
//
// It also writes images out (a `docker load` tarball, an OCI image layout,
// a push to a registry) and, for custom code (the python and http
// backends, which need an interpreter in the image), a Dockerfile and build
// context for the user's own docker (Context). It runs no containers and
// talks to no Docker engine.
package pack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Errors returned by Image and Context.
var (
	// ErrDynamicBinary: the shoal binary is dynamically linked (it has an
	// ELF interpreter), so it cannot run FROM scratch.
	ErrDynamicBinary = errors.New("pack: the shoal binary is dynamically linked")
	// ErrNotLinuxBinary: the shoal binary is not a Linux ELF executable.
	ErrNotLinuxBinary = errors.New("pack: the shoal binary is not a linux ELF executable")
	// ErrCustomCode: a model runs custom code (the python or http
	// backend), which needs an interpreter Image cannot provide; use
	// Context instead.
	ErrCustomCode = errors.New("pack: model runs custom code")
	// ErrNoModels: the model repository holds no model.
	ErrNoModels = errors.New("pack: no models in the repository")
	// ErrPlatform: the base image's platform is not the binary's.
	ErrPlatform = errors.New("pack: base image platform does not match the binary")
)

// Where things live in the image, and how the server is started.
const (
	// BinaryPath is the shoal binary in the image.
	BinaryPath = "/shoal"
	// ModelRoot is the directory the model repository is copied to; a
	// single model file lands inside it under its own name.
	ModelRoot = "/models"
	// User is the numeric user:group the server runs as (not root).
	User = "65532:65532"
	// HTTPPort and GRPCPort are the ports `shoal serve` listens on, on
	// every interface, and the image exposes.
	HTTPPort = 8080
	GRPCPort = 8081
)

// Label keys set on the image config (and as manifest annotations on OCI
// images). Per-model keys put the model name in the middle:
// io.shoal.model.<name>.format.
const (
	// LabelModels lists the model names, sorted, comma-separated.
	LabelModels = "io.shoal.models"
	// LabelModelPrefix starts the per-model keys; LabelVersions,
	// LabelFormat and LabelSignature end them.
	LabelModelPrefix = "io.shoal.model."
	// LabelVersions: the serving versions, ascending, comma-separated.
	LabelVersions = ".versions"
	// LabelFormat: the backend format (xgboost, lightgbm, onnx, python, http).
	LabelFormat = ".format"
	// LabelSignature: "sha256:<hex>" of the model metadata JSON that
	// `shoal serve` answers at GET /v2/models/<name>. Absent for custom
	// code, whose signature is only known once its interpreter runs.
	LabelSignature = ".signature"

	LabelTitle   = "org.opencontainers.image.title"
	LabelSource  = "org.opencontainers.image.source"
	LabelCreated = "org.opencontainers.image.created"
)

// Options says what image to build. ModelDir is required; every other
// field's zero value is documented.
type Options struct {
	// ModelDir is a model repository directory (<model>/<version>/...) or
	// a single model file, as `shoal serve` takes.
	ModelDir string
	// Binary is the path of a static linux shoal binary. Empty means the
	// running executable; a dynamically linked binary is refused
	// (ErrDynamicBinary), since scratch has no dynamic loader.
	Binary string
	// Base is the image to build on. Nil means FROM scratch.
	Base v1.Image
	// Source is the org.opencontainers.image.source label. Empty sets none.
	Source string
	// Created is the image's creation time. Zero means the Unix epoch, so
	// builds are reproducible.
	Created time.Time
	// Progress, if set, receives one line per step.
	Progress func(string)
}

func (o *Options) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

// binary returns the binary path, defaulting to the running executable.
func (o *Options) binary() (string, error) {
	if o.Binary != "" {
		return o.Binary, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the running shoal binary: %w", err)
	}
	return exe, nil
}

// ServeArgs returns the `shoal serve` arguments (after the subcommand) an
// image built from model runs with: listen on every interface, serve the
// model under ModelRoot. model is the path given as Options.ModelDir.
func ServeArgs(model string) ([]string, error) {
	p, err := modelPathInImage(model)
	if err != nil {
		return nil, err
	}
	return []string{
		"-http", fmt.Sprintf("0.0.0.0:%d", HTTPPort),
		"-grpc", fmt.Sprintf("0.0.0.0:%d", GRPCPort),
		p,
	}, nil
}

// modelPathInImage is where `shoal serve` finds the model in the image:
// ModelRoot for a repository, ModelRoot/<file> for a single model file.
func modelPathInImage(model string) (string, error) {
	st, err := os.Stat(model)
	if err != nil {
		return "", fmt.Errorf("model: %w", err)
	}
	if st.IsDir() {
		return ModelRoot, nil
	}
	return ModelRoot + "/" + filepath.Base(model), nil
}

// Image builds the image of o.ModelDir. It loads every model with shoal's
// own repository code (so a model `shoal serve` would refuse is refused
// here, with the same message), then stacks the binary layer and the
// model layer on the base. The returned image is lazy in part: writing it
// (WriteTarball, WriteLayout, Push) reads the model files again, so they
// must not change until then.
//
// It returns an error wrapping ErrCustomCode for python and http models,
// ErrDynamicBinary or ErrNotLinuxBinary for an unsuitable binary,
// ErrNoModels for an empty repository and ErrPlatform for a base image of
// another platform.
func Image(ctx context.Context, o Options) (v1.Image, error) {
	if o.ModelDir == "" {
		return nil, errors.New("pack: Options.ModelDir is empty")
	}
	bin, err := o.binary()
	if err != nil {
		return nil, err
	}
	plat, err := CheckBinary(bin)
	if err != nil {
		return nil, err
	}
	o.progress("inspecting models in %s", o.ModelDir)
	models, err := Inspect(ctx, o.ModelDir)
	if err != nil {
		return nil, err
	}
	for _, m := range models {
		if m.Custom() {
			return nil, fmt.Errorf("%w: model %q has format %s, which needs a Python interpreter in the image: write a Docker build context for a Python base image instead (shoal package -python-base)", ErrCustomCode, m.Name, m.Format)
		}
		o.progress("model %s: format %s, versions %s, signature %s", m.Name, m.Format, strings.Join(m.Versions, ","), m.Signature)
	}
	args, err := ServeArgs(o.ModelDir)
	if err != nil {
		return nil, err
	}

	created := o.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC()

	base := o.Base
	layerType := types.OCILayer
	if base == nil {
		base = mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	} else {
		mt, err := base.MediaType()
		if err != nil {
			return nil, fmt.Errorf("base image: %w", err)
		}
		if mt == types.DockerManifestSchema2 {
			layerType = types.DockerLayer
		}
		bcf, err := base.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("base image: %w", err)
		}
		if (bcf.OS != "" && bcf.OS != plat.OS) || (bcf.Architecture != "" && bcf.Architecture != plat.Architecture) {
			return nil, fmt.Errorf("%w: base is %s/%s, binary is %s/%s", ErrPlatform, bcf.OS, bcf.Architecture, plat.OS, plat.Architecture)
		}
	}

	o.progress("layer 1: shoal binary %s", bin)
	binLayer, err := binaryLayer(bin, layerType)
	if err != nil {
		return nil, err
	}
	o.progress("layer 2: model repository %s", o.ModelDir)
	modLayer, err := modelLayer(o.ModelDir, layerType)
	if err != nil {
		return nil, err
	}
	hist := func(by string) v1.History {
		return v1.History{Created: v1.Time{Time: created}, CreatedBy: by, Comment: "shoal package"}
	}
	img, err := mutate.Append(base,
		mutate.Addendum{Layer: binLayer, History: hist("COPY shoal " + BinaryPath)},
		mutate.Addendum{Layer: modLayer, History: hist("COPY models " + ModelRoot)},
	)
	if err != nil {
		return nil, err
	}

	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: created}
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cfg := &cf.Config
	cfg.User = User
	cfg.WorkingDir = "/"
	cfg.Entrypoint = []string{BinaryPath, "serve"}
	cfg.Cmd = args
	if cfg.ExposedPorts == nil {
		cfg.ExposedPorts = map[string]struct{}{}
	}
	cfg.ExposedPorts[fmt.Sprintf("%d/tcp", HTTPPort)] = struct{}{}
	cfg.ExposedPorts[fmt.Sprintf("%d/tcp", GRPCPort)] = struct{}{}
	labels := Labels(models, o.Source, created)
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	for k, v := range labels {
		cfg.Labels[k] = v
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	if mt, err := img.MediaType(); err == nil && mt == types.OCIManifestSchema1 {
		img = mutate.Annotations(img, labels).(v1.Image)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	o.progress("image %s", d)
	return img, nil
}

// Labels returns the labels of an image of models: their names, versions,
// formats and signature digests, the source (if not empty) and the
// creation time.
func Labels(models []Model, source string, created time.Time) map[string]string {
	l := map[string]string{LabelCreated: created.UTC().Format(time.RFC3339)}
	names := make([]string, 0, len(models))
	for _, m := range models {
		names = append(names, m.Name)
		p := LabelModelPrefix + m.Name
		l[p+LabelVersions] = strings.Join(m.Versions, ",")
		l[p+LabelFormat] = m.Format
		if m.Signature != "" {
			l[p+LabelSignature] = m.Signature
		}
	}
	slices.Sort(names)
	l[LabelModels] = strings.Join(names, ",")
	l[LabelTitle] = strings.Join(names, ",")
	if source != "" {
		l[LabelSource] = source
	}
	return l
}
