package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The media types of a shoal model artifact. The manifest is an OCI image
// manifest whose artifactType and config media type are ConfigMediaType.
const (
	// ConfigMediaType is the artifact type and the config blob's media
	// type: a JSON Config.
	ConfigMediaType types.MediaType = "application/vnd.shoal.model.config.v1+json"
	// LayerMediaType is the one layer's media type: the model repository
	// as a gzip-compressed tar archive.
	LayerMediaType types.MediaType = "application/vnd.shoal.model.layer.v1.tar+gzip"
)

// The manifest annotations of a shoal model artifact.
const (
	// AnnotationName lists the model names, comma-separated, sorted.
	AnnotationName = "dev.shoal.model.name"
	// AnnotationFormat lists the distinct formats, comma-separated, sorted.
	AnnotationFormat = "dev.shoal.model.format"
	// AnnotationVersions lists the versions: "1,2" for one model,
	// "iris=1,2;wine=3" for several.
	AnnotationVersions = "dev.shoal.model.versions"
	// AnnotationSignature is SignatureDigest of the Config.
	AnnotationSignature = "dev.shoal.model.signature"
	// AnnotationTitle is the OCI title annotation (the model names).
	AnnotationTitle = "org.opencontainers.image.title"
)

// Config is the config blob of a model artifact: what it holds, so a
// client learns the models and their tensor signatures without pulling the
// layer.
type Config struct {
	Models []Model `json:"models"`
}

// Model describes one model of the artifact.
type Model struct {
	Name     string    `json:"name"`
	Format   string    `json:"format"`
	Versions []Version `json:"versions"`
}

// Version is one version of a model and its tensor signature.
type Version struct {
	Version string   `json:"version"`
	Inputs  []Tensor `json:"inputs"`
	Outputs []Tensor `json:"outputs"`
}

// Tensor is one input or output; -1 in Shape is a dynamic dimension.
type Tensor struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// SignatureDigest returns "sha256:<hex>" of the JSON of every model's
// name and versions with their inputs and outputs (the formats left out):
// two artifacts with the same signature digest answer the same requests.
func (c Config) SignatureDigest() string {
	type sig struct {
		Name     string    `json:"name"`
		Versions []Version `json:"versions"`
	}
	var s []sig
	for _, m := range c.Models {
		s = append(s, sig{m.Name, m.Versions})
	}
	b, err := json.Marshal(s)
	if err != nil {
		panic("registry: signature digest: " + err.Error()) // plain data: cannot fail
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Annotations returns the manifest annotations that describe c.
func (c Config) Annotations() map[string]string {
	var names, formats, versions []string
	for _, m := range c.Models {
		names = append(names, m.Name)
		if !slices.Contains(formats, m.Format) {
			formats = append(formats, m.Format)
		}
		var vs []string
		for _, v := range m.Versions {
			vs = append(vs, v.Version)
		}
		if len(c.Models) == 1 {
			versions = append(versions, strings.Join(vs, ","))
		} else {
			versions = append(versions, m.Name+"="+strings.Join(vs, ","))
		}
	}
	slices.Sort(formats)
	return map[string]string{
		AnnotationName:      strings.Join(names, ","),
		AnnotationTitle:     strings.Join(names, ","),
		AnnotationFormat:    strings.Join(formats, ","),
		AnnotationVersions:  strings.Join(versions, ";"),
		AnnotationSignature: c.SignatureDigest(),
	}
}

func (c Config) validate() error {
	if len(c.Models) == 0 {
		return errors.New("registry: Config lists no model")
	}
	for i, m := range c.Models {
		if m.Name == "" || m.Format == "" || len(m.Versions) == 0 {
			return fmt.Errorf("registry: Config model %d needs a name, a format and versions", i)
		}
		if i > 0 && c.Models[i-1].Name >= m.Name {
			return errors.New("registry: Config models must be sorted by name, without duplicates")
		}
	}
	return nil
}

// Source is a directory that Build packs.
type Source struct {
	// Dir is the directory.
	Dir string
	// Prefix is "" when Dir is a repository (a directory of model
	// directories), or the model's name when Dir is one model directory
	// (its version directories directly inside): the layer then holds it
	// under that name, so the artifact is always a repository.
	Prefix string
	// Models are the model names, sorted.
	Models []string
	// Repository is the repository to load the models from: Dir, or its
	// parent when Prefix is set.
	Repository string
}

// ErrNotModel is returned by Scan for a directory that holds no model.
var ErrNotModel = errors.New("registry: not a model directory or model repository")

// Scan tells whether dir is one model directory (it has a model.yaml or
// version directories 1, 2, ...) or a repository of them, and lists the
// models. Entries whose names start with "." are ignored.
func Scan(dir string) (Source, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Source{}, err
	}
	ents, err := os.ReadDir(abs)
	if err != nil {
		return Source{}, err
	}
	if isModelDir(abs, ents) {
		return Source{Dir: abs, Prefix: filepath.Base(abs), Models: []string{filepath.Base(abs)}, Repository: filepath.Dir(abs)}, nil
	}
	src := Source{Dir: abs, Repository: abs}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		sub, err := os.ReadDir(filepath.Join(abs, e.Name()))
		if err != nil {
			return Source{}, err
		}
		if isModelDir(filepath.Join(abs, e.Name()), sub) {
			src.Models = append(src.Models, e.Name())
		}
	}
	if len(src.Models) == 0 {
		return Source{}, fmt.Errorf("%w: %s has no model.yaml, no version directories (1, 2, ...) and no model directories", ErrNotModel, dir)
	}
	return src, nil
}

