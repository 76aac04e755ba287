package onnx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// Outcome classifies one conformance test.
type Outcome uint8

const (
	// Unsupported: the model uses an operator, opset version, element type
	// or value kind shoal does not claim.
	Unsupported Outcome = iota
	// Passed: every output of every data set matched.
	Passed
	// Failed: a claimed model failed to load or run, or an output differed.
	Failed
)

func (o Outcome) String() string {
	return [...]string{"unsupported", "passed", "failed"}[o]
}

// Result is the outcome of one conformance test.
type Result struct {
	// Suite is the directory the test is in ("node", "simple", ...), Name
	// the test's directory name.
	Suite, Name string
	Outcome     Outcome
	// Reason says why a test failed or is unsupported.
	Reason string
}

// Report is the outcome of a conformance run.
type Report struct {
	Results []Result
}

// Counts returns the number of passed, failed and unsupported tests.
func (r *Report) Counts() (passed, failed, unsupported int) {
	for _, res := range r.Results {
		switch res.Outcome {
		case Passed:
			passed++
		case Failed:
			failed++
		default:
			unsupported++
		}
	}
	return
}

// PassRate returns passed / (passed + failed): the share of claimed tests
// that pass, or 0 when none is claimed.
func (r *Report) PassRate() float64 {
	p, f, _ := r.Counts()
	if p+f == 0 {
		return 0
	}
	return float64(p) / float64(p+f)
}

// conformance tolerances, those of ONNX's own runner.
const (
	confRtol = 1e-3
	confAtol = 1e-7
)

// RunConformance runs every test under dir, laid out as the ONNX backend
// test data (dir/<suite>/<test>/model.onnx and test_data_set_N/input_K.pb,
// output_K.pb), with the operators of ops (nil: DefaultOps). It returns an
// error only when dir cannot be read; each test's problems are in its
// Result.
func RunConformance(ctx context.Context, dir string, ops *OpSet) (*Report, error) {
	suites, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("onnx: conformance: %w", err)
	}
	if ops == nil {
		ops = DefaultOps()
	}
	rep := &Report{}
	for _, s := range suites {
		if !s.IsDir() {
			continue
		}
		tests, err := os.ReadDir(filepath.Join(dir, s.Name()))
		if err != nil {
			return nil, fmt.Errorf("onnx: conformance: %w", err)
		}
		for _, t := range tests {
			if !t.IsDir() {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			res := runTest(ctx, filepath.Join(dir, s.Name(), t.Name()), ops)
			res.Suite, res.Name = s.Name(), t.Name()
			rep.Results = append(rep.Results, res)
		}
	}
	return rep, nil
}

// runTest runs one test directory. A panic in a kernel is a failure.
func runTest(ctx context.Context, dir string, ops *OpSet) (res Result) {
	defer func() {
		if p := recover(); p != nil {
			res = Result{Outcome: Failed, Reason: fmt.Sprintf("panic: %v", p)}
		}
	}()
	m, err := ParseFile(filepath.Join(dir, "model.onnx"), Options{Ops: ops})
	if err != nil {
		if errors.Is(err, ErrUnsupported) {
			return Result{Outcome: Unsupported, Reason: err.Error()}
		}
		return Result{Outcome: Failed, Reason: "load: " + err.Error()}
	}
	for k, s := range m.sig.Inputs {
		if s.DType == tensor.Invalid && !readableValueType(m.inTypes[k]) {
			return Result{Outcome: Unsupported, Reason: "input " + describeType(m.inTypes[k])}
		}
	}
	for k, s := range m.sig.Outputs {
		if !m.outTensor[k] && !readableValueType(m.outTypes[k]) {
			return Result{Outcome: Unsupported, Reason: fmt.Sprintf("output %q is not a tensor", s.Name)}
		}
	}
	sets, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
	if len(sets) == 0 {
		return Result{Outcome: Failed, Reason: "no test data sets"}
	}
	sort.Strings(sets)
	for _, set := range sets {
		ins := make([]*Value, len(m.inputs))
		for k := range ins {
			v, err := readValueFile(filepath.Join(set, fmt.Sprintf("input_%d.pb", k)), m.inTypes[k])
			if err != nil {
				if errors.Is(err, ErrUnsupported) {
					return Result{Outcome: Unsupported, Reason: err.Error()}
				}
				return Result{Outcome: Failed, Reason: err.Error()}
			}
			ins[k] = v
		}
		outs, err := m.Run(ctx, ins)
		if err != nil {
			if errors.Is(err, ErrUnsupported) {
				return Result{Outcome: Unsupported, Reason: err.Error()}
			}
			return Result{Outcome: Failed, Reason: "run: " + err.Error()}
		}
		for k, got := range outs {
			want, err := readValueFile(filepath.Join(set, fmt.Sprintf("output_%d.pb", k)), m.outTypes[k])
			if err != nil {
				return Result{Outcome: Failed, Reason: err.Error()}
			}
			if msg := compareAny(got, want); msg != "" {
				return Result{Outcome: Failed, Reason: fmt.Sprintf("%s output %d (%s): %s", filepath.Base(set), k, m.outNames[k], msg)}
			}
		}
	}
	return Result{Outcome: Passed}
}

// describeType says why a graph input's type cannot be fed by the runner:
// an element type shoal lacks, or a map, or a sequence or optional of
// something other than tensors (see readableValueType).
func describeType(tp *onnxpb.TypeProto) string {
	switch {
	case tp.GetTensorType() != nil:
		return "of element type " + onnxTypeName(tp.GetTensorType().GetElemType())
	case tp.GetSequenceType() != nil:
		return "is a sequence"
	case tp.GetMapType() != nil:
		return "is a map"
	case tp.GetOptionalType() != nil:
		return "is an optional"
	}
	return "is of an unknown type"
}

