package onnx

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// ONNX element types (TensorProto.DataType).
const (
	onnxFloat      = 1
	onnxUint8      = 2
	onnxInt8       = 3
	onnxUint16     = 4
	onnxInt16      = 5
	onnxInt32      = 6
	onnxInt64      = 7
	onnxString     = 8
	onnxBool       = 9
	onnxFloat16    = 10
	onnxDouble     = 11
	onnxUint32     = 12
	onnxUint64     = 13
	onnxComplex64  = 14
	onnxComplex128 = 15
	onnxBfloat16   = 16
)

// dtypeOf maps an ONNX element type to a tensor.DType, or returns an error
// wrapping ErrUnsupported (complex, BFLOAT16, the FLOAT8 and 4-bit types).
func dtypeOf(t int32) (tensor.DType, error) {
	switch t {
	case onnxFloat:
		return tensor.FP32, nil
	case onnxUint8:
		return tensor.Uint8, nil
	case onnxInt8:
		return tensor.Int8, nil
	case onnxUint16:
		return tensor.Uint16, nil
	case onnxInt16:
		return tensor.Int16, nil
	case onnxInt32:
		return tensor.Int32, nil
	case onnxInt64:
		return tensor.Int64, nil
	case onnxString:
		return tensor.Bytes, nil
	case onnxBool:
		return tensor.Bool, nil
	case onnxFloat16:
		return tensor.FP16, nil
	case onnxDouble:
		return tensor.FP64, nil
	case onnxUint32:
		return tensor.Uint32, nil
	case onnxUint64:
		return tensor.Uint64, nil
	}
	return tensor.Invalid, fmt.Errorf("%w: element type %s", ErrUnsupported, onnxTypeName(t))
}

// newerTypes names the element types added after ONNX 1.12, whose
// generated enum lacks them.
var newerTypes = map[int32]string{
	17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2", 20: "FLOAT8E5M2FNUZ",
	21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2", 26: "INT2",
}

// onnxTypeName names an ONNX element type.
func onnxTypeName(t int32) string {
	if n, ok := newerTypes[t]; ok {
		return n
	}
	return onnxpb.TensorProto_DataType(t).String()
}

// tensorReader turns TensorProtos into Values, reading external data from
// files inside dir and counting the bytes it allocates against a budget.
type tensorReader struct {
	dir    string // "" when external data is not allowed
	budget int64  // bytes still allowed
}

// errTooLarge is wrapped when tensors exceed the memory budget.
func (r *tensorReader) take(n int64) error {
	if n < 0 || n > r.budget {
		return fmt.Errorf("%w: constants need more than the limit of memory (%d bytes left, %d wanted)", ErrInvalidModel, r.budget, n)
	}
	r.budget -= n
	return nil
}

