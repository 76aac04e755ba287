package onnx

import (
	"fmt"
	"math"
)

// swigluOps is SwiGLU (opset 28).
func swigluOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "SwiGLU", Since: 28, New: newSwiGLU},
	}
}

// newSwiGLU computes Y = A * sigmoid(alpha*A) * B for a gate A and a value
// B of the same shape (no broadcasting), in float64.
func newSwiGLU(n *Node) (Kernel, error) {
	alpha := float64(n.Attrs.Float("alpha", 1))
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if n.NumInputs != 2 {
		return nil, fmt.Errorf("%w: SwiGLU has %d inputs, want 2", ErrInvalidModel, n.NumInputs)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		a, b := in[0], in[1]
		if a.Kind != KindTensor || b.Kind != KindTensor || a.Tensor.DType != b.Tensor.DType || !equalShape(a.Tensor.Shape, b.Tensor.Shape) {
			return badInput("SwiGLU: A %v and B %v, want tensors of one type and shape", a, b)
		}
		vals, _, err := floatInputs(tmp, "SwiGLU", in, 0)
		if err != nil {
			return err
		}
		as, bs := vals[0], vals[1]
		for i, x := range as {
			as[i] = x / (1 + math.Exp(-alpha*x)) * bs[i]
		}
		if err := out[0].Resize(a.Tensor.DType, a.Tensor.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, as)
		return nil
	}, nil
}
