package onnx

import (
	"math"
)

// dftOps is DFT (opsets 17 and 20): a direct discrete Fourier transform
// along one axis of a real ([..., 1]) or complex ([..., 2]) signal,
// forward or inverse, full or one-sided (rfft, and irfft for an inverse of
// a one-sided spectrum), with dft_length padding or truncating. It is
// O(n^2) per line, in float64.
func dftOps() []Op {
	return []Op{{Domain: DomainONNX, Type: "DFT", Since: 17, New: newDFT}}
}

func newDFT(n *Node) (Kernel, error) {
	attrAxis := n.Attrs.Int("axis", 1)
	inverse := n.Attrs.Int("inverse", 0) != 0
	onesided := n.Attrs.Int("onesided", 0) != 0
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("DFT", in[0], floatTypes...); err != nil {
			return err
		}
		x := &in[0].Tensor
		r := len(x.Shape)
		if r < 2 || (x.Shape[r-1] != 1 && x.Shape[r-1] != 2) {
			return badInput("DFT of %v", x.Shape)
		}
		axis := attrAxis
		if n.Version >= 20 {
			axis = -2
			if v := Arg(in, 2); v.Kind == KindTensor {
				var err error
				if axis, err = scalarInt("DFT axis", v); err != nil {
					return err
				}
			}
		}
		ax, err := normAxis(axis, r)
		if err != nil || ax == r-1 {
			return badInput("DFT axis %d for %v", axis, x.Shape)
		}
		L := int(x.Shape[ax])
		cplx := int(x.Shape[r-1])
		N := L
		if inverse && onesided {
			N = 2 * (L - 1)
		}
		if v := Arg(in, 1); v.Kind == KindTensor {
			d, err := scalarInt("DFT dft_length", v)
			if err != nil {
				return err
			}
			N = int(d)
		}
		if N < 1 {
			return badInput("DFT length %d", N)
		}
		outLen, outC := N, 2
		switch {
		case inverse && onesided:
			outC = 1
		case onesided:
			outLen = N/2 + 1
		}
		outer := numel(x.Shape[:ax])
		inner := numel(x.Shape[ax+1 : r-1])
		nx := numel(x.Shape)
		ny := outer * outLen * inner * outC
		buf := tmp.Float64s(nx + ny + 2*N)
		xs, ys := floatsOf(x, buf[:nx]), buf[nx:nx+ny]
		re, im := buf[nx+ny:nx+ny+N], buf[nx+ny+N:]
		sign := -1.0
		if inverse {
			sign = 1
		}
		for o := range outer {
			for i := range inner {
				// Load the line, zero-padded or truncated to N.
				for k := range N {
					re[k], im[k] = 0, 0
					src := k
					if inverse && onesided && k >= L {
						// Hermitian symmetry: X[N-k] = conj(X[k]).
						src = N - k
						if src < 0 || src >= L {
							continue
						}
						at := ((o*L+src)*inner + i) * cplx
						re[k] = xs[at]
						if cplx == 2 {
							im[k] = -xs[at+1]
						}
						continue
					}
					if src >= L {
						continue
					}
					at := ((o*L+src)*inner + i) * cplx
					re[k] = xs[at]
					if cplx == 2 {
						im[k] = xs[at+1]
					}
				}
				for k := range outLen {
					sr, si := 0.0, 0.0
					for t := range N {
						ang := sign * 2 * math.Pi * float64((k*t)%N) / float64(N)
						c, s := math.Cos(ang), math.Sin(ang)
						sr += re[t]*c - im[t]*s
						si += re[t]*s + im[t]*c
					}
					if inverse {
						sr /= float64(N)
						si /= float64(N)
					}
					at := ((o*outLen+k)*inner + i) * outC
					ys[at] = sr
					if outC == 2 {
						ys[at+1] = si
					}
				}
			}
		}
		shape := tmp.Shape(r)
		copy(shape, x.Shape)
		shape[ax] = int64(outLen)
		shape[r-1] = int64(outC)
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys)
		return nil
	}, nil
}
