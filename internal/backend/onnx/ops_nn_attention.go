package onnx

import (
	"math"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// attentionOps is Attention (opsets 23 and 24): scaled dot-product
// attention over 3-D ([batch, seq, heads*size]) or 4-D ([batch, heads,
// seq, size]) inputs, with grouped-query heads, a boolean or additive
// mask, causal masking, a key/value cache (past and present), padding by
// nonpad_kv_seqlen, softcap and the qk_matmul_output modes. It computes
// in float64 with plain loops: correct, not fast.
func attentionOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "Attention", Since: 23, New: newAttention},
		{Domain: DomainONNX, Type: "RotaryEmbedding", Since: 23, New: newRotaryEmbedding},
	}
}

type attentionAttrs struct {
	causal          bool
	qHeads, kvHeads int
	mode            int64
	scale, softcap  float64
	hasScale        bool
	hasSoftcap      bool
}

func newAttention(n *Node) (Kernel, error) {
	a := attentionAttrs{
		causal:  n.Attrs.Int("is_causal", 0) != 0,
		qHeads:  int(n.Attrs.Int("q_num_heads", 0)),
		kvHeads: int(n.Attrs.Int("kv_num_heads", 0)),
		mode:    n.Attrs.Int("qk_matmul_output_mode", 0),
		scale:   float64(n.Attrs.Float("scale", 0)),
		softcap: float64(n.Attrs.Float("softcap", 0)),
	}
	a.hasScale = n.Attrs.Has("scale")
	a.hasSoftcap = n.Attrs.Has("softcap")
	n.Attrs.Int("softmax_precision", 0)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if a.mode < 0 || a.mode > 3 {
		return nil, attrError("Attention qk_matmul_output_mode %d", a.mode)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		return attention(tmp, &a, in, out)
	}, nil
}

// attnDims are the 4-D dimensions of one attention operand.
type attnDims struct{ b, h, s, d int }

// dims4 returns the 4-D view of a 3-D or 4-D operand with heads heads.
func dims4(t *tensor.Tensor, heads int) (attnDims, error) {
	switch len(t.Shape) {
	case 4:
		return attnDims{int(t.Shape[0]), int(t.Shape[1]), int(t.Shape[2]), int(t.Shape[3])}, nil
	case 3:
		if heads <= 0 || int(t.Shape[2])%heads != 0 {
			return attnDims{}, badInput("Attention 3-D input %v needs num_heads dividing its last dimension", t.Shape)
		}
		return attnDims{int(t.Shape[0]), heads, int(t.Shape[1]), int(t.Shape[2]) / heads}, nil
	}
	return attnDims{}, badInput("Attention input of rank %d", len(t.Shape))
}

// load4 writes t (3-D [b, s, h*d] or 4-D [b, h, s, d]) into dst as
// [b, h, s, d].
func load4(dst []float64, t *tensor.Tensor, d attnDims, buf []float64) {
	src := floatsOf(t, buf)
	if len(t.Shape) == 4 {
		copy(dst, src)
		return
	}
	for b := range d.b {
		for s := range d.s {
			for h := range d.h {
				copy(dst[((b*d.h+h)*d.s+s)*d.d:][:d.d], src[((b*d.s+s)*d.h+h)*d.d:][:d.d])
			}
		}
	}
}

