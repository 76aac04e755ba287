package onnx

import (
	"fmt"
	"math"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// DomainPreview is the experimental operator set ai.onnx.preview.
const DomainPreview = "ai.onnx.preview"

// flexAttentionOps is FlexAttention (ai.onnx.preview 1): attention whose
// scores and probabilities pass through user subgraphs.
func flexAttentionOps() []Op {
	return []Op{
		{Domain: DomainPreview, Type: "FlexAttention", Since: 1, New: newFlexAttention},
	}
}

// flexState is a FlexAttention kernel's memory in one execution state.
type flexState struct {
	score, prob *subState
	buf         Value // the tensor handed to a modifier
}

// newFlexAttention computes Y = prob_mod(Softmax(score_mod(Q K^T * scale)))
// V over rank-4 Q [B, Hq, Sq, D], K [B, Hkv, Skv, D], V [B, Hkv, Skv, Dv];
// query head h uses K/V head h / (Hq/Hkv). The modifiers, when present,
// are subgraphs from one [B, Hq, Sq, Skv] tensor of the softmax precision
// (FLOAT unless the inputs are DOUBLE or softmax_precision says
// otherwise) to another of the same shape and type. The rest is computed
// in float64.
func newFlexAttention(n *Node) (Kernel, error) {
	hasScale := n.Attrs.Has("scale")
	scaleAttr := float64(n.Attrs.Float("scale", 0))
	prec := n.Attrs.Int("softmax_precision", 0)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	var mods [2]*Subgraph
	for i, name := range []string{"score_mod", "prob_mod"} {
		if !n.Attrs.Has(name) {
			continue
		}
		sg, err := n.Subgraph(name)
		if err != nil {
			return nil, err
		}
		if sg.NumInputs() != 1 || sg.NumOutputs() != 1 {
			return nil, fmt.Errorf("%w: FlexAttention %s has %d inputs and %d outputs, want 1 and 1", ErrInvalidModel, name, sg.NumInputs(), sg.NumOutputs())
		}
		mods[i] = sg
	}
	var precDT tensor.DType
	switch prec {
	case 0:
	case onnxFloat, onnxDouble, onnxFloat16:
		precDT, _ = dtypeOf(int32(prec))
	default:
		return nil, fmt.Errorf("%w: FlexAttention softmax_precision %d", ErrUnsupported, prec)
	}
	declared := n.NumInputs
	return func(tmp *Scratch, in, out []*Value) error {
		q, k, v := in[0], Arg(in, 1), Arg(in, 2)
		for i, x := range []*Value{q, k, v} {
			if x.Kind != KindTensor || len(x.Tensor.Shape) != 4 {
				return badInput("FlexAttention: input %d is %v, want a rank-4 tensor", i, x)
			}
		}
		qs, ks, vs := q.Tensor.Shape, k.Tensor.Shape, v.Tensor.Shape
		B, Hq, Sq, D := int(qs[0]), int(qs[1]), int(qs[2]), int(qs[3])
		Hkv, Skv, Dv := int(ks[1]), int(ks[2]), int(vs[3])
		if int(ks[0]) != B || int(vs[0]) != B || int(ks[3]) != D || int(vs[1]) != Hkv || int(vs[2]) != Skv || Hkv == 0 || Hq%Hkv != 0 {
			return badInput("FlexAttention: Q %v, K %v, V %v do not fit", qs, ks, vs)
		}
		scale := scaleAttr
		if !hasScale {
			scale = 1 / math.Sqrt(float64(D))
		}
		dt := precDT
		if dt == tensor.Invalid {
			dt = tensor.FP32
			if q.Tensor.DType == tensor.FP64 {
				dt = tensor.FP64
			}
		}
		nS := B * Hq * Sq * Skv
		vals, rest, err := floatInputs(tmp, "FlexAttention", in[:min(len(in), 3)], nS+B*Hq*Sq*Dv)
		if err != nil {
			return err
		}
		qf, kf, vf := vals[0], vals[1], vals[2]
		S, Y := rest[:nS], rest[nS:]
		group := Hq / Hkv
		for b := range B {
			for h := range Hq {
				kh := b*Hkv + h/group
				for i := range Sq {
					qq := qf[((b*Hq+h)*Sq+i)*D : ((b*Hq+h)*Sq+i+1)*D]
					row := S[((b*Hq+h)*Sq+i)*Skv : ((b*Hq+h)*Sq+i+1)*Skv]
					for j := range Skv {
						kk := kf[(kh*Skv+j)*D : (kh*Skv+j+1)*D]
						var s float64
						for d, x := range qq {
							s += x * kk[d]
						}
						row[j] = s * scale
					}
				}
			}
		}
		fs, _ := tmp.Any.(*flexState)
		if fs == nil {
			fs = &flexState{}
			if mods[0] != nil {
				fs.score = mods[0].newState()
			}
			if mods[1] != nil {
				fs.prob = mods[1].newState()
			}
			tmp.Any = fs
		}
		shape := tmp.Shape(4)
		shape[0], shape[1], shape[2], shape[3] = int64(B), int64(Hq), int64(Sq), int64(Skv)
		if err := flexModify(tmp, fs, fs.score, S, dt, shape, in[declared:]); err != nil {
			return fmt.Errorf("FlexAttention score_mod: %w", err)
		}
		for r := range B * Hq * Sq {
			softmaxRow(S[r*Skv : (r+1)*Skv])
		}
		if err := flexModify(tmp, fs, fs.prob, S, dt, shape, in[declared:]); err != nil {
			return fmt.Errorf("FlexAttention prob_mod: %w", err)
		}
		for b := range B {
			for h := range Hq {
				vh := b*Hkv + h/group
				for i := range Sq {
					p := S[((b*Hq+h)*Sq+i)*Skv : ((b*Hq+h)*Sq+i+1)*Skv]
					y := Y[((b*Hq+h)*Sq+i)*Dv : ((b*Hq+h)*Sq+i+1)*Dv]
					clear(y)
					for j, pj := range p {
						vv := vf[(vh*Skv+j)*Dv : (vh*Skv+j+1)*Dv]
						for d := range y {
							y[d] += pj * vv[d]
						}
					}
				}
			}
		}
		shape[3] = int64(Dv)
		if err := out[0].Resize(q.Tensor.DType, shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, Y)
		return nil
	}, nil
}

// flexModify passes S (of the given shape) through a modifier subgraph as
// a tensor of type dt, in place; nothing happens without a modifier.
func flexModify(tmp *Scratch, fs *flexState, ss *subState, S []float64, dt tensor.DType, shape []int64, captured []*Value) error {
	if ss == nil {
		return nil
	}
	defer ss.release()
	if err := fs.buf.Resize(dt, shape); err != nil {
		return err
	}
	storeFloats(&fs.buf.Tensor, S)
	ss.setInput(0, &fs.buf)
	if err := ss.run(tmp.Context(), captured); err != nil {
		return err
	}
	r := ss.output(0)
	if r.Kind != KindTensor || !equalShape(r.Tensor.Shape, shape) {
		return badInput("the modifier returned %v, want shape %v", r, shape)
	}
	if err := checkType("modifier output", r, floatTypes...); err != nil {
		return err
	}
	floatsOf(&r.Tensor, S)
	return nil
}
