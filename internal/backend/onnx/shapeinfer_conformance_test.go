package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
)

// Floors of TestShapeInferenceConformance, counted over every output of
// every test data set: how many inference must determine completely with
// the declared input shapes, and how many it must determine at least in
// part (the batch dimension aside) with a symbolic batch dimension. Raise
// them as shape functions are added.
const (
	minFullFixed    = 1300
	minKnownBatched = 1100
)

// TestShapeInferenceConformance runs shape inference over every loadable
// model of the ONNX conformance suite with the declared output shapes and
// value_info removed, and compares what it infers with the shapes of the
// expected outputs: a known dimension that differs is a failure. It does so
// twice: with the declared input shapes, and with every input's first
// dimension made symbolic (a dynamic batch), where it also checks that the
// refined signature accepts the test's inputs.
func TestShapeInferenceConformance(t *testing.T) {
	if _, err := os.Stat(conformanceDir); err != nil {
		t.Skipf("ONNX conformance data not found at %s: %v", conformanceDir, err)
	}
	if testing.Short() {
		t.Skip("reads the whole conformance suite; run without -short")
	}
	dirs, err := filepath.Glob(filepath.Join(conformanceDir, "*", "*", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(dirs)
	var fixed, batched shapeTally
	for _, file := range dirs {
		dir := filepath.Dir(file)
		name := filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir)
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(data, dir, Options{}); err != nil {
			continue // unsupported, or not a model this backend loads
		}
		sets, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
		for _, batch := range []bool{false, true} {
			tally := &fixed
			if batch {
				tally = &batched
			}
			m, err := Parse(stripShapes(t, data, batch), dir, Options{})
			if err != nil {
				t.Errorf("%s (batch %v): the model loads with its declarations but not without: %v", name, batch, err)
				continue
			}
			for _, set := range sets {
				if msg := checkInferred(m, set, tally); msg != "" {
					t.Errorf("%s (batch %v) %s: %s", name, batch, filepath.Base(set), msg)
				}
			}
		}
	}
	t.Logf("declared input shapes: %v", &fixed)
	t.Logf("symbolic batch dimension: %v", &batched)
	if fixed.contradictions+batched.contradictions > 0 {
		t.Errorf("%d contradictions", fixed.contradictions+batched.contradictions)
	}
	if fixed.full < minFullFixed {
		t.Errorf("fully inferred outputs with declared input shapes: %d, want at least %d", fixed.full, minFullFixed)
	}
	if got := batched.full + batched.partial; got < minKnownBatched {
		t.Errorf("outputs with a known size with a symbolic batch: %d, want at least %d", got, minKnownBatched)
	}
}

// shapeTally counts graph outputs (per test data set) by what inference
// knew of them.
type shapeTally struct {
	full, partial, rankOnly, unknown, contradictions int
}

func (s *shapeTally) String() string {
	return fmt.Sprintf("%d outputs fully inferred, %d partly, %d rank only, %d unknown, %d contradictions",
		s.full, s.partial, s.rankOnly, s.unknown, s.contradictions)
}

// checkInferred compares m's signature with the inputs and outputs of one
// test data set, counting into tally; it returns a message for a
// contradiction.
func checkInferred(m *Model, set string, tally *shapeTally) string {
	ins := make([]*Value, len(m.inputs))
	for k := range ins {
		v, err := readTensorFile(filepath.Join(set, fmt.Sprintf("input_%d.pb", k)))
		if err != nil {
			return "" // a sequence or optional input: nothing to compare
		}
		ins[k] = v
		if msg := fits(m.sig.Inputs[k], v.Tensor.Shape); msg != "" {
			tally.contradictions++
			return "refined input signature refuses the test's input: " + msg
		}
	}
	vals := make([]Value, len(ins))
	for k, v := range ins {
		vals[k] = *v
	}
	if err := m.checkDimEq(vals); err != nil {
		tally.contradictions++
		return err.Error()
	}
	for k, spec := range m.sig.Outputs {
		want, err := readTensorFile(filepath.Join(set, fmt.Sprintf("output_%d.pb", k)))
		if err != nil || want.Kind != KindTensor || !m.outTensor[k] {
			continue
		}
		if spec.Shape == nil {
			tally.unknown++
			continue
		}
		if msg := fits(spec, want.Tensor.Shape); msg != "" {
			tally.contradictions++
			return fmt.Sprintf("output %q: %s", spec.Name, msg)
		}
		known := 0
		for _, d := range spec.Shape {
			if d >= 0 {
				known++
			}
		}
		switch known {
		case len(spec.Shape):
			tally.full++
		case 0:
			tally.rankOnly++
		default:
			tally.partial++
		}
	}
	return ""
}

// fits says why shape does not fit spec, or "".
func fits(spec backend.TensorSpec, shape []int64) string {
	if spec.Shape == nil {
		return ""
	}
	if len(spec.Shape) != len(shape) {
		return fmt.Sprintf("inferred %v, actual %v", spec.Shape, shape)
	}
	for i, d := range spec.Shape {
		if d >= 0 && d != shape[i] {
			return fmt.Sprintf("inferred %v, actual %v", spec.Shape, shape)
		}
	}
	return ""
}

// stripShapes removes the shapes of the graph's outputs and its
// value_info, and with batch makes the first dimension of every graph
// input symbolic.
func stripShapes(t *testing.T, data []byte, batch bool) []byte {
	t.Helper()
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(data, &mp); err != nil {
		t.Fatal(err)
	}
	g := mp.GetGraph()
	g.ValueInfo = nil
	for _, o := range g.GetOutput() {
		if tt := o.GetType().GetTensorType(); tt != nil {
			tt.Shape = nil
		}
	}
	if batch {
		for _, in := range g.GetInput() {
			if dims := in.GetType().GetTensorType().GetShape().GetDim(); len(dims) > 0 {
				dims[0].Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}
			}
		}
	}
	out, err := proto.Marshal(&mp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// errorsIsInvalid reports whether err wraps ErrInvalidModel (used by the
// unit tests).
func errorsIsInvalid(err error) bool { return errors.Is(err, ErrInvalidModel) }
