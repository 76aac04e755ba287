package serve

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// ModelConfig is the content of a model.yaml. It may stand in a model's
// directory (defaults for every version, and the version policy) and in a
// version directory (overrides for that version).
type ModelConfig struct {
	// Format names the backend ("xgboost", "lightgbm", "onnx", ...). Empty
	// means: infer from the artifact's file name.
	Format string `json:"format,omitempty"`
	// Artifact is the model file, relative to the version directory. Empty
	// means the format's default (model.json, model.txt, model.onnx).
	Artifact string `json:"artifact,omitempty"`
	// Inputs and Outputs declare or rename the tensor signature.
	Inputs  []TensorConfig `json:"inputs,omitempty"`
	Outputs []TensorConfig `json:"outputs,omitempty"`
	// Labels name a classifier's classes in index order.
	Labels []string `json:"labels,omitempty"`
	// VersionPolicy selects which versions serve; nil means the latest one.
	VersionPolicy *VersionPolicy `json:"version_policy,omitempty"`
	// MaxConcurrency bounds concurrent executions of one version; requests
	// beyond it wait (counted as queue time). Zero means unbounded.
	MaxConcurrency int `json:"max_concurrency,omitempty"`
	// Batching, when set, batches requests across clients; see
	// BatchingConfig. Nil means no batching. A version's model.yaml that
	// sets it replaces the model's whole block.
	Batching *BatchingConfig `json:"batching,omitempty"`
	// Parameters are passed to the backend as they are.
	Parameters map[string]string `json:"parameters,omitempty"`
}

// TensorConfig declares one tensor in model.yaml.
type TensorConfig struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype,omitempty"`
	Shape    []int64 `json:"shape,omitempty"`
}

// VersionPolicy selects the versions of a model that serve, as Triton's
// version_policy does. Exactly one field may be set.
type VersionPolicy struct {
	// Latest serves the N highest versions.
	Latest *struct {
		NumVersions int `json:"num_versions"`
	} `json:"latest,omitempty"`
	// All serves every version.
	All *struct{} `json:"all,omitempty"`
	// Specific serves the listed versions.
	Specific *struct {
		Versions []int64 `json:"versions"`
	} `json:"specific,omitempty"`
}

// select returns the versions (sorted ascending) that the policy serves.
func (p *VersionPolicy) choose(have []int64) ([]int64, error) {
	switch {
	case p == nil:
		if len(have) == 0 {
			return nil, nil
		}
		return have[len(have)-1:], nil
	case p.All != nil:
		return have, nil
	case p.Specific != nil:
		var out []int64
		for _, v := range p.Specific.Versions {
			if !slices.Contains(have, v) {
				return nil, fmt.Errorf("version_policy: version %d is not in the repository", v)
			}
			out = append(out, v)
		}
		slices.Sort(out)
		return slices.Compact(out), nil
	case p.Latest != nil:
		n := p.Latest.NumVersions
		if n < 1 {
			return nil, fmt.Errorf("version_policy.latest.num_versions must be at least 1, got %d", n)
		}
		return have[max(0, len(have)-n):], nil
	}
	return nil, errors.New("version_policy: set one of latest, all, specific")
}

// formatByExt maps artifact file extensions to formats, and formats to their
// default artifact name.
var (
	formatByExt = map[string]string{".json": "xgboost", ".ubj": "xgboost", ".txt": "lightgbm", ".onnx": "onnx"}
	defaultFile = map[string]string{"xgboost": "model.json", "lightgbm": "model.txt", "onnx": "model.onnx"}
)

// modelSource describes where a model's versions come from.
type modelSource struct {
	name string
	dir  string // model directory (holds version dirs); empty for a single file
	file string // single-file model: the artifact itself
}

// scanRepository lists the models of a repository directory, or the one
// model of a single artifact file.
func scanRepository(path string) (map[string]modelSource, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("model repository: %w", err)
	}
	out := map[string]modelSource{}
	if !st.IsDir() {
		name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		out[name] = modelSource{name: name, file: path}
		return out, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("model repository: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out[e.Name()] = modelSource{name: e.Name(), dir: filepath.Join(path, e.Name())}
		}
	}
	return out, nil
}

// versionPlan is one version to load.
type versionPlan struct {
	version  int64
	cfg      backend.Config
	limit    int
	batching *BatchingConfig
}

