package batch

import (
	"errors"
	"fmt"
	"slices"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// ErrShape is wrapped by Concat and Split when tensors cannot be joined or
// cut on dimension 0.
var ErrShape = errors.New("batch: tensors do not fit on dimension 0")

// Concat joins ts on dimension 0 into one tensor named name: they must have
// the same DType, a rank of at least 1 and the same dimensions after the
// first. It copies the data; the result shares nothing with ts.
func Concat(name string, ts []*tensor.Tensor) (*tensor.Tensor, error) {
	if len(ts) == 0 {
		return nil, fmt.Errorf("%w: nothing to concatenate", ErrShape)
	}
	first := ts[0]
	if len(first.Shape) == 0 {
		return nil, fmt.Errorf("%w: %q is a scalar", ErrShape, first.Name)
	}
	var rows int64
	for _, t := range ts {
		if t.DType != first.DType || len(t.Shape) != len(first.Shape) || !slices.Equal(t.Shape[1:], first.Shape[1:]) {
			return nil, fmt.Errorf("%w: %s%v and %s%v", ErrShape, first.DType, first.Shape, t.DType, t.Shape)
		}
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrShape, err)
		}
		rows += t.Shape[0]
	}
	shape := slices.Clone(first.Shape)
	shape[0] = rows
	n, err := tensor.NumElements(shape)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrShape, err)
	}
	var data any
	switch first.Data.(type) {
	case []bool:
		data = concatData[bool](ts, n)
	case []uint8:
		data = concatData[uint8](ts, n)
	case []uint16:
		data = concatData[uint16](ts, n)
	case []uint32:
		data = concatData[uint32](ts, n)
	case []uint64:
		data = concatData[uint64](ts, n)
	case []int8:
		data = concatData[int8](ts, n)
	case []int16:
		data = concatData[int16](ts, n)
	case []int32:
		data = concatData[int32](ts, n)
	case []int64:
		data = concatData[int64](ts, n)
	case []float32:
		data = concatData[float32](ts, n)
	case []float64:
		data = concatData[float64](ts, n)
	case [][]byte:
		data = concatData[[]byte](ts, n)
	default:
		return nil, fmt.Errorf("%w: %s data held as %T", ErrShape, first.DType, first.Data)
	}
	return &tensor.Tensor{Name: name, DType: first.DType, Shape: shape, Data: data}, nil
}

func concatData[T any](ts []*tensor.Tensor, n int) []T {
	out := make([]T, 0, n)
	for _, t := range ts {
		out = append(out, t.Data.([]T)...)
	}
	return out
}

// Split cuts t on dimension 0 into len(rows) tensors of rows[i] rows each;
// the rows must add up to t's first dimension. The parts are views of t's
// data (capacity-limited, so appending to one cannot touch the next), not
// copies.
func Split(t *tensor.Tensor, rows []int) ([]*tensor.Tensor, error) {
	if len(t.Shape) == 0 {
		return nil, fmt.Errorf("%w: %q is a scalar", ErrShape, t.Name)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrShape, err)
	}
	total := 0
	for _, r := range rows {
		if r < 0 {
			return nil, fmt.Errorf("%w: negative row count %d", ErrShape, r)
		}
		total += r
	}
	if int64(total) != t.Shape[0] {
		return nil, fmt.Errorf("%w: %q has %d rows, want %d", ErrShape, t.Name, t.Shape[0], total)
	}
	per := 1
	for _, d := range t.Shape[1:] {
		per *= int(d)
	}
	switch t.Data.(type) {
	case []bool:
		return splitData[bool](t, rows, per), nil
	case []uint8:
		return splitData[uint8](t, rows, per), nil
	case []uint16:
		return splitData[uint16](t, rows, per), nil
	case []uint32:
		return splitData[uint32](t, rows, per), nil
	case []uint64:
		return splitData[uint64](t, rows, per), nil
	case []int8:
		return splitData[int8](t, rows, per), nil
	case []int16:
		return splitData[int16](t, rows, per), nil
	case []int32:
		return splitData[int32](t, rows, per), nil
	case []int64:
		return splitData[int64](t, rows, per), nil
	case []float32:
		return splitData[float32](t, rows, per), nil
	case []float64:
		return splitData[float64](t, rows, per), nil
	case [][]byte:
		return splitData[[]byte](t, rows, per), nil
	}
	return nil, fmt.Errorf("%w: %s data held as %T", ErrShape, t.DType, t.Data)
}

func splitData[T any](t *tensor.Tensor, rows []int, per int) []*tensor.Tensor {
	d := t.Data.([]T)
	out := make([]*tensor.Tensor, len(rows))
	off := 0
	for i, r := range rows {
		shape := slices.Clone(t.Shape)
		shape[0] = int64(r)
		end := off + r*per
		out[i] = &tensor.Tensor{Name: t.Name, DType: t.DType, Shape: shape, Data: d[off:end:end]}
		off = end
	}
	return out
}