// value converts tp to a tensor Value.
func (r *tensorReader) value(tp *onnxpb.TensorProto) (*Value, error) {
	dt, err := dtypeOf(tp.GetDataType())
	if err != nil {
		return nil, err
	}
	if tp.GetSegment() != nil {
		return nil, fmt.Errorf("%w: segmented tensor", ErrUnsupported)
	}
	shape := append([]int64{}, tp.GetDims()...)
	n, err := tensor.NumElements(shape)
	if err != nil {
		return nil, fmt.Errorf("%w: tensor %q: %w", ErrInvalidModel, tp.GetName(), err)
	}
	raw := tp.GetRawData()
	if tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
		if dt == tensor.Bytes {
			return nil, fmt.Errorf("%w: external string tensor", ErrInvalidModel)
		}
		if raw, err = r.external(tp, int64(n)*int64(dt.Size())); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", tp.GetName(), err)
		}
	}
	v := &Value{Kind: KindTensor, Tensor: tensor.Tensor{Name: tp.GetName(), DType: dt, Shape: shape}}
	if dt != tensor.Bytes {
		if err := r.take(int64(n) * int64(dt.Size())); err != nil {
			return nil, err
		}
	}
	if raw != nil || tp.RawData != nil {
		if dt == tensor.Bytes {
			return nil, fmt.Errorf("%w: tensor %q: string tensor in raw_data", ErrInvalidModel, tp.GetName())
		}
		if len(raw) != n*dt.Size() {
			return nil, fmt.Errorf("%w: tensor %q: %d bytes of raw data for %d elements of %v", ErrInvalidModel, tp.GetName(), len(raw), n, dt)
		}
		if dt == tensor.Bool {
			b := make([]bool, n)
			for i, c := range raw {
				b[i] = c != 0
			}
			v.Tensor.Data = b
			return v, nil
		}
		d, err := tensor.FromRaw("", dt, shape, raw)
		if err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %w", ErrInvalidModel, tp.GetName(), err)
		}
		v.Tensor.Data = d.Data
		return v, nil
	}
	var got int
	switch dt {
	case tensor.FP32:
		got = len(tp.GetFloatData())
		v.Tensor.Data = append([]float32{}, tp.GetFloatData()...)
	case tensor.FP64:
		got = len(tp.GetDoubleData())
		v.Tensor.Data = append([]float64{}, tp.GetDoubleData()...)
	case tensor.Int64:
		got = len(tp.GetInt64Data())
		v.Tensor.Data = append([]int64{}, tp.GetInt64Data()...)
	case tensor.Uint64:
		got = len(tp.GetUint64Data())
		v.Tensor.Data = append([]uint64{}, tp.GetUint64Data()...)
	case tensor.Uint32:
		got = len(tp.GetUint64Data())
		v.Tensor.Data = convertSlice[uint64, uint32](tp.GetUint64Data())
	case tensor.Bytes:
		got = len(tp.GetStringData())
		var size int64
		for _, s := range tp.GetStringData() {
			size += int64(len(s)) + 24
		}
		if err := r.take(size); err != nil {
			return nil, err
		}
		v.Tensor.Data = append([][]byte{}, tp.GetStringData()...)
	default:
		d := tp.GetInt32Data()
		got = len(d)
		switch dt {
		case tensor.Int32:
			v.Tensor.Data = append([]int32{}, d...)
		case tensor.Int16:
			v.Tensor.Data = convertSlice[int32, int16](d)
		case tensor.Int8:
			v.Tensor.Data = convertSlice[int32, int8](d)
		case tensor.Uint16, tensor.FP16:
			v.Tensor.Data = convertSlice[int32, uint16](d)
		case tensor.Uint8:
			v.Tensor.Data = convertSlice[int32, uint8](d)
		case tensor.Bool:
			b := make([]bool, len(d))
			for i, x := range d {
				b[i] = x != 0
			}
			v.Tensor.Data = b
		}
	}
	if got != n {
		return nil, fmt.Errorf("%w: tensor %q: %d values for shape %v", ErrInvalidModel, tp.GetName(), got, shape)
	}
	return v, nil
}

func convertSlice[F, T int32 | uint64 | int16 | int8 | uint16 | uint8 | uint32](s []F) []T {
	d := make([]T, len(s))
	for i, x := range s {
		d[i] = T(x)
	}
	return d
}

// external reads the external data of tp, want bytes, from a file that must
// lie inside r.dir.
func (r *tensorReader) external(tp *onnxpb.TensorProto, want int64) ([]byte, error) {
	if r.dir == "" {
		return nil, fmt.Errorf("%w: external data not allowed here", ErrInvalidModel)
	}
	var loc string
	var off, length int64 = 0, -1
	for _, kv := range tp.GetExternalData() {
		var err error
		switch kv.GetKey() {
		case "location":
			loc = kv.GetValue()
		case "offset":
			off, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		case "length":
			length, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		}
		if err != nil || off < 0 {
			return nil, fmt.Errorf("%w: external data %s=%q", ErrInvalidModel, kv.GetKey(), kv.GetValue())
		}
	}
	if loc == "" || filepath.IsAbs(loc) || strings.Contains(loc, "\\") || !filepath.IsLocal(loc) {
		return nil, fmt.Errorf("%w: external data location %q is not a relative path inside the model directory", ErrInvalidModel, loc)
	}
	if length < 0 {
		length = want
	}
	if length != want {
		return nil, fmt.Errorf("%w: external data of %d bytes for %d wanted", ErrInvalidModel, length, want)
	}
	root, err := os.OpenRoot(r.dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModel, err)
	}
	defer root.Close()
	f, err := root.Open(loc)
	if err != nil {
		return nil, fmt.Errorf("%w: external data: %w", ErrInvalidModel, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if off > st.Size() || length > st.Size()-off {
		return nil, fmt.Errorf("%w: external data [%d, +%d) past the end of %q (%d bytes)", ErrInvalidModel, off, length, loc, st.Size())
	}
	if length > r.budget {
		return nil, r.take(length)
	}
	buf := make([]byte, length)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%w: external data: %w", ErrInvalidModel, err)
	}
	return buf, nil
}

// float64At reads element i of a numeric tensor as float64.
func float64At(data any, i int) float64 {
	switch d := data.(type) {
	case []float32:
		return float64(d[i])
	case []float64:
		return d[i]
	case []int64:
		return float64(d[i])
	case []int32:
		return float64(d[i])
	case []int16:
		return float64(d[i])
	case []int8:
		return float64(d[i])
	case []uint8:
		return float64(d[i])
	case []uint16:
		return float64(d[i])
	case []uint32:
		return float64(d[i])
	case []uint64:
		return float64(d[i])
	case []bool:
		if d[i] {
			return 1
		}
		return 0
	}
	return math.NaN()
}
