package onnx

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// Small builders of graphs with subgraphs, for the control-flow tests.

func sgTensorType(elem int32) *onnxpb.TypeProto {
	return &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(elem)}}}
}

func sgVI(name string, elem int32) *onnxpb.ValueInfoProto {
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: sgTensorType(elem)}
}

func sgNode(op string, in, out []string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: proto.String(op), Input: in, Output: out, Attribute: attrs}
}

func sgGraphAttr(name string, g *onnxpb.GraphProto) *onnxpb.AttributeProto {
	t := onnxpb.AttributeProto_GRAPH
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: &t, G: g}
}

func sgIntAttr(name string, v int64) *onnxpb.AttributeProto {
	t := onnxpb.AttributeProto_INT
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: &t, I: proto.Int64(v)}
}

func sgIntsAttr(name string, v ...int64) *onnxpb.AttributeProto {
	t := onnxpb.AttributeProto_INTS
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: &t, Ints: v}
}

func sgFloatInit(name string, dims []int64, data ...float32) *onnxpb.TensorProto {
	dt := int32(onnxFloat)
	return &onnxpb.TensorProto{Name: proto.String(name), DataType: &dt, Dims: dims, FloatData: data}
}

// sgParse plans graph g at opset 17 with the memory limit maxBytes (0:
// the default).
func sgParse(t *testing.T, g *onnxpb.GraphProto, maxBytes int64) (*Model, error) {
	t.Helper()
	data, err := proto.Marshal(&onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph:       g,
	})
	if err != nil {
		t.Fatal(err)
	}
	return Parse(data, "", Options{MaxBytes: maxBytes})
}

func sgF32(shape []int64, data ...float32) *Value {
	return &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.FP32, Shape: shape, Data: data}}
}

func sgScalar[T bool | int64](dt tensor.DType, v T) *Value {
	return &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: dt, Data: []T{v}}}
}

// ifModel: y = If(c) then x + w (w an outer initializer, x an outer
// input) else Neg(x), each branch reading outer-scope values.
func ifModel() *onnxpb.GraphProto {
	thenG := &onnxpb.GraphProto{
		Name:   proto.String("then"),
		Node:   []*onnxpb.NodeProto{sgNode("Add", []string{"x", "w"}, []string{"t"})},
		Output: []*onnxpb.ValueInfoProto{sgVI("t", onnxFloat)},
	}
	elseG := &onnxpb.GraphProto{
		Name:   proto.String("else"),
		Node:   []*onnxpb.NodeProto{sgNode("Neg", []string{"x"}, []string{"e"})},
		Output: []*onnxpb.ValueInfoProto{sgVI("e", onnxFloat)},
	}
	return &onnxpb.GraphProto{
		Name:        proto.String("if"),
		Initializer: []*onnxpb.TensorProto{sgFloatInit("w", []int64{2}, 10, 20)},
		Input:       []*onnxpb.ValueInfoProto{sgVI("c", onnxBool), sgVI("x", onnxFloat)},
		Node: []*onnxpb.NodeProto{sgNode("If", []string{"c"}, []string{"y"},
			sgGraphAttr("then_branch", thenG), sgGraphAttr("else_branch", elseG))},
		Output: []*onnxpb.ValueInfoProto{sgVI("y", onnxFloat)},
	}
}

func TestIf(t *testing.T) {
	m, err := sgParse(t, ifModel(), 0)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	x := sgF32([]int64{2}, 1, 2)
	for _, tt := range []struct {
		cond bool
		want []float32
	}{{true, []float32{11, 22}}, {false, []float32{-1, -2}}} {
		out, err := m.Run(context.Background(), []*Value{sgScalar(tensor.Bool, tt.cond), x})
		if err != nil {
			t.Fatalf("Run(cond=%v): %v", tt.cond, err)
		}
		if got := out[0].Float32s(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("If(%v) = %v, want %v", tt.cond, got, tt.want)
		}
	}
	if _, err := m.Run(context.Background(), []*Value{sgF32(nil, 1), x}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("If(float cond) error = %v, want ErrInvalidInput", err)
	}
}

