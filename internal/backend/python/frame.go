package python

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// Frame kinds of the worker protocol (worker.py's docstring describes it).
const (
	kindLoad   = 1
	kindInfer  = 2
	kindReady  = 3
	kindResult = 4
	kindError  = 5
)

// Error classes of an ERROR frame.
const (
	errBadInput   = 1
	errModel      = 2
	errLoad       = 3
	maxFrameBytes = 1 << 30
)

// errFrame is returned by decodeTensors for a malformed frame.
var errFrame = errors.New("python: malformed frame from the worker")

// Type codes on the wire, as in worker.py.
var (
	codeOf = map[tensor.DType]byte{
		tensor.Bool: 1, tensor.Uint8: 2, tensor.Uint16: 3, tensor.Uint32: 4, tensor.Uint64: 5,
		tensor.Int8: 6, tensor.Int16: 7, tensor.Int32: 8, tensor.Int64: 9,
		tensor.FP16: 10, tensor.FP32: 11, tensor.FP64: 12, tensor.Bytes: 13,
	}
	dtypeOf = func() map[byte]tensor.DType {
		m := map[byte]tensor.DType{}
		for d, c := range codeOf {
			m[c] = d
		}
		return m
	}()
)

// appendFrame appends a frame of kind holding body to dst.
func appendFrame(dst []byte, kind byte, body []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(1+len(body)))
	dst = append(dst, kind)
	return append(dst, body...)
}

// appendTensorFrame appends a frame of kind holding ts. The tensors must be
// valid, with names under 64 KiB and ranks under 256.
func appendTensorFrame(dst []byte, kind byte, ts []*tensor.Tensor) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, kind)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(ts)))
	for _, t := range ts {
		code, ok := codeOf[t.DType]
		if !ok || len(t.Name) > 0xffff || len(t.Shape) > 0xff {
			return dst[:start], fmt.Errorf("tensor %q cannot be sent to a worker (type %s, rank %d)", t.Name, t.DType, len(t.Shape))
		}
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(t.Name)))
		dst = append(dst, t.Name...)
		dst = append(dst, code, byte(len(t.Shape)))
		for _, d := range t.Shape {
			dst = binary.LittleEndian.AppendUint64(dst, uint64(d))
		}
		dst = binary.LittleEndian.AppendUint64(dst, uint64(t.RawSize()))
		dst = t.AppendRaw(dst)
	}
	n := len(dst) - start - 4
	if n > maxFrameBytes {
		return dst[:start], fmt.Errorf("request of %d bytes exceeds the %d-byte frame limit", n, maxFrameBytes)
	}
	binary.LittleEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

// readFrame reads one frame into buf (grown as needed) and returns its kind
// and body, which alias buf.
func readFrame(r io.Reader, buf []byte) (kind byte, body, newBuf []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, buf, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n < 1 || n > maxFrameBytes {
		return 0, nil, buf, fmt.Errorf("%w: frame length %d", errFrame, n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, buf, err
	}
	return buf[0], buf[1:], buf, nil
}

// decodeTensors decodes the body of a RESULT (or INFER) frame. The tensors
// do not alias b. It returns an error wrapping errFrame for anything
// malformed.
func decodeTensors(b []byte) ([]*tensor.Tensor, error) {
	bad := func(what string) ([]*tensor.Tensor, error) {
		return nil, fmt.Errorf("%w: %s", errFrame, what)
	}
	if len(b) < 2 {
		return bad("no tensor count")
	}
	count := int(binary.LittleEndian.Uint16(b))
	b = b[2:]
	out := make([]*tensor.Tensor, 0, min(count, 16))
	for range count {
		if len(b) < 2 {
			return bad("truncated name length")
		}
		nl := int(binary.LittleEndian.Uint16(b))
		b = b[2:]
		if len(b) < nl+2 {
			return bad("truncated name")
		}
		name := string(b[:nl])
		code, rank := b[nl], int(b[nl+1])
		b = b[nl+2:]
		dt, ok := dtypeOf[code]
		if !ok {
			return bad(fmt.Sprintf("tensor %q: unknown type code %d", name, code))
		}
		if len(b) < 8*rank+8 {
			return bad(fmt.Sprintf("tensor %q: truncated shape", name))
		}
		shape := make([]int64, rank)
		for i := range shape {
			shape[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
		b = b[8*rank:]
		nb := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if nb > uint64(len(b)) {
			return bad(fmt.Sprintf("tensor %q: %d data bytes, %d left", name, nb, len(b)))
		}
		t, err := tensor.FromRaw(name, dt, shape, b[:nb])
		if err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %w", errFrame, name, err)
		}
		out = append(out, t)
		b = b[nb:]
	}
	if len(b) != 0 {
		return bad(fmt.Sprintf("%d bytes after the tensors", len(b)))
	}
	return out, nil
}