func attention(tmp *Scratch, a *attentionAttrs, in, out []*Value) error {
	for i := range 3 {
		if err := checkType("Attention", in[i], floatTypes...); err != nil {
			return err
		}
	}
	qt, kt, vt := &in[0].Tensor, &in[1].Tensor, &in[2].Tensor
	qd, err := dims4(qt, a.qHeads)
	if err != nil {
		return err
	}
	kd, err := dims4(kt, a.kvHeads)
	if err != nil {
		return err
	}
	vd, err := dims4(vt, a.kvHeads)
	if err != nil {
		return err
	}
	mask, pk, pv, nonpad := Arg(in, 3), Arg(in, 4), Arg(in, 5), Arg(in, 6)
	past := 0
	if pk.Kind == KindTensor {
		if len(pk.Tensor.Shape) != 4 || pv.Kind != KindTensor || len(pv.Tensor.Shape) != 4 {
			return badInput("Attention past_key %v, past_value %v", pk, pv)
		}
		past = int(pk.Tensor.Shape[2])
	}
	if kd.b != qd.b || vd.b != qd.b || kd.h != vd.h || kd.s != vd.s || kd.d != qd.d || qd.h%kd.h != 0 {
		return badInput("Attention shapes Q %v, K %v, V %v", qt.Shape, kt.Shape, vt.Shape)
	}
	B, Hq, Hk, Sq, D, Dv := qd.b, qd.h, kd.h, qd.s, qd.d, vd.d
	T := past + kd.s
	scale := 1 / math.Sqrt(float64(D))
	if a.hasScale {
		scale = a.scale
	}
	nq, nk, nv := B*Hq*Sq*D, B*Hk*T*D, B*Hk*T*Dv
	nqk, ny := B*Hq*Sq*T, B*Hq*Sq*Dv
	nmax := max(nq, kt.Len(), vt.Len())
	if pk.Kind == KindTensor {
		nmax = max(nmax, pk.Len(), pv.Len())
	}
	nstage := max(kt.Len(), vt.Len())
	nmask := 0
	if mask.Kind == KindTensor {
		nmask = mask.Len()
	}
	buf := tmp.Float64s(nq + nk + nv + 3*nqk + ny + nmax + nstage + nmask)
	Q, K, V := buf[:nq], buf[nq:nq+nk], buf[nq+nk:nq+nk+nv]
	off := nq + nk + nv
	S, bias, P := buf[off:off+nqk], buf[off+nqk:off+2*nqk], buf[off+2*nqk:off+3*nqk]
	Y := buf[off+3*nqk : off+3*nqk+ny]
	conv := buf[off+3*nqk+ny : off+3*nqk+ny+nmax]
	stage := buf[off+3*nqk+ny+nmax : off+3*nqk+ny+nmax+nstage]
	mbuf := buf[off+3*nqk+ny+nmax+nstage:]
	load4(Q, qt, qd, conv)
	// K and V: past rows first, then the new ones, per (b, h).
	newK := stage[:kt.Len()]
	load4(newK, kt, kd, conv)
	var pastK []float64
	if past > 0 {
		pastK = floatsOf(&pk.Tensor, conv[:pk.Len()])
	}
	concatSeq(K, pastK, newK, B*Hk, past, kd.s, D)
	newV := stage[:vt.Len()]
	load4(newV, vt, vd, conv)
	var pastV []float64
	if past > 0 {
		pastV = floatsOf(&pv.Tensor, conv[:pv.Len()])
	}
	concatSeq(V, pastV, newV, B*Hk, past, vd.s, Dv)
	// The additive bias per (b, h, i, j).
	if err := attentionBias(bias, mbuf, tmp, a, mask, nonpad, pk.Kind == KindTensor, B, Hq, Sq, T, past); err != nil {
		return err
	}
	group := Hq / Hk
	for b := range B {
		for h := range Hq {
			kh := h / group
			for i := range Sq {
				q := Q[((b*Hq+h)*Sq+i)*D:][:D]
				row := ((b*Hq+h)*Sq + i) * T
				for j := range T {
					k := K[((b*Hk+kh)*T+j)*D:][:D]
					s := 0.0
					for x := range D {
						s += q[x] * k[x]
					}
					s *= scale
					if a.softcap > 0 {
						s = a.softcap * math.Tanh(s/a.softcap)
					}
					S[row+j] = s
					P[row+j] = s + bias[row+j]
				}
				softmaxRow(P[row : row+T])
				y := Y[((b*Hq+h)*Sq+i)*Dv:][:Dv]
				clear(y)
				for j := range T {
					p := P[row+j]
					if p == 0 {
						continue
					}
					v := V[((b*Hk+kh)*T+j)*Dv:][:Dv]
					for x := range y {
						y[x] += p * v[x]
					}
				}
			}
		}
	}
	// Y, in Q's layout.
	shape := tmp.Shape(4)
	if len(qt.Shape) == 3 {
		shape = shape[:3]
		shape[0], shape[1], shape[2] = int64(B), int64(Sq), int64(Hq*Dv)
		tr := conv[:ny]
		for b := range B {
			for h := range Hq {
				for s := range Sq {
					copy(tr[((b*Sq+s)*Hq+h)*Dv:][:Dv], Y[((b*Hq+h)*Sq+s)*Dv:][:Dv])
				}
			}
		}
		Y = tr
	} else {
		shape[0], shape[1], shape[2], shape[3] = int64(B), int64(Hq), int64(Sq), int64(Dv)
	}
	if err := out[0].Resize(qt.DType, shape); err != nil {
		return err
	}
	storeFloats(&out[0].Tensor, Y)
	for i, kv := range []struct {
		data []float64
		d    int
	}{{K, D}, {V, Dv}} {
		o := Arg(out, 1+i)
		if o == &absent {
			continue
		}
		shape = shape[:4]
		shape[0], shape[1], shape[2], shape[3] = int64(B), int64(Hk), int64(T), int64(kv.d)
		if err := o.Resize(qt.DType, shape); err != nil {
			return err
		}
		storeFloats(&o.Tensor, kv.data)
	}
	if o := Arg(out, 3); o != &absent {
		var qk []float64
		switch a.mode {
		case 0:
			qk = S
		case 1:
			// As ONNX's reference: with a softcap attribute, mode 1
			// gives the softcapped product without the mask.
			if !a.hasSoftcap {
				for i := range S {
					S[i] += bias[i]
				}
			}
			qk = S
		case 2:
			for i := range S {
				S[i] += bias[i]
			}
			qk = S
		default:
			qk = P
		}
		shape = shape[:4]
		shape[0], shape[1], shape[2], shape[3] = int64(B), int64(Hq), int64(Sq), int64(T)
		if err := o.Resize(qt.DType, shape); err != nil {
			return err
		}
		storeFloats(&o.Tensor, qk)
	}
	return nil
}