func TestSubgraphReadsUndefinedName(t *testing.T) {
	g := ifModel()
	g.Node[0].Attribute[1].G.Node[0].Input[0] = "nowhere"
	if _, err := sgParse(t, g, 0); !errors.Is(err, ErrInvalidModel) {
		t.Errorf("Parse(branch reads an undefined name) error = %v, want ErrInvalidModel", err)
	}
}

// loopModel: a Loop with trip count M and cond, carrying s (s += x each
// iteration) and scanning s*i; it stops when s exceeds limit (an outer
// initializer read by the body). Nested: the body's If reads the outer
// graph's x through two scopes.
func loopModel(elems int64) *onnxpb.GraphProto {
	thenG := &onnxpb.GraphProto{
		Name:   proto.String("then"),
		Node:   []*onnxpb.NodeProto{sgNode("Add", []string{"s_in", "x"}, []string{"s_then"})},
		Output: []*onnxpb.ValueInfoProto{sgVI("s_then", onnxFloat)},
	}
	elseG := &onnxpb.GraphProto{
		Name:   proto.String("else"),
		Node:   []*onnxpb.NodeProto{sgNode("Identity", []string{"s_in"}, []string{"s_else"})},
		Output: []*onnxpb.ValueInfoProto{sgVI("s_else", onnxFloat)},
	}
	body := &onnxpb.GraphProto{
		Name:  proto.String("body"),
		Input: []*onnxpb.ValueInfoProto{sgVI("i", onnxInt64), sgVI("c_in", onnxBool), sgVI("s_in", onnxFloat)},
		Node: []*onnxpb.NodeProto{
			sgNode("If", []string{"c_in"}, []string{"s_out"}, sgGraphAttr("then_branch", thenG), sgGraphAttr("else_branch", elseG)),
			sgNode("Cast", []string{"i"}, []string{"fi"}, sgIntAttr("to", onnxFloat)),
			sgNode("Mul", []string{"s_out", "fi"}, []string{"scan"}),
			sgNode("ReduceSum", []string{"s_out"}, []string{"total"}, sgIntAttr("keepdims", 0)),
			sgNode("Less", []string{"total", "limit"}, []string{"c_out"}),
		},
		Output: []*onnxpb.ValueInfoProto{sgVI("c_out", onnxBool), sgVI("s_out", onnxFloat), sgVI("scan", onnxFloat)},
	}
	return &onnxpb.GraphProto{
		Name:        proto.String("loop"),
		Initializer: []*onnxpb.TensorProto{sgFloatInit("limit", nil, float32(elems)*1e9)},
		Input:       []*onnxpb.ValueInfoProto{sgVI("M", onnxInt64), sgVI("c", onnxBool), sgVI("x", onnxFloat), sgVI("s0", onnxFloat)},
		Node:        []*onnxpb.NodeProto{sgNode("Loop", []string{"M", "c", "s0"}, []string{"s_final", "scans"}, sgGraphAttr("body", body))},
		Output:      []*onnxpb.ValueInfoProto{sgVI("s_final", onnxFloat), sgVI("scans", onnxFloat)},
	}
}

