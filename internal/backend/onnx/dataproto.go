package onnx

import (
	"errors"
	"fmt"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
)

// Sequence and optional values in files.
//
// The ONNX test data stores sequence and optional inputs and outputs as
// SequenceProto and OptionalProto messages (onnx-data.proto), which the
// generated onnxpb package (from onnx-ml.proto) lacks. They are small, so
// they are decoded here with protowire:
//
//	SequenceProto { 1 name; 2 elem_type; 3 repeated tensor_values;
//	  4 sparse_tensor_values; 5 sequence_values; 6 map_values; 7 optional_values }
//	OptionalProto { 1 name; 2 elem_type; 3 tensor_value; 4 sparse_tensor_value;
//	  5 sequence_value; 6 map_value; 7 optional_value }

// errDataProto is wrapped for malformed SequenceProto and OptionalProto
// messages.
var errDataProto = errors.New("onnx: malformed sequence or optional value")

// maxValueDepth bounds the nesting of sequences and optionals read from a
// file.
const maxValueDepth = 16

// readableValueType reports whether readValueFile can read a value of type
// tp: a tensor, a sequence of tensors, or an optional of either.
func readableValueType(tp *onnxpb.TypeProto) bool {
	switch {
	case tp.GetTensorType() != nil:
		return true
	case tp.GetSequenceType() != nil:
		return tp.GetSequenceType().GetElemType().GetTensorType() != nil
	case tp.GetOptionalType() != nil:
		return readableValueType(tp.GetOptionalType().GetElemType())
	}
	return false
}

// readValueFile reads a value of type tp from file: a TensorProto, a
// SequenceProto or an OptionalProto.
func readValueFile(file string, tp *onnxpb.TypeProto) (*Value, error) {
	if tp.GetSequenceType() == nil && tp.GetOptionalType() == nil {
		return readTensorFile(file)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	r := &tensorReader{budget: DefaultMaxBytes}
	v, err := decodeDataValue(data, tp.GetOptionalType() != nil, r, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return v, nil
}

// decodeDataValue decodes a SequenceProto (optional false) or an
// OptionalProto into a Value: a sequence, what the optional holds, or
// KindNone for an empty optional.
func decodeDataValue(data []byte, optional bool, r *tensorReader, depth int) (*Value, error) {
	if depth > maxValueDepth {
		return nil, fmt.Errorf("%w: nested deeper than %d", errDataProto, maxValueDepth)
	}
	v := &Value{}
	if !optional {
		v.Kind = KindSequence
	}
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return nil, fmt.Errorf("%w: %v", errDataProto, protowire.ParseError(n))
		}
		data = data[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, data)
			if n < 0 {
				return nil, fmt.Errorf("%w: %v", errDataProto, protowire.ParseError(n))
			}
			data = data[n:]
			continue
		}
		b, n := protowire.ConsumeBytes(data)
		if n < 0 {
			return nil, fmt.Errorf("%w: %v", errDataProto, protowire.ParseError(n))
		}
		data = data[n:]
		var e *Value
		switch num {
		case 1: // name
			continue
		case 3:
			var tp onnxpb.TensorProto
			if err := proto.Unmarshal(b, &tp); err != nil {
				return nil, fmt.Errorf("%w: %w", errDataProto, err)
			}
			t, err := r.value(&tp)
			if err != nil {
				return nil, err
			}
			e = t
		case 5:
			s, err := decodeDataValue(b, false, r, depth+1)
			if err != nil {
				return nil, err
			}
			e = s
		case 7:
			o, err := decodeDataValue(b, true, r, depth+1)
			if err != nil {
				return nil, err
			}
			e = o
		case 4, 6:
			return nil, fmt.Errorf("%w: sparse tensors and maps in sequences or optionals", ErrUnsupported)
		default:
			continue
		}
		if optional {
			v = e
			continue
		}
		v.Seq = append(v.Seq, e)
	}
	return v, nil
}

// compareAny compares a run's output with the expected value as
// compareValues does, element by element for sequences; an empty optional
// equals only an empty optional. It returns "" when they match.
func compareAny(got, want *Value) string {
	switch want.Kind {
	case KindNone:
		if got.Kind != KindNone {
			return fmt.Sprintf("got a %v, want an empty optional", got)
		}
		return ""
	case KindSequence:
		if got.Kind != KindSequence {
			return fmt.Sprintf("got a %v, want a sequence", got)
		}
		if len(got.Seq) != len(want.Seq) {
			return fmt.Sprintf("a sequence of %d, want %d", len(got.Seq), len(want.Seq))
		}
		for i := range want.Seq {
			if msg := compareAny(got.Seq[i], want.Seq[i]); msg != "" {
				return fmt.Sprintf("element %d: %s", i, msg)
			}
		}
		return ""
	}
	return compareValues(got, want)
}
