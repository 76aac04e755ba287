package onnx

// MaxRank bounds the rank of tensors the broadcasting helpers handle (they
// keep indices in fixed arrays, so that they allocate nothing).
const MaxRank = 16

// BroadcastShape writes into dst (which must have room for
// max(len(a), len(b)) dimensions, e.g. from Scratch.Shape) the numpy
// broadcast of shapes a and b, and returns it. It returns an error wrapping
// ErrInvalidInput when they do not broadcast.
func BroadcastShape(dst, a, b []int64) ([]int64, error) {
	r := max(len(a), len(b))
	if r > MaxRank {
		return nil, badInput("rank %d above %d", r, MaxRank)
	}
	dst = dst[:r]
	for i := range r {
		da, db := int64(1), int64(1)
		if j := i - (r - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (r - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db, db == 1:
			dst[i] = da
		case da == 1:
			dst[i] = db
		default:
			return nil, badInput("shapes %v and %v do not broadcast", a, b)
		}
	}
	return dst, nil
}

// ForEachRun walks an elementwise binary operation whose output has shape
// out (the broadcast of a and b, from BroadcastShape) in runs: for each run
// it calls fn(o, ia, sa, ib, sb, n), meaning out[o+j] = f(a[ia+j*sa],
// b[ib+j*sb]) for j in [0, n), with sa and sb each 0 or 1. Runs are as long
// as the innermost dimensions allow (one run when a and b have the same
// shape). fn should be a func literal: it does not escape, so it does not
// allocate.
func ForEachRun(out, a, b []int64, fn func(o, ia, sa, ib, sb, n int)) {
	r := len(out)
	total := 1
	for _, d := range out {
		total *= int(d)
	}
	if total == 0 {
		return
	}
	if equalShape(a, b) {
		fn(0, 0, 1, 0, 1, total)
		return
	}
	// Strides of a and b in out's dimensions, 0 where broadcast.
	var sa, sb, dims [MaxRank]int
	accA, accB := 1, 1
	for i := r - 1; i >= 0; i-- {
		dims[i] = int(out[i])
		if j := i - (r - len(a)); j >= 0 && a[j] != 1 {
			sa[i] = accA
			accA *= int(a[j])
		}
		if j := i - (r - len(b)); j >= 0 && b[j] != 1 {
			sb[i] = accB
			accB *= int(b[j])
		}
	}
	// Merge the innermost dimensions while both operands keep the same
	// kind of stride (contiguous or broadcast), to lengthen runs.
	inner := dims[r-1]
	k := r - 1
	stA, stB := min(sa[r-1], 1), min(sb[r-1], 1)
	for k > 0 {
		p := k - 1
		okA := (stA == 0 && sa[p] == 0) || (stA == 1 && sa[p] == inner)
		okB := (stB == 0 && sb[p] == 0) || (stB == 1 && sb[p] == inner)
		if !okA || !okB {
			break
		}
		inner *= dims[p]
		k = p
	}
	// Iterate over the outer dimensions [0, k).
	var idx [MaxRank]int
	o, ia, ib := 0, 0, 0
	for {
		fn(o, ia, stA, ib, stB, inner)
		o += inner
		d := k - 1
		for ; d >= 0; d-- {
			idx[d]++
			ia += sa[d]
			ib += sb[d]
			if idx[d] < dims[d] {
				break
			}
			ia -= sa[d] * dims[d]
			ib -= sb[d] * dims[d]
			idx[d] = 0
		}
		if d < 0 {
			return
		}
	}
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