// concatSeq writes, for each of n (batch, head) pairs, past rows of past
// then m rows of cur (each of d values) into dst.
func concatSeq(dst, past, cur []float64, n, p, m, d int) {
	for i := range n {
		o := dst[i*(p+m)*d:]
		if p > 0 {
			copy(o[:p*d], past[i*p*d:(i+1)*p*d])
		}
		copy(o[p*d:(p+m)*d], cur[i*m*d:(i+1)*m*d])
	}
}

// softmaxRow replaces r by its softmax; a row masked everywhere (all
// -inf) becomes zeros instead of NaN.
func softmaxRow(r []float64) {
	m := math.Inf(-1)
	for _, v := range r {
		m = max(m, v)
	}
	if math.IsInf(m, -1) {
		clear(r)
		return
	}
	s := 0.0
	for i, v := range r {
		e := math.Exp(v - m)
		r[i] = e
		s += e
	}
	for i := range r {
		r[i] /= s
	}
}

// attentionBias fills bias [B, Hq, Sq, T] with the attention mask
// (boolean: false is -inf; additive otherwise; broadcast, and padded with
// -inf past its last dimension), the causal mask and the padding of
// nonpad_kv_seqlen.
func attentionBias(bias, mbuf []float64, tmp *Scratch, a *attentionAttrs, mask, nonpad *Value, hasPast bool, B, Hq, Sq, T, past int) error {
	clear(bias)
	inf := math.Inf(-1)
	if mask.Kind == KindTensor {
		mt := &mask.Tensor
		r := len(mt.Shape)
		if r < 2 || r > 4 {
			return badInput("Attention mask of rank %d", r)
		}
		mlen := int(mt.Shape[r-1])
		mq := int(mt.Shape[r-2])
		var mh, mb int = 1, 1
		if r >= 3 {
			mh = int(mt.Shape[r-3])
		}
		if r == 4 {
			mb = int(mt.Shape[0])
		}
		var get func(i int) float64
		switch d := mt.Data.(type) {
		case []bool:
			get = func(i int) float64 {
				if d[i] {
					return 0
				}
				return inf
			}
		default:
			if !isFloat(mt.DType) {
				return badInput("Attention mask of %v", mt.DType)
			}
			fv := floatsOf(mt, mbuf[:mt.Len()])
			get = func(i int) float64 { return fv[i] }
		}
		for b := range B {
			for h := range Hq {
				for i := range Sq {
					row := ((b*Hq+h)*Sq + i) * T
					bi, hi, qi := b%mb, h%mh, i%mq
					if mb == 1 {
						bi = 0
					}
					if mh == 1 {
						hi = 0
					}
					if mq == 1 {
						qi = 0
					}
					base := ((bi*mh+hi)*mq + qi) * mlen
					for j := range T {
						if j < mlen {
							bias[row+j] = get(base + j)
						} else {
							bias[row+j] = inf
						}
					}
				}
			}
		}
	}
	var np []int64
	if nonpad.Kind == KindTensor {
		var err error
		if np, err = intsOf(nonpad, tmp.Int64s(B)[:0]); err != nil {
			return err
		}
		if len(np) != B {
			return badInput("Attention nonpad_kv_seqlen of %d for batch %d", len(np), B)
		}
	}
	for b := range B {
		offset := 0
		if a.causal {
			switch {
			case hasPast:
				offset = past
			case np != nil:
				offset = int(np[b]) - Sq
			}
		}
		for h := range Hq {
			for i := range Sq {
				row := ((b*Hq+h)*Sq + i) * T
				for j := range T {
					if a.causal && j > i+offset {
						bias[row+j] = inf
					}
					if np != nil && j >= int(np[b]) {
						bias[row+j] = inf
					}
				}
			}
		}
	}
	return nil
}

