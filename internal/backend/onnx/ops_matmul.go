package onnx

import "github.com/shoal-ml/shoal/internal/tensor"

// newMatMul implements MatMul: numpy matmul with batch broadcasting.
func newMatMul(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		a, b := in[0], in[1]
		if err := checkType("MatMul A", a, tensor.FP32, tensor.FP64, tensor.Int32, tensor.Int64, tensor.Uint32, tensor.Uint64, tensor.FP16); err != nil {
			return err
		}
		if b.Kind != KindTensor || b.Tensor.DType != a.Tensor.DType {
			return badInput("MatMul B: want %v, got %v", a.Tensor.DType, b)
		}
		sa, sb := a.Tensor.Shape, b.Tensor.Shape
		if len(sa) == 0 || len(sb) == 0 {
			return badInput("MatMul of a scalar")
		}
		// Promote 1-D operands to matrices.
		var m, k, k2, nn int64
		aBatch, bBatch := sa[:0], sb[:0]
		if len(sa) == 1 {
			m, k = 1, sa[0]
		} else {
			m, k = sa[len(sa)-2], sa[len(sa)-1]
			aBatch = sa[:len(sa)-2]
		}
		if len(sb) == 1 {
			k2, nn = sb[0], 1
		} else {
			k2, nn = sb[len(sb)-2], sb[len(sb)-1]
			bBatch = sb[:len(sb)-2]
		}
		if k != k2 {
			return badInput("MatMul of %v and %v", sa, sb)
		}
		rb := max(len(aBatch), len(bBatch))
		shape := tmp.Shape(rb + 2)
		batch, err := BroadcastShape(shape, aBatch, bBatch)
		if err != nil {
			return err
		}
		shape = shape[:rb]
		if len(sa) > 1 {
			shape = append(shape, m)
		}
		if len(sb) > 1 {
			shape = append(shape, nn)
		}
		if err := out[0].Resize(a.Tensor.DType, shape); err != nil {
			return err
		}
		o := out[0]
		M, N, K := int(m), int(nn), int(k)
		// FP16 is computed in float32: widen both operands and the output
		// into scratch, then round the result back.
		var a16, b16, o16 []float32
		if a.Tensor.DType == tensor.FP16 {
			na, nb, no := a.Len(), b.Len(), o.Len()
			buf := tmp.Float32s(na + nb + no)
			a16, b16, o16 = buf[:na], buf[na:na+nb], buf[na+nb:]
			for i, h := range a.Tensor.Data.([]uint16) {
				a16[i] = tensor.Float16ToFloat32(h)
			}
			for i, h := range b.Tensor.Data.([]uint16) {
				b16[i] = tensor.Float16ToFloat32(h)
			}
		}
		ForEachRun(batch, aBatch, bBatch, func(io, ia, ka, ib, kb, cnt int) {
			for j := range cnt {
				oi, ai, bi := io+j, ia+j*ka, ib+j*kb
				switch a.Tensor.DType {
				case tensor.FP32:
					sgemm(false, false, M, N, K, 1, a.Float32s()[ai*M*K:], K, b.Float32s()[bi*K*N:], N, 0, o.Float32s()[oi*M*N:], N)
				case tensor.FP16:
					sgemm(false, false, M, N, K, 1, a16[ai*M*K:], K, b16[bi*K*N:], N, 0, o16[oi*M*N:], N)
				case tensor.FP64:
					gemmGeneric(M, N, K, a.Float64s()[ai*M*K:], b.Float64s()[bi*K*N:], o.Float64s()[oi*M*N:])
				case tensor.Int32:
					gemmGeneric(M, N, K, a.Int32s()[ai*M*K:], b.Int32s()[bi*K*N:], o.Int32s()[oi*M*N:])
				case tensor.Int64:
					gemmGeneric(M, N, K, a.Int64s()[ai*M*K:], b.Int64s()[bi*K*N:], o.Int64s()[oi*M*N:])
				case tensor.Uint32:
					gemmGeneric(M, N, K, a.Tensor.Data.([]uint32)[ai*M*K:], b.Tensor.Data.([]uint32)[bi*K*N:], o.Tensor.Data.([]uint32)[oi*M*N:])
				case tensor.Uint64:
					gemmGeneric(M, N, K, a.Tensor.Data.([]uint64)[ai*M*K:], b.Tensor.Data.([]uint64)[bi*K*N:], o.Tensor.Data.([]uint64)[oi*M*N:])
				}
			}
		})
		for i, f := range o16 {
			o.Tensor.Data.([]uint16)[i] = tensor.Float32ToFloat16(f)
		}
		return nil
	}, nil
}
