package serve

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// The server is tested with small in-test backends, so that its tests do not
// depend on any model format: "echo" returns its inputs (as outputs named
// out_<input>), multiplied by the "scale" parameter for numeric types;
// "gate" is echo that blocks each request until the test's gate channel is
// closed; "broken" fails to load.

type echoModel struct {
	sig   backend.Signature
	scale float64
	gate  chan struct{}
}

func (m *echoModel) Signature() backend.Signature { return m.sig }

func (m *echoModel) Infer(ctx context.Context, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var out []*tensor.Tensor
	for _, spec := range m.sig.Inputs {
		t, ok := backend.FindInput(in, spec.Name)
		if !ok {
			return nil, fmt.Errorf("%w: missing %s", backend.ErrInvalidInput, spec.Name)
		}
		o := *t
		o.Name = "out_" + t.Name
		if m.scale != 1 && t.DType != tensor.Bytes && t.DType != tensor.Bool {
			vals, err := t.Float64s()
			if err != nil {
				return nil, err
			}
			scaled := make([]float64, len(vals))
			for i, v := range vals {
				scaled[i] = v * m.scale
			}
			p, err := tensor.FromFloat64s(o.Name, t.DType, t.Shape, scaled)
			if err != nil {
				return nil, err
			}
			o = *p
		}
		out = append(out, &o)
	}
	return out, nil
}

func testLoaders(gate chan struct{}) map[string]backend.Loader {
	echo := func(ctx context.Context, cfg backend.Config) (backend.Model, error) {
		if len(cfg.Inputs) == 0 {
			return nil, fmt.Errorf("echo: declare inputs in model.yaml")
		}
		m := &echoModel{scale: 1}
		if s := cfg.Parameters["scale"]; s != "" {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil, fmt.Errorf("echo: scale: %w", err)
			}
			m.scale = v
		}
		for _, in := range cfg.Inputs {
			m.sig.Inputs = append(m.sig.Inputs, in)
			out := in
			out.Name = "out_" + in.Name
			m.sig.Outputs = append(m.sig.Outputs, out)
		}
		return m, nil
	}
	return map[string]backend.Loader{
		"echo": echo,
		"gate": func(ctx context.Context, cfg backend.Config) (backend.Model, error) {
			m, err := echo(ctx, cfg)
			if err != nil {
				return nil, err
			}
			m.(*echoModel).gate = gate
			return m, nil
		},
		"broken": func(ctx context.Context, cfg backend.Config) (backend.Model, error) {
			return nil, fmt.Errorf("broken: this model never loads")
		},
	}
}

// writeFile writes content to dir/rel, creating directories.
func writeFile(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const echoYAML = `format: echo
inputs:
- {name: x, datatype: FP32, shape: [-1, 3]}
`

// allTypesYAML declares one input of every datatype.
const allTypesYAML = `format: echo
inputs:
- {name: b, datatype: BOOL, shape: [-1]}
- {name: u8, datatype: UINT8, shape: [-1]}
- {name: u16, datatype: UINT16, shape: [-1]}
- {name: u32, datatype: UINT32, shape: [-1]}
- {name: u64, datatype: UINT64, shape: [-1]}
- {name: i8, datatype: INT8, shape: [-1]}
- {name: i16, datatype: INT16, shape: [-1]}
- {name: i32, datatype: INT32, shape: [-1]}
- {name: i64, datatype: INT64, shape: [-1]}
- {name: f16, datatype: FP16, shape: [-1]}
- {name: f32, datatype: FP32, shape: [-1]}
- {name: f64, datatype: FP64, shape: [-1]}
- {name: s, datatype: BYTES, shape: [-1]}
`

// testRepo writes a repository with: echo (versions 1 and 2, scale 1 and 2,
// policy all), types (every datatype), gated (a gate model), broken.
func testRepo(t *testing.T) string {
	dir := t.TempDir()
	writeFile(t, dir, "echo/model.yaml", echoYAML+"version_policy: {all: {}}\n")
	writeFile(t, dir, "echo/1/model.yaml", "parameters: {scale: \"1\"}\n")
	writeFile(t, dir, "echo/2/model.yaml", "parameters: {scale: \"2\"}\n")
	writeFile(t, dir, "types/1/model.yaml", allTypesYAML)
	writeFile(t, dir, "gated/1/model.yaml", "format: gate\ninputs:\n- {name: x, datatype: FP32, shape: [-1]}\n")
	writeFile(t, dir, "broken/1/model.yaml", "format: broken\n")
	return dir
}
