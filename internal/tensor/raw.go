package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// RawSize returns the size in bytes of t in the raw layout of the binary
// tensor data extension: little-endian elements, and for Bytes each element
// as a 4-byte little-endian length followed by its bytes.
func (t *Tensor) RawSize() int {
	if d, ok := t.Data.([][]byte); ok {
		n := 0
		for _, b := range d {
			n += 4 + len(b)
		}
		return n
	}
	return max(t.Len(), 0) * t.DType.Size()
}

// AppendRaw appends the raw layout of t to dst and returns the extended
// buffer. t must be valid (see Validate).
func (t *Tensor) AppendRaw(dst []byte) []byte {
	switch d := t.Data.(type) {
	case [][]byte:
		for _, b := range d {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
			dst = append(dst, b...)
		}
		return dst
	case []bool:
		for _, v := range d {
			if v {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		}
		return dst
	}
	if littleEndian {
		return append(dst, rawView(t)...)
	}
	return appendSlow(dst, t)
}

// rawView returns the memory of a fixed-size tensor's Data as bytes, without
// copying. Only valid on little-endian hosts.
func rawView(t *Tensor) []byte {
	var p unsafe.Pointer
	n := max(t.Len(), 0)
	if n == 0 {
		return nil
	}
	switch d := t.Data.(type) {
	case []uint8:
		return d
	case []int8:
		p = unsafe.Pointer(&d[0])
	case []uint16:
		p = unsafe.Pointer(&d[0])
	case []int16:
		p = unsafe.Pointer(&d[0])
	case []uint32:
		p = unsafe.Pointer(&d[0])
	case []int32:
		p = unsafe.Pointer(&d[0])
	case []uint64:
		p = unsafe.Pointer(&d[0])
	case []int64:
		p = unsafe.Pointer(&d[0])
	case []float32:
		p = unsafe.Pointer(&d[0])
	case []float64:
		p = unsafe.Pointer(&d[0])
	default:
		return nil
	}
	return unsafe.Slice((*byte)(p), n*t.DType.Size())
}

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

func appendSlow(dst []byte, t *Tensor) []byte {
	le := binary.LittleEndian
	switch d := t.Data.(type) {
	case []uint8:
		return append(dst, d...)
	case []int8:
		for _, v := range d {
			dst = append(dst, byte(v))
		}
	case []uint16:
		for _, v := range d {
			dst = le.AppendUint16(dst, v)
		}
	case []int16:
		for _, v := range d {
			dst = le.AppendUint16(dst, uint16(v))
		}
	case []uint32:
		for _, v := range d {
			dst = le.AppendUint32(dst, v)
		}
	case []int32:
		for _, v := range d {
			dst = le.AppendUint32(dst, uint32(v))
		}
	case []uint64:
		for _, v := range d {
			dst = le.AppendUint64(dst, v)
		}
	case []int64:
		for _, v := range d {
			dst = le.AppendUint64(dst, uint64(v))
		}
	case []float32:
		for _, v := range d {
			dst = le.AppendUint32(dst, math.Float32bits(v))
		}
	case []float64:
		for _, v := range d {
			dst = le.AppendUint64(dst, math.Float64bits(v))
		}
	}
	return dst
}

// FromRaw decodes a tensor from its raw layout (see RawSize). The result does
// not alias raw. It returns an error wrapping ErrData when raw does not hold
// exactly the elements shape requires.
func FromRaw(name string, dt DType, shape []int64, raw []byte) (*Tensor, error) {
	n, err := NumElements(shape)
	if err != nil {
		return nil, err
	}
	if dt == Bytes {
		return bytesFromRaw(name, shape, n, raw)
	}
	size := dt.Size()
	if size == 0 {
		return nil, fmt.Errorf("%w %v", ErrDType, dt)
	}
	if len(raw) != n*size {
		return nil, fmt.Errorf("%w: %s %v needs %d bytes, got %d", ErrData, dt, shape, n*size, len(raw))
	}
	t, err := New(name, dt, shape)
	if err != nil {
		return nil, err
	}
	if d, ok := t.Data.([]bool); ok {
		for i, b := range raw {
			d[i] = b != 0
		}
		return t, nil
	}
	if littleEndian {
		copy(rawView(t), raw)
		return t, nil
	}
	fillSlow(t, raw)
	return t, nil
}

func fillSlow(t *Tensor, raw []byte) {
	le := binary.LittleEndian
	switch d := t.Data.(type) {
	case []uint8:
		copy(d, raw)
	case []int8:
		for i := range d {
			d[i] = int8(raw[i])
		}
	case []uint16:
		for i := range d {
			d[i] = le.Uint16(raw[2*i:])
		}
	case []int16:
		for i := range d {
			d[i] = int16(le.Uint16(raw[2*i:]))
		}
	case []uint32:
		for i := range d {
			d[i] = le.Uint32(raw[4*i:])
		}
	case []int32:
		for i := range d {
			d[i] = int32(le.Uint32(raw[4*i:]))
		}
	case []uint64:
		for i := range d {
			d[i] = le.Uint64(raw[8*i:])
		}
	case []int64:
		for i := range d {
			d[i] = int64(le.Uint64(raw[8*i:]))
		}
	case []float32:
		for i := range d {
			d[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case []float64:
		for i := range d {
			d[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
	}
}

func bytesFromRaw(name string, shape []int64, n int, raw []byte) (*Tensor, error) {
	if n > len(raw)/4 {
		return nil, fmt.Errorf("%w: BYTES %v needs at least %d bytes, got %d", ErrData, shape, 4*n, len(raw))
	}
	out := make([][]byte, n)
	for i := range out {
		if len(raw) < 4 {
			return nil, fmt.Errorf("%w: BYTES element %d: truncated length", ErrData, i)
		}
		l := binary.LittleEndian.Uint32(raw)
		raw = raw[4:]
		if uint64(l) > uint64(len(raw)) {
			return nil, fmt.Errorf("%w: BYTES element %d: length %d exceeds remaining %d bytes", ErrData, i, l, len(raw))
		}
		out[i] = append([]byte(nil), raw[:l]...)
		raw = raw[l:]
	}
	if len(raw) != 0 {
		return nil, fmt.Errorf("%w: %d bytes left after %d BYTES elements", ErrData, len(raw), n)
	}
	return &Tensor{Name: name, DType: Bytes, Shape: append([]int64(nil), shape...), Data: out}, nil
}
