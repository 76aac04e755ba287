package onnx

import (
	"fmt"
	"math"
)

// causalConvOps are the stateful sequence-model operators of opset 27 that
// shoal runs natively: CausalConvWithState.
func causalConvOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "CausalConvWithState", Since: 27, New: newCausalConvWithState},
	}
}

// newCausalConvWithState is a causal depthwise 1-D convolution that carries
// its left context between calls. Inputs: input [B, C, L], weight
// [C, 1, K], bias [C] (optional), past_state [B, C, K-1] (optional, zeros
// when absent). Each channel of past_state ++ input is cross-correlated
// with its kernel (output t reads positions t .. t+K-1 of the padded
// sequence), biased and optionally passed through SiLU; present_state is
// the last K-1 positions of the padded sequence. Computed in float64.
func newCausalConvWithState(n *Node) (Kernel, error) {
	act := n.Attrs.String("activation", "none")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	var silu bool
	switch act {
	case "none":
	case "silu", "swish":
		silu = true
	default:
		return nil, fmt.Errorf("%w: CausalConvWithState activation %q, want none, silu or swish", ErrAttr, act)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x, w, bias, past := in[0], Arg(in, 1), Arg(in, 2), Arg(in, 3)
		if x.Kind != KindTensor || len(x.Tensor.Shape) != 3 || w.Kind != KindTensor || len(w.Tensor.Shape) != 3 {
			return badInput("CausalConvWithState: input %v and weight %v, want [B, C, L] and [C, 1, K]", x, w)
		}
		B, C, L := int(x.Tensor.Shape[0]), int(x.Tensor.Shape[1]), int(x.Tensor.Shape[2])
		K := int(w.Tensor.Shape[2])
		if int(w.Tensor.Shape[0]) != C || w.Tensor.Shape[1] != 1 || K < 1 {
			return badInput("CausalConvWithState: weight %v for %d channels, want [C, 1, K]", w, C)
		}
		if bias.Kind != KindNone && (len(bias.Tensor.Shape) != 1 || int(bias.Tensor.Shape[0]) != C) {
			return badInput("CausalConvWithState: bias %v for %d channels", bias, C)
		}
		if past.Kind != KindNone && (len(past.Tensor.Shape) != 3 || int(past.Tensor.Shape[0]) != B ||
			int(past.Tensor.Shape[1]) != C || int(past.Tensor.Shape[2]) != K-1) {
			return badInput("CausalConvWithState: past_state %v, want [%d %d %d]", past, B, C, K-1)
		}
		for _, v := range []*Value{w, bias, past} {
			if v.Kind != KindNone && v.Tensor.DType != x.Tensor.DType {
				return badInput("CausalConvWithState: inputs of types %v and %v", x.Tensor.DType, v.Tensor.DType)
			}
		}
		padLen := K - 1 + L
		vals, rest, err := floatInputs(tmp, "CausalConvWithState", in[:min(len(in), 4)], padLen+B*C*L+B*C*(K-1))
		if err != nil {
			return err
		}
		xs, ws, bs, ps := vals[0], vals[1], vals[2], vals[3]
		seq, ys, states := rest[:padLen], rest[padLen:padLen+B*C*L], rest[padLen+B*C*L:]
		for b := range B {
			for c := range C {
				bc := b*C + c
				if ps != nil {
					copy(seq[:K-1], ps[bc*(K-1):(bc+1)*(K-1)])
				} else {
					clear(seq[:K-1])
				}
				copy(seq[K-1:], xs[bc*L:(bc+1)*L])
				kern := ws[c*K : (c+1)*K]
				var bv float64
				if bs != nil {
					bv = bs[c]
				}
				y := ys[bc*L : (bc+1)*L]
				for t := range L {
					s := bv
					for j, wj := range kern {
						s += wj * seq[t+j]
					}
					if silu {
						s /= 1 + math.Exp(-s)
					}
					y[t] = s
				}
				copy(states[bc*(K-1):(bc+1)*(K-1)], seq[L:])
			}
		}
		if err := out[0].Resize(x.Tensor.DType, x.Tensor.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys)
		if len(out) > 1 {
			sh := tmp.Shape(3)
			sh[0], sh[1], sh[2] = int64(B), int64(C), int64(K-1)
			if err := out[1].Resize(x.Tensor.DType, sh); err != nil {
				return err
			}
			storeFloats(&out[1].Tensor, states)
		}
		return nil
	}, nil
}
