package onnx

import (
	"fmt"
	"math"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// stftOps are the spectrogram operators of opset 17 not in
// ops_math_dft.go: STFT and MelWeightMatrix.
func stftOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "STFT", Since: 17, New: newSTFT},
		{Domain: DomainONNX, Type: "MelWeightMatrix", Since: 17, New: newMelWeightMatrix},
	}
}

// maxSTFTWork bounds frames x bins x frame_length, the multiply-adds of one
// STFT (a direct DFT per frame).
const maxSTFTWork = 1 << 34

// newSTFT computes the short-time Fourier transform of signal [B, L, 1]
// (real) or [B, L, 2] (complex): frame f is samples f*frame_step ..
// f*frame_step+n-1 times the window, transformed by a direct DFT of
// length n (the window's length or frame_length). Output [B, frames,
// bins, 2] with bins n/2+1 when onesided (real signals only), else n.
// Computed in float64.
func newSTFT(n *Node) (Kernel, error) {
	onesided := n.Attrs.Int("onesided", 1) != 0
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		sig, stepV, win, lenV := in[0], Arg(in, 1), Arg(in, 2), Arg(in, 3)
		if err := checkType("STFT signal", sig, floatTypes...); err != nil {
			return err
		}
		sh := sig.Tensor.Shape
		if len(sh) != 3 || (sh[2] != 1 && sh[2] != 2) {
			return badInput("STFT: signal %v, want [B, L, 1] or [B, L, 2]", sh)
		}
		B, L, C := int(sh[0]), int(sh[1]), int(sh[2])
		step, err := scalarInt("STFT frame_step", stepV)
		if err != nil {
			return err
		}
		N := -1
		if win.Kind != KindNone {
			if err := checkType("STFT window", win, floatTypes...); err != nil {
				return err
			}
			if len(win.Tensor.Shape) != 1 {
				return badInput("STFT: window %v, want 1-D", win)
			}
			N = int(win.Tensor.Shape[0])
		}
		if lenV.Kind != KindNone {
			fl, err := scalarInt("STFT frame_length", lenV)
			if err != nil {
				return err
			}
			if N >= 0 && int64(N) != fl {
				return badInput("STFT: frame_length %d, window of %d", fl, N)
			}
			N = int(fl)
		}
		if N < 1 || N > L || step < 1 {
			return badInput("STFT: frame length %d and step %d for a signal of %d", N, step, L)
		}
		if onesided && C == 2 {
			return badInput("STFT: onesided needs a real signal")
		}
		frames := (L-N)/int(step) + 1
		bins := N
		if onesided {
			bins = N/2 + 1
		}
		if float64(B)*float64(frames)*float64(bins)*float64(N) > maxSTFTWork {
			return badInput("STFT: %d frames of %d too much work", frames, N)
		}
		nx := sig.Len()
		buf := tmp.Float64s(nx + N + 2*N + B*frames*bins*2)
		xs, ws := floatsOf(&sig.Tensor, buf[:nx]), buf[nx:nx+N]
		cosT, sinT, ys := buf[nx+N:nx+2*N], buf[nx+2*N:nx+3*N], buf[nx+3*N:]
		if win.Kind != KindNone {
			floatsOf(&win.Tensor, ws)
		} else {
			for i := range ws {
				ws[i] = 1
			}
		}
		for i := range N {
			a := -2 * math.Pi * float64(i) / float64(N)
			cosT[i], sinT[i] = math.Cos(a), math.Sin(a)
		}
		for b := range B {
			for f := range frames {
				start := f * int(step)
				for k := range bins {
					var re, im float64
					for j := range N {
						t := (j * k) % N
						x := xs[((b*L)+start+j)*C] * ws[j]
						re += x * cosT[t]
						im += x * sinT[t]
						if C == 2 {
							xi := xs[((b*L)+start+j)*C+1] * ws[j]
							re -= xi * sinT[t]
							im += xi * cosT[t]
						}
					}
					o := ((b*frames+f)*bins + k) * 2
					ys[o], ys[o+1] = re, im
				}
			}
		}
		os := tmp.Shape(4)
		os[0], os[1], os[2], os[3] = int64(B), int64(frames), int64(bins), 2
		if err := out[0].Resize(sig.Tensor.DType, os); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys)
		return nil
	}, nil
}

// newMelWeightMatrix builds the [dft_length/2+1, num_mel_bins] matrix of
// triangular mel filters as ONNX's reference does: num_mel_bins+2 points
// from the lower edge frequency in steps of (high-low)/(num_mel_bins+2) on
// the mel scale (2595 log10(1 + f/700)), so the last point stays below the
// upper edge, mapped to DFT bins by floor((dft_length+1) f /
// sample_rate); filter i rises from point i to point i+1 and falls to
// point i+2.
func newMelWeightMatrix(n *Node) (Kernel, error) {
	dtAttr := n.Attrs.Int("output_datatype", onnxFloat)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	dt, err := dtypeOf(int32(dtAttr))
	if err != nil {
		return nil, err
	}
	if dt == tensor.Bytes || dt == tensor.Bool {
		return nil, fmt.Errorf("%w: MelWeightMatrix output_datatype %d", ErrAttr, dtAttr)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		nMel, err := scalarInt("MelWeightMatrix num_mel_bins", in[0])
		if err != nil {
			return err
		}
		dftLen, err := scalarInt("MelWeightMatrix dft_length", Arg(in, 1))
		if err != nil {
			return err
		}
		rate, err := scalarInt("MelWeightMatrix sample_rate", Arg(in, 2))
		if err != nil {
			return err
		}
		var edges [2]float64
		for i := range edges {
			v := Arg(in, 3+i)
			if err := checkType("MelWeightMatrix edge", v, floatTypes...); err != nil {
				return err
			}
			if v.Len() != 1 {
				return badInput("MelWeightMatrix: edge frequency %v, want a scalar", v)
			}
			floatsOf(&v.Tensor, edges[i:i+1])
		}
		bins := dftLen/2 + 1
		if nMel < 1 || dftLen < 1 || rate < 1 || bins*nMel > 1<<26 {
			return badInput("MelWeightMatrix: %d mel bins, dft_length %d, sample_rate %d", nMel, dftLen, rate)
		}
		M, K := int(nMel), int(bins)
		buf := tmp.Float64s(K*M + M + 2)
		w, pts := buf[:K*M], buf[K*M:]
		clear(w)
		lo := 2595 * math.Log10(1+edges[0]/700)
		hi := 2595 * math.Log10(1+edges[1]/700)
		stepMel := (hi - lo) / float64(M+2) // the reference divides by the point count
		for i := range pts {
			f := 700 * (math.Pow(10, (float64(i)*stepMel+lo)/2595) - 1)
			pts[i] = math.Floor(float64(dftLen+1) * f / float64(rate))
		}
		for i := range M {
			l, c, h := int(pts[i]), int(pts[i+1]), int(pts[i+2])
			if l < 0 || h >= K || l > c || c > h {
				return badInput("MelWeightMatrix: filter %d spans bins %d..%d of %d", i, l, h, K)
			}
			if c == l {
				w[c*M+i] = 1
			} else {
				for j := l; j <= c; j++ {
					w[j*M+i] = float64(j-l) / float64(c-l)
				}
			}
			for j := c; j < h; j++ {
				w[j*M+i] = float64(h-j) / float64(h-c)
			}
		}
		os := tmp.Shape(2)
		os[0], os[1] = int64(K), int64(M)
		if err := out[0].Resize(dt, os); err != nil {
			return err
		}
		for i, v := range w {
			setFloat(out[0], i, v)
		}
		return nil
	}, nil
}
