package onnx

import (
	"math"
	"strings"
)

// rnnOps are the recurrent layers RNN, GRU and LSTM: forward, reverse
// and bidirectional, both layouts, sequence_lens, initial states,
// peepholes, clip and every activation function ONNX names, in float64.
func rnnOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "RNN", Since: 7, New: newRecurrent("RNN")},
		{Domain: DomainONNX, Type: "GRU", Since: 7, New: newRecurrent("GRU")},
		{Domain: DomainONNX, Type: "LSTM", Since: 7, New: newRecurrent("LSTM")},
	}
}

// rnnActivation returns the named activation with its alpha and beta
// (those of the attribute lists, or ONNX's defaults).
func rnnActivation(name string, alpha, beta float64, hasA, hasB bool) (func(float64) float64, bool) {
	def := func(a, b float64) (float64, float64) {
		if !hasA {
			alpha = a
		}
		if !hasB {
			beta = b
		}
		return alpha, beta
	}
	switch strings.ToLower(name) {
	case "relu":
		return func(x float64) float64 { return max(x, 0) }, true
	case "tanh":
		return math.Tanh, true
	case "sigmoid":
		return func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }, true
	case "affine":
		a, b := def(1, 0)
		return func(x float64) float64 { return a*x + b }, true
	case "leakyrelu":
		a, _ := def(0.01, 0)
		return func(x float64) float64 {
			if x < 0 {
				return a * x
			}
			return x
		}, true
	case "thresholdedrelu":
		a, _ := def(1, 0)
		return func(x float64) float64 {
			if x > a {
				return x
			}
			return 0
		}, true
	case "scaledtanh":
		a, b := def(1, 1)
		return func(x float64) float64 { return a * math.Tanh(b*x) }, true
	case "hardsigmoid":
		a, b := def(0.2, 0.5)
		return func(x float64) float64 { return max(0, min(1, a*x+b)) }, true
	case "elu":
		a, _ := def(1, 0)
		return func(x float64) float64 {
			if x < 0 {
				return a * (math.Exp(x) - 1)
			}
			return x
		}, true
	case "softsign":
		return func(x float64) float64 { return x / (1 + math.Abs(x)) }, true
	case "softplus":
		return func(x float64) float64 { return math.Log1p(math.Exp(x)) }, true
	}
	return nil, false
}