func isModelDir(dir string, ents []os.DirEntry) bool {
	for _, e := range ents {
		if !e.IsDir() && e.Name() == "model.yaml" {
			return true
		}
		if e.IsDir() {
			if v, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && v >= 1 && strconv.FormatInt(v, 10) == e.Name() {
				return true
			}
		}
	}
	return false
}

// Artifact is a built model artifact, ready to push. Close removes its
// layer's temporary file.
type Artifact struct {
	// Manifest is the raw OCI image manifest; Digest its digest.
	Manifest []byte
	Digest   v1.Hash
	// Config is the raw config blob.
	Config []byte
	layer  v1.Layer
	config v1.Layer
	tmp    string
}

// Close removes the artifact's temporary files. It is idempotent.
func (a *Artifact) Close() error {
	if a.tmp == "" {
		return nil
	}
	err := os.Remove(a.tmp)
	a.tmp = ""
	return err
}

// RawManifest returns the manifest (remote.Taggable).
func (a *Artifact) RawManifest() ([]byte, error) { return a.Manifest, nil }

// MediaType returns the manifest's media type (remote.Taggable).
func (a *Artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// Build packs src into an artifact described by cfg (the caller loads the
// models to learn their formats and signatures). The layer is
// deterministic: the same files give the same digests. tmpDir holds the
// layer's file until Close ("" means the system's temporary directory).
func Build(src Source, cfg Config, tmpDir string) (*Artifact, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var names []string
	for _, m := range cfg.Models {
		names = append(names, m.Name)
	}
	if !slices.Equal(names, src.Models) {
		return nil, fmt.Errorf("registry: Config describes models %v, the directory holds %v", names, src.Models)
	}
	f, err := os.CreateTemp(tmpDir, "shoal-model-*.tar.gz")
	if err != nil {
		return nil, err
	}
	a := &Artifact{tmp: f.Name()}
	err = writeLayer(f, src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		a.Close()
		return nil, err
	}
	if a.layer, err = tarball.LayerFromFile(a.tmp, tarball.WithMediaType(LayerMediaType)); err != nil {
		a.Close()
		return nil, err
	}
	if a.Config, err = json.Marshal(cfg); err != nil {
		a.Close()
		return nil, err
	}
	a.config = static.NewLayer(a.Config, ConfigMediaType)
	layerDesc, err := describe(a.layer, LayerMediaType)
	if err != nil {
		a.Close()
		return nil, err
	}
	configDesc, err := describe(a.config, ConfigMediaType)
	if err != nil {
		a.Close()
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  string(ConfigMediaType),
		Config:        configDesc,
		Layers:        []v1.Descriptor{layerDesc},
		Annotations:   cfg.Annotations(),
	}
	if a.Manifest, err = json.Marshal(m); err != nil {
		a.Close()
		return nil, err
	}
	if a.Digest, _, err = v1.SHA256(bytes.NewReader(a.Manifest)); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func describe(l v1.Layer, mt types.MediaType) (v1.Descriptor, error) {
	d, err := l.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	n, err := l.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Size: n, Digest: d}, nil
}