func TestLoop(t *testing.T) {
	m, err := sgParse(t, loopModel(2), 0)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	x, s0 := sgF32([]int64{2}, 1, 2), sgF32([]int64{2}, 0, 0)
	tests := []struct {
		name      string
		trip      int64
		cond      bool
		wantS     []float32
		wantScans []float32
		wantShape []int64
	}{
		{"three iterations", 3, true, []float32{3, 6}, []float32{0, 0, 2, 4, 6, 12}, []int64{3, 2}},
		{"no iteration", 0, true, []float32{0, 0}, []float32{}, []int64{0}},
		{"cond false", 5, false, []float32{0, 0}, []float32{}, []int64{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Run twice: the second run reuses the buffers of the first.
			for range 2 {
				out, err := m.Run(context.Background(), []*Value{sgScalar(tensor.Int64, tt.trip), sgScalar(tensor.Bool, tt.cond), x, s0})
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				if got := out[0].Float32s(); !reflect.DeepEqual(got, tt.wantS) {
					t.Errorf("final s = %v, want %v", got, tt.wantS)
				}
				if got := out[1]; !reflect.DeepEqual(got.Float32s(), tt.wantScans) || !reflect.DeepEqual(got.Tensor.Shape, tt.wantShape) {
					t.Errorf("scans = %v %v, want %v %v", got.Tensor.Shape, got.Float32s(), tt.wantShape, tt.wantScans)
				}
			}
		})
	}
}

func TestLoopStopsOnCond(t *testing.T) {
	// With a limit of 5, the sum of s grows by 3 per iteration, so the
	// body's cond turns false once it passes 5.
	g := loopModel(0)
	g.Initializer[0] = sgFloatInit("limit", nil, 5)
	m, err := sgParse(t, g, 0)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	out, err := m.Run(context.Background(), []*Value{sgScalar(tensor.Int64, int64(100)), sgScalar(tensor.Bool, true), sgF32([]int64{2}, 1, 2), sgF32([]int64{2}, 0, 0)})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Iteration 0: sum(s) = 3 (< 5, go on); iteration 1: sum(s) = 6, stop.
	if got, want := out[0].Float32s(), []float32{2, 4}; !reflect.DeepEqual(got, want) {
		t.Errorf("final s = %v, want %v", got, want)
	}
	if got := out[1].Tensor.Shape; !reflect.DeepEqual(got, []int64{2, 2}) {
		t.Errorf("scans shape = %v, want [2 2]", got)
	}
}

func TestLoopMemoryLimit(t *testing.T) {
	// A trip count of 2^40 with 1000 floats scanned per iteration must hit
	// the 1 MiB limit after a few hundred iterations, not run for ever.
	m, err := sgParse(t, loopModel(1e6), 1<<20)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	x := sgF32([]int64{1000}, make([]float32, 1000)...)
	_, err = m.Run(context.Background(), []*Value{sgScalar(tensor.Int64, int64(1<<40)), sgScalar(tensor.Bool, true), x, x})
	if !errors.Is(err, ErrInvalidInput) {
		t.Errorf("Run(huge trip count) error = %v, want ErrInvalidInput (memory limit)", err)
	}
}

// countdownCtx is a context whose Err turns Canceled after n calls: a
// deterministic stand-in for a request cancelled while a loop runs.
type countdownCtx struct {
	context.Context
	n int
}

func (c *countdownCtx) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

func TestLoopCancelled(t *testing.T) {
	// No trip count and no condition: the loop runs until cancelled.
	body := &onnxpb.GraphProto{
		Name:   proto.String("body"),
		Input:  []*onnxpb.ValueInfoProto{sgVI("i", onnxInt64), sgVI("c_in", onnxBool), sgVI("v_in", onnxFloat)},
		Node:   []*onnxpb.NodeProto{sgNode("Identity", []string{"c_in"}, []string{"c_out"}), sgNode("Neg", []string{"v_in"}, []string{"v_out"})},
		Output: []*onnxpb.ValueInfoProto{sgVI("c_out", onnxBool), sgVI("v_out", onnxFloat)},
	}
	g := &onnxpb.GraphProto{
		Name:   proto.String("forever"),
		Input:  []*onnxpb.ValueInfoProto{sgVI("v", onnxFloat)},
		Node:   []*onnxpb.NodeProto{sgNode("Loop", []string{"", "", "v"}, []string{"w"}, sgGraphAttr("body", body))},
		Output: []*onnxpb.ValueInfoProto{sgVI("w", onnxFloat)},
	}
	m, err := sgParse(t, g, 0)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	ctx := &countdownCtx{Context: context.Background(), n: 1000}
	if _, err := m.Run(ctx, []*Value{sgF32(nil, 1)}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run(endless loop, cancelled) error = %v, want context.Canceled", err)
	}
}