func newRecurrent(kind string) func(n *Node) (Kernel, error) {
	return func(n *Node) (Kernel, error) {
		hidden := int(n.Attrs.Int("hidden_size", 0))
		dir := n.Attrs.String("direction", "forward")
		layout := n.Attrs.Int("layout", 0)
		clip, hasClip := float64(n.Attrs.Float("clip", 0)), n.Attrs.Has("clip")
		lbr := n.Attrs.Int("linear_before_reset", 0) != 0
		inputForget := n.Attrs.Int("input_forget", 0) != 0
		names := n.Attrs.Strings("activations")
		alphas, betas := n.Attrs.Floats("activation_alpha"), n.Attrs.Floats("activation_beta")
		if err := n.Attrs.Err(); err != nil {
			return nil, err
		}
		dirs := 1
		switch dir {
		case "forward", "reverse":
		case "bidirectional":
			dirs = 2
		default:
			return nil, attrError("%s direction %q", kind, dir)
		}
		perDir := map[string]int{"RNN": 1, "GRU": 2, "LSTM": 3}[kind]
		gates := map[string]int{"RNN": 1, "GRU": 3, "LSTM": 4}[kind]
		defaults := map[string][]string{"RNN": {"Tanh"}, "GRU": {"Sigmoid", "Tanh"}, "LSTM": {"Sigmoid", "Tanh", "Tanh"}}[kind]
		if names == nil {
			for range dirs {
				names = append(names, defaults...)
			}
		}
		if len(names) != perDir*dirs {
			return nil, attrError("%s needs %d activations, got %v", kind, perDir*dirs, names)
		}
		acts := make([]func(float64) float64, len(names))
		ai, bi := 0, 0
		for i, name := range names {
			var a, b float64
			hasA, hasB := false, false
			switch strings.ToLower(name) {
			case "affine", "scaledtanh", "hardsigmoid":
				if ai < len(alphas) {
					a, hasA = float64(alphas[ai]), true
					ai++
				}
				if bi < len(betas) {
					b, hasB = float64(betas[bi]), true
					bi++
				}
			case "leakyrelu", "thresholdedrelu", "elu":
				if ai < len(alphas) {
					a, hasA = float64(alphas[ai]), true
					ai++
				}
			}
			f, ok := rnnActivation(name, a, b, hasA, hasB)
			if !ok {
				return nil, unsupported("%s activation %q", kind, name)
			}
			acts[i] = f
		}
		cl := func(x float64) float64 {
			if hasClip {
				return min(max(x, -clip), clip)
			}
			return x
		}
		return func(tmp *Scratch, in, out []*Value) error {
			for i := range 3 {
				if err := checkType(kind, in[i], floatTypes...); err != nil {
					return err
				}
			}
			x := &in[0].Tensor
			if len(x.Shape) != 3 {
				return badInput("%s input %v", kind, x.Shape)
			}
			S, B, I := int(x.Shape[0]), int(x.Shape[1]), int(x.Shape[2])
			if layout != 0 {
				S, B = B, S
			}
			H := hidden
			if H <= 0 {
				H = int(in[2].Tensor.Shape[2])
			}
			G := gates
			if in[1].Len() != dirs*G*H*I || in[2].Len() != dirs*G*H*H {
				return badInput("%s weights %v, %v for hidden size %d", kind, in[1].Tensor.Shape, in[2].Tensor.Shape, H)
			}
			nx := x.Len()
			ny := S * dirs * B * H
			sz := nx + dirs*G*H*I + dirs*G*H*H + dirs*2*G*H + 2*dirs*B*H + 3*dirs*H + 2*ny + 5*dirs*B*H + G*H
			buf := tmp.Float64s(sz)
			take := func(n int) []float64 {
				s := buf[:n]
				buf = buf[n:]
				return s
			}
			xs := floatsOf(x, take(nx))
			W := floatsOf(&in[1].Tensor, take(dirs*G*H*I))
			R := floatsOf(&in[2].Tensor, take(dirs*G*H*H))
			Bias := take(dirs * 2 * G * H)
			clear(Bias)
			if v := Arg(in, 3); v.Kind == KindTensor {
				if v.Len() != len(Bias) {
					return badInput("%s bias %v", kind, v.Tensor.Shape)
				}
				floatsOf(&v.Tensor, Bias)
			}
			h0, c0 := take(dirs*B*H), take(dirs*B*H)
			clear(h0)
			clear(c0)
			if v := Arg(in, 5); v.Kind == KindTensor {
				if v.Len() != len(h0) {
					return badInput("%s initial_h %v", kind, v.Tensor.Shape)
				}
				if layout != 0 {
					transposeHead(h0, floatsOf(&v.Tensor, take(len(h0))), B, dirs, H)
				} else {
					floatsOf(&v.Tensor, h0)
				}
			}
			P := take(3 * dirs * H)
			clear(P)
			if kind == "LSTM" {
				if v := Arg(in, 6); v.Kind == KindTensor {
					if v.Len() != len(c0) {
						return badInput("LSTM initial_c %v", v.Tensor.Shape)
					}
					if layout != 0 {
						transposeHead(c0, floatsOf(&v.Tensor, take(len(c0))), B, dirs, H)
					} else {
						floatsOf(&v.Tensor, c0)
					}
				}
				if v := Arg(in, 7); v.Kind == KindTensor {
					if v.Len() != len(P) {
						return badInput("LSTM P %v", v.Tensor.Shape)
					}
					floatsOf(&v.Tensor, P)
				}
			}
			var lens []int64
			if v := Arg(in, 4); v.Kind == KindTensor {
				var err error
				if lens, err = intsOf(v, tmp.Int64s(B)[:0]); err != nil {
					return err
				}
			}
			Y := take(ny) // [S][dirs][B][H]
			clear(Y)
			hs, cs := take(dirs*B*H), take(dirs*B*H)
			copy(hs, h0)
			copy(cs, c0)
			g := take(G * H)
			xAt := func(t, b int) []float64 {
				if layout != 0 {
					return xs[(b*S+t)*I : (b*S+t+1)*I]
				}
				return xs[(t*B+b)*I : (t*B+b+1)*I]
			}
			for d := range dirs {
				reverse := dir == "reverse" || d == 1
				Wd, Rd := W[d*G*H*I:(d+1)*G*H*I], R[d*G*H*H:(d+1)*G*H*H]
				Wb, Rb := Bias[d*2*G*H:d*2*G*H+G*H], Bias[d*2*G*H+G*H:(d+1)*2*G*H]
				act := acts[d*perDir : (d+1)*perDir]
				for b := range B {
					L := S
					if lens != nil {
						L = min(int(lens[b]), S)
					}
					h := hs[(d*B+b)*H : (d*B+b+1)*H]
					c := cs[(d*B+b)*H : (d*B+b+1)*H]
					for step := range L {
						t := step
						if reverse {
							t = L - 1 - step
						}
						xt := xAt(t, b)
						// g = W x + Wb, and R h + Rb added per gate below.
						for k := range G * H {
							s := Wb[k]
							for j, v := range xt {
								s += Wd[k*I+j] * v
							}
							g[k] = s
						}
						rh := func(k int, hv []float64) float64 {
							s := Rb[k]
							for j, v := range hv {
								s += Rd[k*H+j] * v
							}
							return s
						}
						switch kind {
						case "RNN":
							for k := range H {
								g[k] = act[0](cl(g[k] + rh(k, h)))
							}
							copy(h, g[:H])
						case "GRU":
							// Gates z, r, h.
							var zr [2][]float64
							zr[0], zr[1] = g[:H], g[H:2*H]
							for k := range H {
								zr[0][k] = act[0](cl(g[k] + rh(k, h)))
								zr[1][k] = act[0](cl(g[H+k] + rh(H+k, h)))
							}
							hh := g[2*H:]
							for k := range H {
								var v float64
								if lbr {
									v = g[2*H+k] + zr[1][k]*rh(2*H+k, h)
								} else {
									s := Rb[2*H+k]
									for j := range H {
										s += Rd[(2*H+k)*H+j] * zr[1][j] * h[j]
									}
									v = g[2*H+k] + s
								}
								hh[k] = act[1](cl(v))
							}
							for k := range H {
								h[k] = (1-zr[0][k])*hh[k] + zr[0][k]*h[k]
							}
						case "LSTM":
							// Gates i, o, f, c; peepholes i, o, f.
							pd := P[d*3*H : (d+1)*3*H]
							for k := range 4 * H {
								g[k] += rh(k, h)
							}
							for k := range H {
								it := act[0](cl(g[k] + pd[k]*c[k]))
								ft := act[0](cl(g[2*H+k] + pd[2*H+k]*c[k]))
								if inputForget {
									ft = 1 - it
								}
								ct := act[1](cl(g[3*H+k]))
								c[k] = ft*c[k] + it*ct
								ot := act[0](cl(g[H+k] + pd[H+k]*c[k]))
								g[H+k] = ot
							}
							for k := range H {
								h[k] = g[H+k] * act[2](c[k])
							}
						}
						copy(Y[((t*dirs+d)*B+b)*H:((t*dirs+d)*B+b+1)*H], h)
					}
				}
			}
			dt := x.DType
			if o := Arg(out, 0); o != &absent {
				shape := tmp.Shape(4)
				if layout != 0 {
					shape[0], shape[1], shape[2], shape[3] = int64(B), int64(S), int64(dirs), int64(H)
					tr := take(ny)
					for t := range S {
						for d := range dirs {
							for b := range B {
								copy(tr[((b*S+t)*dirs+d)*H:][:H], Y[((t*dirs+d)*B+b)*H:][:H])
							}
						}
					}
					Y = tr
				} else {
					shape[0], shape[1], shape[2], shape[3] = int64(S), int64(dirs), int64(B), int64(H)
				}
				if err := o.Resize(dt, shape); err != nil {
					return err
				}
				storeFloats(&o.Tensor, Y)
			}
			for i, st := range [][]float64{hs, cs} {
				o := Arg(out, 1+i)
				if o == &absent || (i == 1 && kind != "LSTM") {
					continue
				}
				shape := tmp.Shape(3)
				shape[0], shape[1], shape[2] = int64(dirs), int64(B), int64(H)
				if layout != 0 {
					shape[0], shape[1] = int64(B), int64(dirs)
					tr := take(len(st))
					transposeHead(tr, st, dirs, B, H)
					st = tr
				}
				if err := o.Resize(dt, shape); err != nil {
					return err
				}
				storeFloats(&o.Tensor, st)
			}
			return nil
		}, nil
	}
}

// transposeHead writes src, [a][b][h], into dst as [b][a][h].
func transposeHead(dst, src []float64, a, b, h int) {
	for i := range a {
		for j := range b {
			copy(dst[(j*a+i)*h:][:h], src[(i*b+j)*h:][:h])
		}
	}
}
