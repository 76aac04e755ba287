package onnx

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// This file runs the single-node tests of the ONNX conformance suite
// directly against the kernels of the ops_math, ops_shape, ops_reduce and
// ops_nn files, without the loader: it decodes model.onnx, instantiates the
// one node through DefaultOps, runs it on each test_data_set and compares
// the outputs (rtol 1e-3, atol 1e-7, as ONNX's runner). Point
// SHOAL_ONNX_NODE_TESTS at the suite's node directory and, optionally,
// SHOAL_ONNX_NODE_OPS at a comma-separated list of op types to run.

// harnessOps are the op types whose single-node conformance tests
// TestNodeKernels runs by default.
func harnessOps() map[string]bool {
	m := map[string]bool{}
	for _, l := range [][]Op{mathOps(), shapeOps(), reduceOps(), nnOps()} {
		for _, op := range l {
			m[op.Type] = true
		}
	}
	return m
}

func TestNodeKernels(t *testing.T) {
	dir := os.Getenv("SHOAL_ONNX_NODE_TESTS")
	if dir == "" {
		t.Skip("SHOAL_ONNX_NODE_TESTS not set")
	}
	want := harnessOps()
	if s := os.Getenv("SHOAL_ONNX_NODE_OPS"); s != "" {
		want = map[string]bool{}
		for _, o := range strings.Split(s, ",") {
			want[o] = true
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ops := DefaultOps()
	pass, total := map[string]int{}, map[string]int{}
	for _, e := range entries {
		m, err := readModel(filepath.Join(dir, e.Name(), "model.onnx"))
		if err != nil || len(m.GetGraph().GetNode()) != 1 {
			continue
		}
		node := m.GetGraph().GetNode()[0]
		if !want[node.GetOpType()] || (node.GetDomain() != "" && node.GetDomain() != "ai.onnx") {
			continue
		}
		typ := node.GetOpType()
		total[typ]++
		t.Run(e.Name(), func(t *testing.T) {
			if err := runNodeTest(ops, filepath.Join(dir, e.Name()), m); err != nil {
				if errors.Is(err, errElemType) {
					t.Skip(err)
				}
				t.Error(err)
				return
			}
			pass[typ]++
		})
	}
	var names []string
	for k := range total {
		names = append(names, k)
	}
	sort.Strings(names)
	np, nt := 0, 0
	for _, k := range names {
		t.Logf("%-24s %d/%d", k, pass[k], total[k])
		np += pass[k]
		nt += total[k]
	}
	t.Logf("TOTAL %d/%d", np, nt)
}

func readModel(path string) (*onnxpb.ModelProto, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := new(onnxpb.ModelProto)
	return m, proto.Unmarshal(b, m)
}

func runNodeTest(ops *OpSet, dir string, m *onnxpb.ModelProto) error {
	node := m.GetGraph().GetNode()[0]
	var version int64
	for _, imp := range m.GetOpsetImport() {
		if imp.GetDomain() == "" || imp.GetDomain() == "ai.onnx" {
			version = imp.GetVersion()
		}
	}
	op, ok := ops.Lookup(DomainONNX, node.GetOpType(), version)
	if !ok {
		return fmt.Errorf("no %s at opset %d", node.GetOpType(), version)
	}
	attrs := NewAttrs(node.GetAttribute())
	attrs.conv = func(p *onnxpb.TensorProto) (*Value, error) {
		t, err := tensorFromProto(p)
		if err != nil {
			return nil, err
		}
		v := new(Value)
		v.SetTensor(t)
		return v, nil
	}
	n := &Node{Name: node.GetName(), OpType: node.GetOpType(), Version: version, Attrs: attrs,
		NumInputs: len(node.GetInput()), NumOutputs: len(node.GetOutput())}
	for _, s := range node.GetInput() {
		n.InputPresent = append(n.InputPresent, s != "")
	}
	for _, s := range node.GetOutput() {
		n.OutputPresent = append(n.OutputPresent, s != "")
	}
	n.Const = make([]*Value, n.NumInputs)
	k, err := op.New(n)
	if err != nil {
		return fmt.Errorf("New: %w", err)
	}
	sets, _ := filepath.Glob(filepath.Join(dir, "test_data_set_*"))
	for _, set := range sets {
		// Graph inputs map to node inputs by name.
		byName := map[string]*Value{}
		for i, gi := range m.GetGraph().GetInput() {
			t, err := readTensor(filepath.Join(set, fmt.Sprintf("input_%d.pb", i)))
			if err != nil {
				return err
			}
			v := new(Value)
			v.SetTensor(t)
			byName[gi.GetName()] = v
		}
		in := make([]*Value, len(node.GetInput()))
		for i, name := range node.GetInput() {
			if v, ok := byName[name]; ok {
				in[i] = v
			} else {
				in[i] = new(Value)
			}
		}
		out := make([]*Value, len(node.GetOutput()))
		for i := range out {
			out[i] = new(Value)
		}
		if err := k(new(Scratch), in, out); err != nil {
			return fmt.Errorf("%s: run: %w", filepath.Base(set), err)
		}
		for i, gout := range m.GetGraph().GetOutput() {
			want, err := readTensor(filepath.Join(set, fmt.Sprintf("output_%d.pb", i)))
			if err != nil {
				return err
			}
			j := -1
			for oi, name := range node.GetOutput() {
				if name == gout.GetName() {
					j = oi
				}
			}
			if err := sameTensor(&out[j].Tensor, want); err != nil {
				return fmt.Errorf("%s: output %d: %w", filepath.Base(set), i, err)
			}
		}
	}
	return nil
}

func readTensor(path string) (*tensor.Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := new(onnxpb.TensorProto)
	if err := proto.Unmarshal(b, p); err != nil {
		return nil, err
	}
	return tensorFromProto(p)
}

// errElemType marks a test using an element type internal/tensor lacks
// (BFLOAT16, FLOAT8, INT4, complex); such tests are skipped.
var errElemType = errors.New("element type not in internal/tensor")

var protoTypes = map[onnxpb.TensorProto_DataType]tensor.DType{
	onnxpb.TensorProto_FLOAT: tensor.FP32, onnxpb.TensorProto_DOUBLE: tensor.FP64,
	onnxpb.TensorProto_FLOAT16: tensor.FP16, onnxpb.TensorProto_BOOL: tensor.Bool,
	onnxpb.TensorProto_INT8: tensor.Int8, onnxpb.TensorProto_INT16: tensor.Int16,
	onnxpb.TensorProto_INT32: tensor.Int32, onnxpb.TensorProto_INT64: tensor.Int64,
	onnxpb.TensorProto_UINT8: tensor.Uint8, onnxpb.TensorProto_UINT16: tensor.Uint16,
	onnxpb.TensorProto_UINT32: tensor.Uint32, onnxpb.TensorProto_UINT64: tensor.Uint64,
	onnxpb.TensorProto_STRING: tensor.Bytes,
}

func tensorFromProto(p *onnxpb.TensorProto) (*tensor.Tensor, error) {
	dt, ok := protoTypes[onnxpb.TensorProto_DataType(p.GetDataType())]
	if !ok {
		return nil, fmt.Errorf("%w %d", errElemType, p.GetDataType())
	}
	shape := p.GetDims()
	if shape == nil {
		shape = []int64{}
	}
	if len(p.GetRawData()) > 0 || (dt != tensor.Bytes && numel(shape) == 0) {
		return tensor.FromRaw(p.GetName(), dt, shape, p.GetRawData())
	}
	t, err := tensor.New(p.GetName(), dt, shape)
	if err != nil {
		return nil, err
	}
	switch d := t.Data.(type) {
	case []float32:
		copy(d, p.GetFloatData())
	case []float64:
		copy(d, p.GetDoubleData())
	case []int64:
		copy(d, p.GetInt64Data())
	case []uint64:
		copy(d, p.GetUint64Data())
	case []uint32:
		for i, v := range p.GetUint64Data() {
			d[i] = uint32(v)
		}
	case [][]byte:
		copy(d, p.GetStringData())
	default:
		vals := make([]float64, len(p.GetInt32Data()))
		for i, v := range p.GetInt32Data() {
			vals[i] = float64(v)
		}
		if dt == tensor.FP16 {
			u := d.([]uint16)
			for i, v := range p.GetInt32Data() {
				u[i] = uint16(v)
			}
			break
		}
		storeFloats(t, vals)
	}
	return t, nil
}

// sameTensor compares got with want as ONNX's runner does.
func sameTensor(got, want *tensor.Tensor) error {
	if got.DType != want.DType {
		return fmt.Errorf("type %v, want %v", got.DType, want.DType)
	}
	if numel(got.Shape) != numel(want.Shape) || len(got.Shape) != len(want.Shape) {
		return fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	for i := range got.Shape {
		if got.Shape[i] != want.Shape[i] {
			return fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
		}
	}
	if numel(want.Shape) == 0 {
		return nil
	}
	if got.DType == tensor.Bytes || got.DType == tensor.Bool {
		if !reflect.DeepEqual(got.Data, want.Data) {
			return fmt.Errorf("data %v, want %v", got.Data, want.Data)
		}
		return nil
	}
	n := numel(want.Shape)
	g := floatsOf(got, make([]float64, n))
	w := floatsOf(want, make([]float64, n))
	for i := range w {
		if math.IsNaN(w[i]) && math.IsNaN(g[i]) || g[i] == w[i] {
			continue
		}
		if !(math.Abs(g[i]-w[i]) <= 1e-7+1e-3*math.Abs(w[i])) {
			return fmt.Errorf("element %d = %v, want %v (got %v, want %v)", i, g[i], w[i], short(g), short(w))
		}
	}
	return nil
}

func short(v []float64) []float64 {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_INT.Enum(), I: &v}
}

func intsAttr(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func stringAttr(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func floatAttr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: &name, Type: onnxpb.AttributeProto_FLOAT.Enum(), F: &v}
}