// scanModel: a running sum over axis 1 of x [2, 3], read backwards, with
// the partial sums stacked along output axis 1.
func scanModel() *onnxpb.GraphProto {
	body := &onnxpb.GraphProto{
		Name:   proto.String("body"),
		Input:  []*onnxpb.ValueInfoProto{sgVI("acc_in", onnxFloat), sgVI("col", onnxFloat)},
		Node:   []*onnxpb.NodeProto{sgNode("Add", []string{"acc_in", "col"}, []string{"acc_out"}), sgNode("Identity", []string{"acc_out"}, []string{"partial"})},
		Output: []*onnxpb.ValueInfoProto{sgVI("acc_out", onnxFloat), sgVI("partial", onnxFloat)},
	}
	g := &onnxpb.GraphProto{
		Name:  proto.String("scan"),
		Input: []*onnxpb.ValueInfoProto{sgVI("acc", onnxFloat), sgVI("x", onnxFloat)},
		Node: []*onnxpb.NodeProto{sgNode("Scan", []string{"acc", "x"}, []string{"sum", "partials"},
			sgGraphAttr("body", body), sgIntAttr("num_scan_inputs", 1),
			sgIntsAttr("scan_input_axes", 1), sgIntsAttr("scan_input_directions", 1), sgIntsAttr("scan_output_axes", -1))},
		Output: []*onnxpb.ValueInfoProto{sgVI("sum", onnxFloat), sgVI("partials", onnxFloat)},
	}
	return g
}

func TestScan(t *testing.T) {
	m, err := sgParse(t, scanModel(), 0)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	out, err := m.Run(context.Background(), []*Value{sgF32([]int64{2}, 0, 0), sgF32([]int64{2, 3}, 1, 2, 3, 4, 5, 6)})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := out[0].Float32s(), []float32{6, 15}; !reflect.DeepEqual(got, want) {
		t.Errorf("sum = %v, want %v", got, want)
	}
	// Backwards: 3, 3+2, 3+2+1 for row 0; stacked along the last axis.
	if got, want := out[1].Float32s(), []float32{3, 5, 6, 6, 11, 15}; !reflect.DeepEqual(got, want) || !reflect.DeepEqual(out[1].Tensor.Shape, []int64{2, 3}) {
		t.Errorf("partials = %v %v, want [2 3] %v", out[1].Tensor.Shape, got, want)
	}
	if _, err := m.Run(context.Background(), []*Value{sgF32([]int64{2}, 0, 0), sgF32(nil, 1)}); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("Scan(scalar scan input) error = %v, want ErrInvalidInput", err)
	}
}

func TestControlSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops items at random, so pooled buffers are reallocated")
	}
	for _, tt := range []struct {
		name string
		g    *onnxpb.GraphProto
		in   []*Value
	}{
		{"Loop with a nested If", loopModel(2), []*Value{sgScalar(tensor.Int64, int64(4)), sgScalar(tensor.Bool, true), sgF32([]int64{2}, 1, 2), sgF32([]int64{2}, 0, 0)}},
		{"Scan", scanModel(), []*Value{sgF32([]int64{2}, 0, 0), sgF32([]int64{2, 3}, 1, 2, 3, 4, 5, 6)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := sgParse(t, tt.g, 0)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			s := m.newState()
			for k, v := range tt.in {
				s.inputs[k] = *v
			}
			ctx := context.Background()
			allocs := steadyAllocs(20, func() {
				if err := m.run(ctx, s); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("a run allocates %v times, want 0", allocs)
			}
		})
	}
}