// readTensorFile reads a serialized TensorProto.
func readTensorFile(file string) (*Value, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var tp onnxpb.TensorProto
	if err := proto.Unmarshal(data, &tp); err != nil {
		return nil, fmt.Errorf("%w: %s is not a TensorProto (a sequence or optional value)", ErrUnsupported, filepath.Base(file))
	}
	r := &tensorReader{budget: DefaultMaxBytes}
	return r.value(&tp)
}

// compareValues compares as ONNX's runner does: shapes and types equal,
// floats within rtol 1e-3 and atol 1e-7 with NaN equal to NaN, everything
// else exactly. It returns "" when they match.
func compareValues(got, want *Value) string {
	if got.Kind != KindTensor {
		return fmt.Sprintf("got a %v, want a tensor", got)
	}
	g, w := &got.Tensor, &want.Tensor
	if g.DType != w.DType {
		return fmt.Sprintf("type %v, want %v", g.DType, w.DType)
	}
	if !equalShape(g.Shape, w.Shape) {
		return fmt.Sprintf("shape %v, want %v", g.Shape, w.Shape)
	}
	n := got.Len()
	for i := range n {
		if g.DType == tensor.Bytes {
			if string(g.Data.([][]byte)[i]) != string(w.Data.([][]byte)[i]) {
				return fmt.Sprintf("element %d: %q, want %q", i, g.Data.([][]byte)[i], w.Data.([][]byte)[i])
			}
			continue
		}
		var a, b float64
		if g.DType == tensor.FP16 {
			a = float64(tensor.Float16ToFloat32(g.Data.([]uint16)[i]))
			b = float64(tensor.Float16ToFloat32(w.Data.([]uint16)[i]))
		} else {
			a, b = float64At(g.Data, i), float64At(w.Data, i)
		}
		switch g.DType {
		case tensor.FP32, tensor.FP64, tensor.FP16:
			if math.IsNaN(a) && math.IsNaN(b) || a == b {
				continue
			}
			if math.IsNaN(a) || math.IsNaN(b) || math.Abs(a-b) > confAtol+confRtol*math.Abs(b) {
				return fmt.Sprintf("element %d: %v, want %v", i, a, b)
			}
		default:
			if !sameElem(g.Data, w.Data, i) {
				return fmt.Sprintf("element %d: %v, want %v", i, a, b)
			}
		}
	}
	return ""
}

// sameElem compares element i of two integer or bool slices exactly.
func sameElem(a, b any, i int) bool {
	switch x := a.(type) {
	case []int64:
		return x[i] == b.([]int64)[i]
	case []uint64:
		return x[i] == b.([]uint64)[i]
	}
	return float64At(a, i) == float64At(b, i)
}

// WriteMarkdown writes the report: totals, every failure with its reason,
// and the unsupported tests grouped by reason.
func (r *Report) WriteMarkdown(w io.Writer) error {
	p, f, u := r.Counts()
	var b strings.Builder
	fmt.Fprintf(&b, "# ONNX conformance\n\n")
	fmt.Fprintf(&b, "Generated by `shoal onnx conformance` (see docs/onnx.md). Tolerances: rtol %g, atol %g.\n\n", confRtol, confAtol)
	fmt.Fprintf(&b, "| passed | failed | unsupported | total | pass rate of claimed tests |\n|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| %d | %d | %d | %d | %.1f%% |\n\n", p, f, u, p+f+u, 100*r.PassRate())
	suites := map[string][3]int{}
	var names []string
	for _, res := range r.Results {
		c, ok := suites[res.Suite]
		if !ok {
			names = append(names, res.Suite)
		}
		c[res.Outcome]++
		suites[res.Suite] = c
	}
	fmt.Fprintf(&b, "| suite | passed | failed | unsupported |\n|---|---:|---:|---:|\n")
	for _, s := range names {
		c := suites[s]
		fmt.Fprintf(&b, "| %s | %d | %d | %d |\n", s, c[Passed], c[Failed], c[Unsupported])
	}
	fmt.Fprintf(&b, "\n## Failed\n\n")
	if f == 0 {
		fmt.Fprintf(&b, "None.\n")
	}
	for _, res := range r.Results {
		if res.Outcome == Failed {
			fmt.Fprintf(&b, "- `%s/%s`: %s\n", res.Suite, res.Name, oneLine(res.Reason))
		}
	}
	fmt.Fprintf(&b, "\n## Passed\n\n")
	var passed []string
	for _, res := range r.Results {
		if res.Outcome == Passed {
			passed = append(passed, res.Suite+"/"+res.Name)
		}
	}
	fmt.Fprintf(&b, "%s\n", strings.Join(passed, ", "))
	fmt.Fprintf(&b, "\n## Unsupported, by reason\n\n")
	groups := map[string]int{}
	for _, res := range r.Results {
		if res.Outcome == Unsupported {
			groups[unsupportedKey(res.Reason)]++
		}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if groups[keys[i]] != groups[keys[j]] {
			return groups[keys[i]] > groups[keys[j]]
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "- %d: %s\n", groups[k], k)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// unsupportedKey shortens an unsupported reason to group tests: the
// operator and version, without the node name.
func unsupportedKey(reason string) string {
	reason = strings.TrimPrefix(reason, ErrUnsupported.Error()+": ")
	if i := strings.Index(reason, " (node "); i >= 0 {
		reason = reason[:i]
	}
	return oneLine(reason)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