// plan reads a model's configuration and returns the versions to load, by
// its version policy.
func (src modelSource) plan() ([]versionPlan, error) {
	if src.file != "" {
		cfg, err := backendConfig(src.name, 1, filepath.Dir(src.file), ModelConfig{Artifact: filepath.Base(src.file)})
		if err != nil {
			return nil, err
		}
		return []versionPlan{{version: 1, cfg: cfg}}, nil
	}
	base, err := readModelConfig(filepath.Join(src.dir, "model.yaml"), ModelConfig{})
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(src.dir)
	if err != nil {
		return nil, err
	}
	var have []int64
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		v, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || v < 1 || strconv.FormatInt(v, 10) != e.Name() {
			continue // not a version directory
		}
		have = append(have, v)
	}
	if len(have) == 0 {
		return nil, fmt.Errorf("no version directories (1, 2, ...) in %s", filepath.Base(src.dir))
	}
	sort.Slice(have, func(i, j int) bool { return have[i] < have[j] })
	versions, err := base.VersionPolicy.choose(have)
	if err != nil {
		return nil, err
	}
	var out []versionPlan
	for _, v := range versions {
		dir := filepath.Join(src.dir, strconv.FormatInt(v, 10))
		mc, err := readModelConfig(filepath.Join(dir, "model.yaml"), base)
		if err != nil {
			return nil, fmt.Errorf("version %d: %w", v, err)
		}
		cfg, err := backendConfig(src.name, v, dir, mc)
		if err != nil {
			return nil, fmt.Errorf("version %d: %w", v, err)
		}
		out = append(out, versionPlan{version: v, cfg: cfg, limit: mc.MaxConcurrency, batching: mc.Batching})
	}
	return out, nil
}

// readModelConfig reads path over base (fields it sets replace base's). A
// missing file returns base.
func readModelConfig(path string, base ModelConfig) (ModelConfig, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return base, nil
	}
	if err != nil {
		return base, err
	}
	var mc ModelConfig
	if err := yaml.UnmarshalStrict(data, &mc); err != nil {
		return base, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if mc.Format == "" {
		mc.Format = base.Format
	}
	if mc.Artifact == "" {
		mc.Artifact = base.Artifact
	}
	if mc.Inputs == nil {
		mc.Inputs = base.Inputs
	}
	if mc.Outputs == nil {
		mc.Outputs = base.Outputs
	}
	if mc.Labels == nil {
		mc.Labels = base.Labels
	}
	if mc.VersionPolicy == nil {
		mc.VersionPolicy = base.VersionPolicy
	}
	if mc.MaxConcurrency == 0 {
		mc.MaxConcurrency = base.MaxConcurrency
	}
	if mc.MaxConcurrency < 0 {
		return base, fmt.Errorf("%s: max_concurrency must not be negative", filepath.Base(path))
	}
	if mc.Parameters == nil {
		mc.Parameters = base.Parameters
	}
	if mc.Batching == nil {
		mc.Batching = base.Batching
	}
	if mc.Batching != nil {
		if err := mc.Batching.validate(); err != nil {
			return base, fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
	}
	return mc, nil
}

// backendConfig resolves format and artifact and converts the declared
// tensors.
func backendConfig(name string, version int64, dir string, mc ModelConfig) (backend.Config, error) {
	cfg := backend.Config{Name: name, Version: version, Dir: dir, Format: mc.Format, Labels: mc.Labels, Parameters: mc.Parameters}
	artifact := mc.Artifact
	if artifact == "" && cfg.Format != "" {
		artifact = defaultFile[cfg.Format]
	}
	if artifact == "" {
		for _, f := range []string{"model.onnx", "model.json", "model.txt", "model.ubj"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				artifact = f
				break
			}
		}
	}
	if cfg.Format == "" {
		cfg.Format = formatByExt[filepath.Ext(artifact)]
		if cfg.Format == "" {
			return cfg, fmt.Errorf("cannot tell the model format: set format in model.yaml (found no model.onnx, model.json or model.txt)")
		}
	}
	if artifact != "" {
		if filepath.IsAbs(artifact) || strings.Contains(filepath.ToSlash(artifact), "..") {
			return cfg, fmt.Errorf("artifact %q must be a path inside the version directory", artifact)
		}
		cfg.Artifact = filepath.Join(dir, artifact)
	}
	var err error
	if cfg.Inputs, err = tensorSpecs(mc.Inputs); err != nil {
		return cfg, fmt.Errorf("inputs: %w", err)
	}
	if cfg.Outputs, err = tensorSpecs(mc.Outputs); err != nil {
		return cfg, fmt.Errorf("outputs: %w", err)
	}
	return cfg, nil
}

func tensorSpecs(tc []TensorConfig) ([]backend.TensorSpec, error) {
	var out []backend.TensorSpec
	for i, t := range tc {
		if t.Name == "" {
			return nil, fmt.Errorf("tensor %d has no name", i)
		}
		spec := backend.TensorSpec{Name: t.Name, Shape: t.Shape}
		if t.Datatype != "" {
			dt, err := tensor.ParseDType(t.Datatype)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.Name, err)
			}
			spec.DType = dt
		}
		for _, d := range t.Shape {
			if d < -1 {
				return nil, fmt.Errorf("%s: dimension %d (use -1 for a dynamic one)", t.Name, d)
			}
		}
		out = append(out, spec)
	}
	return out, nil
}