// newRotaryEmbedding builds RotaryEmbedding (opset 23): each head vector
// of X (4-D [batch, heads, seq, size], or 3-D [batch, seq, heads*size]
// with num_heads) has its first rotary_embedding_dim values rotated by the
// cos and sin caches, indexed by position_ids ([batch, seq]) or given per
// batch and position; pairs are halves of the rotated part, or adjacent
// values when interleaved.
func newRotaryEmbedding(n *Node) (Kernel, error) {
	interleaved := n.Attrs.Int("interleaved", 0) != 0
	heads := int(n.Attrs.Int("num_heads", 0))
	rotDim := int(n.Attrs.Int("rotary_embedding_dim", 0))
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		for i := range 3 {
			if err := checkType("RotaryEmbedding", in[i], floatTypes...); err != nil {
				return err
			}
		}
		x := &in[0].Tensor
		var B, H, S, D int
		switch len(x.Shape) {
		case 4:
			B, H, S, D = int(x.Shape[0]), int(x.Shape[1]), int(x.Shape[2]), int(x.Shape[3])
		case 3:
			if heads <= 0 || int(x.Shape[2])%heads != 0 {
				return badInput("RotaryEmbedding of %v with num_heads %d", x.Shape, heads)
			}
			B, S, H, D = int(x.Shape[0]), int(x.Shape[1]), heads, int(x.Shape[2])/heads
		default:
			return badInput("RotaryEmbedding of %v", x.Shape)
		}
		rot := rotDim
		if rot == 0 {
			rot = D
		}
		half := rot / 2
		cs, sn := &in[1].Tensor, &in[2].Tensor
		cw := int(cs.Shape[len(cs.Shape)-1])
		if half > cw || rot > D {
			return badInput("RotaryEmbedding caches %v for rotary dimension %d", cs.Shape, rot)
		}
		var pid []int64
		if v := Arg(in, 3); v.Kind == KindTensor {
			var err error
			if pid, err = intsOf(v, tmp.Int64s(B * S)[:0]); err != nil {
				return err
			}
		}
		nx, nc := numel(x.Shape), numel(cs.Shape)
		buf := tmp.Float64s(nx + 2*nc)
		xs := floatsOf(x, buf[:nx])
		cv, sv := floatsOf(cs, buf[nx:nx+nc]), floatsOf(sn, buf[nx+nc:])
		rows := nc / cw
		for b := range B {
			for s := range S {
				row := b*S + s
				if pid != nil {
					row = int(pid[b*S+s])
				}
				if row < 0 || row >= rows {
					return badInput("RotaryEmbedding position %d out of range", row)
				}
				c, si := cv[row*cw:row*cw+half], sv[row*cw:row*cw+half]
				for h := range H {
					off := ((b*H+h)*S + s) * D
					if len(x.Shape) == 3 {
						off = ((b*S+s)*H + h) * D
					}
					v := xs[off : off+rot]
					for i := range half {
						i1, i2 := i, i+half
						if interleaved {
							i1, i2 = 2*i, 2*i+1
						}
						x1, x2 := v[i1], v[i2]
						v[i1] = c[i]*x1 - si[i]*x2
						v[i2] = si[i]*x1 + c[i]*x2
					}
				}
			}
		}
		if err := out[0].Resize(x.DType, x.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, xs)
		return nil
	}, nil
}
