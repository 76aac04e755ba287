package onnx

import (
	"fmt"
	"math"
)

// linearAttentionOps is LinearAttention (opset 27), the recurrent linear
// attention of Gated DeltaNet and its simpler variants.
func linearAttentionOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "LinearAttention", Since: 27, New: newLinearAttention},
	}
}

// Update rules of LinearAttention.
const (
	ruleLinear = iota
	ruleGated
	ruleDelta
	ruleGatedDelta
)

// newLinearAttention runs the recurrence token by token, per batch entry
// and KV head, on a d_k x d_v state S (zeros, or past_state):
//
//	linear:      S = S + k v^T
//	gated:       S = exp(g) S + k v^T
//	delta:       S = S + beta k (v - S^T k)^T
//	gated_delta: S' = exp(g) S; S = S' + beta k (v - S'^T k)^T
//
// and each query head reads o = scale q^T S from its KV head's state
// (query head h uses KV head h / (q_num_heads / kv_num_heads)). Inputs:
// query [B, T, Hq*dk], key [B, T, Hk*dk] (Hk divides H_kv), value
// [B, T, H_kv*dv], past_state [B, H_kv, dk, dv] (optional), decay (log
// space, [B, T, H_kv] or [B, T, H_kv*dk] for a gate per key dimension),
// beta ([B, T, H_kv] or [B, T, 1]). Outputs: output [B, T, Hq*dv] and
// present_state. Computed in float64.
func newLinearAttention(n *Node) (Kernel, error) {
	hq := n.Attrs.Int("q_num_heads", 0)
	hkv := n.Attrs.Int("kv_num_heads", 0)
	scaleAttr := n.Attrs.Float("scale", 0)
	ruleS := n.Attrs.String("update_rule", "gated_delta")
	n.Attrs.Int("chunk_size", 64) // a tuning hint for chunked kernels
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if hq <= 0 || hkv <= 0 || hq%hkv != 0 {
		return nil, fmt.Errorf("%w: LinearAttention q_num_heads %d, kv_num_heads %d: want positive, q a multiple of kv", ErrAttr, hq, hkv)
	}
	rule := map[string]int{"linear": ruleLinear, "gated": ruleGated, "delta": ruleDelta, "gated_delta": ruleGatedDelta}
	r, ok := rule[ruleS]
	if !ok {
		return nil, fmt.Errorf("%w: LinearAttention update_rule %q", ErrAttr, ruleS)
	}
	gated, delta := r == ruleGated || r == ruleGatedDelta, r == ruleDelta || r == ruleGatedDelta
	Hq, Hkv := int(hq), int(hkv)
	return func(tmp *Scratch, in, out []*Value) error {
		q, k, v, past, decay, beta := in[0], Arg(in, 1), Arg(in, 2), Arg(in, 3), Arg(in, 4), Arg(in, 5)
		for i, x := range []*Value{q, k, v} {
			if x.Kind != KindTensor || len(x.Tensor.Shape) != 3 {
				return badInput("LinearAttention: input %d is %v, want [B, T, H*D]", i, x)
			}
		}
		B, T := int(q.Tensor.Shape[0]), int(q.Tensor.Shape[1])
		for _, x := range []*Value{k, v} {
			if int(x.Tensor.Shape[0]) != B || int(x.Tensor.Shape[1]) != T {
				return badInput("LinearAttention: query %v, key or value %v", q, x)
			}
		}
		qw, kw, vw := int(q.Tensor.Shape[2]), int(k.Tensor.Shape[2]), int(v.Tensor.Shape[2])
		if qw%Hq != 0 || vw%Hkv != 0 || qw == 0 {
			return badInput("LinearAttention: query width %d, value width %d for %d and %d heads", qw, vw, Hq, Hkv)
		}
		dk, dv := qw/Hq, vw/Hkv
		Hk := kw / dk
		if kw%dk != 0 || Hk == 0 || Hkv%Hk != 0 {
			return badInput("LinearAttention: key width %d for d_k %d and %d KV heads", kw, dk, Hkv)
		}
		if past.Kind != KindNone && !equalShape(past.Tensor.Shape, []int64{int64(B), int64(Hkv), int64(dk), int64(dv)}) {
			return badInput("LinearAttention: past_state %v, want [%d %d %d %d]", past, B, Hkv, dk, dv)
		}
		gw, bw := 0, 0
		if gated {
			if decay.Kind == KindNone || len(decay.Tensor.Shape) != 3 || int(decay.Tensor.Shape[0]) != B || int(decay.Tensor.Shape[1]) != T {
				return badInput("LinearAttention: update rule %s needs decay [B, T, H_kv] or [B, T, H_kv*d_k], got %v", ruleS, decay)
			}
			if gw = int(decay.Tensor.Shape[2]); gw != Hkv && gw != Hkv*dk {
				return badInput("LinearAttention: decay width %d, want %d or %d", gw, Hkv, Hkv*dk)
			}
		}
		if delta {
			if beta.Kind == KindNone || len(beta.Tensor.Shape) != 3 || int(beta.Tensor.Shape[0]) != B || int(beta.Tensor.Shape[1]) != T {
				return badInput("LinearAttention: update rule %s needs beta [B, T, H_kv] or [B, T, 1], got %v", ruleS, beta)
			}
			if bw = int(beta.Tensor.Shape[2]); bw != Hkv && bw != 1 {
				return badInput("LinearAttention: beta width %d, want %d or 1", bw, Hkv)
			}
		}
		scale := float64(scaleAttr)
		if scale == 0 {
			scale = 1 / math.Sqrt(float64(dk))
		}
		nS := B * Hkv * dk * dv
		vals, rest, err := floatInputs(tmp, "LinearAttention", in[:min(len(in), 6)], nS+B*T*Hq*dv+dv)
		if err != nil {
			return err
		}
		qs, ks, vs, ps, gs, bs := vals[0], vals[1], vals[2], vals[3], vals[4], vals[5]
		S, ys, mem := rest[:nS], rest[nS:nS+B*T*Hq*dv], rest[nS+B*T*Hq*dv:]
		if ps != nil {
			copy(S, ps)
		} else {
			clear(S)
		}
		group, kgroup := Hq/Hkv, Hkv/Hk
		for b := range B {
			for t := range T {
				bt := b*T + t
				for h := range Hkv {
					st := S[(b*Hkv+h)*dk*dv : (b*Hkv+h+1)*dk*dv]
					kk := ks[bt*kw+(h/kgroup)*dk : bt*kw+(h/kgroup+1)*dk]
					vv := vs[bt*vw+h*dv : bt*vw+(h+1)*dv]
					if gated {
						for i := range dk {
							g := gs[bt*gw+h]
							if gw != Hkv {
								g = gs[bt*gw+h*dk+i]
							}
							e := math.Exp(g)
							row := st[i*dv : (i+1)*dv]
							for j := range row {
								row[j] *= e
							}
						}
					}
					if delta {
						bet := bs[bt*bw]
						if bw != 1 {
							bet = bs[bt*bw+h]
						}
						for j := range dv { // mem = v - S^T k
							s := vv[j]
							for i := range dk {
								s -= st[i*dv+j] * kk[i]
							}
							mem[j] = bet * s
						}
					} else {
						copy(mem, vv)
					}
					for i := range dk {
						row := st[i*dv : (i+1)*dv]
						for j := range row {
							row[j] += kk[i] * mem[j]
						}
					}
				}
				for h := range Hq {
					st := S[(b*Hkv+h/group)*dk*dv : (b*Hkv+h/group+1)*dk*dv]
					qq := qs[bt*qw+h*dk : bt*qw+(h+1)*dk]
					y := ys[(bt*Hq+h)*dv : (bt*Hq+h+1)*dv]
					for j := range dv {
						var s float64
						for i := range dk {
							s += qq[i] * st[i*dv+j]
						}
						y[j] = scale * s
					}
				}
			}
		}
		sh := tmp.Shape(4)
		sh[0], sh[1], sh[2] = int64(B), int64(T), int64(Hq*dv)
		if err := out[0].Resize(q.Tensor.DType, sh[:3]); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys)
		if len(out) > 1 {
			sh[0], sh[1], sh[2], sh[3] = int64(B), int64(Hkv), int64(dk), int64(dv)
			dt := q.Tensor.DType
			if past.Kind != KindNone {
				dt = past.Tensor.DType
			}
			if err := out[1].Resize(dt, sh); err != nil {
				return err
			}
			storeFloats(&out[1].Tensor, S)
		}
		return nil
	}, nil
}
