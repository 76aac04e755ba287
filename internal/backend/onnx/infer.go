package onnx

import (
	"context"
	"fmt"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// signature derives the backend signature from the graph's declared inputs
// and outputs. Inputs and outputs that are not tensors get a spec with
// DType Invalid; servable rejects those it cannot serve.
func (m *Model) signature(g *onnxpb.GraphProto) error {
	for k, name := range m.inNames {
		spec, _ := tensorSpec(name, m.inTypes[k])
		m.sig.Inputs = append(m.sig.Inputs, spec)
	}
	outTypes := map[string]*onnxpb.TypeProto{}
	for _, vi := range g.GetOutput() {
		outTypes[vi.GetName()] = vi.GetType()
	}
	for _, name := range m.outNames {
		tp := outTypes[name]
		spec, ok := tensorSpec(name, tp)
		m.outTensor = append(m.outTensor, ok)
		if !ok {
			// A sequence of maps (ZipMap) is served as a [N, C] tensor of
			// the map values.
			if mt := tp.GetSequenceType().GetElemType().GetMapType(); mt != nil {
				if vs, ok := tensorSpec(name, mt.GetValueType()); ok {
					spec = backend.TensorSpec{Name: name, DType: vs.DType, Shape: []int64{-1, -1}}
				}
			}
		}
		m.sig.Outputs = append(m.sig.Outputs, spec)
	}
	return nil
}

// servable checks that every input and output can cross the tensor
// boundary of backend.Model, and that model.yaml does not contradict the
// graph.
func (m *Model) servable(cfg backend.Config) error {
	for _, s := range m.sig.Inputs {
		if s.DType == tensor.Invalid {
			return fmt.Errorf("%w: input %q is not a tensor of a supported type", ErrUnsupported, s.Name)
		}
	}
	for _, s := range m.sig.Outputs {
		if s.DType == tensor.Invalid {
			return fmt.Errorf("%w: output %q is neither a tensor nor a sequence of maps", ErrUnsupported, s.Name)
		}
	}
	for _, pair := range []struct {
		what       string
		user, have []backend.TensorSpec
	}{{"input", cfg.Inputs, m.sig.Inputs}, {"output", cfg.Outputs, m.sig.Outputs}} {
		for _, u := range pair.user {
			found := false
			for _, h := range pair.have {
				if h.Name == u.Name {
					found = true
					if u.DType != tensor.Invalid && u.DType != h.DType {
						return fmt.Errorf("onnx: model.yaml says %s %q is %v, the model says %v", pair.what, u.Name, u.DType, h.DType)
					}
				}
			}
			if !found {
				return fmt.Errorf("onnx: model.yaml names %s %q, which the model does not have", pair.what, u.Name)
			}
		}
	}
	return nil
}

// Signature implements backend.Model: graph inputs (initializers excluded)
// and outputs, with dimensions named by dim_param (or unknown) as -1.
func (m *Model) Signature() backend.Signature { return m.sig }

// Infer implements backend.Model. Outputs that are sequences of maps
// (ZipMap) are returned as [N, C] tensors of the map values, in key order.
func (m *Model) Infer(ctx context.Context, inputs []*tensor.Tensor) ([]*tensor.Tensor, error) {
	s := m.pool.Get().(*state)
	defer m.pool.Put(s)
	defer clear(s.inputs)
	for k, spec := range m.sig.Inputs {
		t, ok := backend.FindInput(inputs, spec.Name)
		if !ok {
			return nil, fmt.Errorf("%w: missing input %q", ErrInvalidInput, spec.Name)
		}
		if t.DType != spec.DType {
			return nil, fmt.Errorf("%w: input %q is %v, want %v", ErrInvalidInput, spec.Name, t.DType, spec.DType)
		}
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("%w: input %q: %w", ErrInvalidInput, spec.Name, err)
		}
		if spec.Shape != nil {
			if len(t.Shape) != len(spec.Shape) {
				return nil, fmt.Errorf("%w: input %q has shape %v, want %v", ErrInvalidInput, spec.Name, t.Shape, spec.Shape)
			}
			for i, d := range spec.Shape {
				if d >= 0 && t.Shape[i] != d {
					return nil, fmt.Errorf("%w: input %q has shape %v, want %v", ErrInvalidInput, spec.Name, t.Shape, spec.Shape)
				}
			}
		}
		s.inputs[k] = Value{Kind: KindTensor, Tensor: *t}
	}
	if err := m.checkDimEq(s.inputs); err != nil {
		return nil, err
	}
	if err := m.run(ctx, s); err != nil {
		return nil, err
	}
	outs := make([]*tensor.Tensor, len(m.outputs))
	for k, vi := range m.outputs {
		t, err := exportTensor(m.outNames[k], s.vals[vi])
		if err != nil {
			return nil, err
		}
		outs[k] = t
	}
	return outs, nil
}

// exportTensor copies v into a new tensor the caller owns.
func exportTensor(name string, v *Value) (*tensor.Tensor, error) {
	switch v.Kind {
	case KindTensor:
		var c Value
		if err := c.CopyFrom(v); err != nil {
			return nil, err
		}
		return &tensor.Tensor{Name: name, DType: c.Tensor.DType, Shape: c.Tensor.Shape, Data: c.Tensor.Data}, nil
	case KindSequence:
		// A sequence of maps with the same keys: rows of values.
		if len(v.Seq) == 0 {
			return nil, fmt.Errorf("onnx: output %q: empty sequence", name)
		}
		first := v.Seq[0]
		if first.Kind != KindMap {
			return nil, fmt.Errorf("%w: output %q is a sequence of %v", ErrUnsupported, name, first)
		}
		cols := first.Len()
		t, err := tensor.New(name, first.Tensor.DType, []int64{int64(len(v.Seq)), int64(cols)})
		if err != nil {
			return nil, err
		}
		var row Value
		for i, e := range v.Seq {
			if e.Kind != KindMap || e.Len() != cols || e.Tensor.DType != first.Tensor.DType {
				return nil, fmt.Errorf("onnx: output %q: maps of different sizes", name)
			}
			row.Tensor = tensor.Tensor{DType: t.DType, Data: sliceData(t.Data, i*cols, (i+1)*cols)}
			copyData(row.Tensor.Data, e.Tensor.Data)
		}
		return t, nil
	}
	return nil, fmt.Errorf("%w: output %q is a %v", ErrUnsupported, name, v)
}

// sliceData returns data[lo:hi] for a typed slice.
func sliceData(data any, lo, hi int) any {
	switch d := data.(type) {
	case []float32:
		return d[lo:hi]
	case []float64:
		return d[lo:hi]
	case []int64:
		return d[lo:hi]
	case []int32:
		return d[lo:hi]
	case [][]byte:
		return d[lo:hi]
	case []bool:
		return d[lo:hi]
	case []uint8:
		return d[lo:hi]
	case []int8:
		return d[lo:hi]
	case []uint16:
		return d[lo:hi]
	case []int16:
		return d[lo:hi]
	case []uint32:
		return d[lo:hi]
	case []uint64:
		return d[lo:hi]
	}
	panic(fmt.Sprintf("onnx: sliceData of %T", data))
}
