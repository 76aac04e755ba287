package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// buffer holds the pooled scratch space of one request: a copy buffer for
// the response, and the response itself when it is mirrored. The request
// body is not pooled: the transport may still read it after RoundTrip has
// returned, so it gets a fresh slice per request.
type buffer struct {
	copy []byte
	resp []byte
}

// newBuffer is the pool's constructor.
func newBuffer() any { return &buffer{copy: make([]byte, 32<<10)} }

// trim drops a mirrored response too large to keep pooled.
func (b *buffer) trim() {
	if cap(b.resp) > 4<<20 {
		b.resp = nil
	}
}

// bodyOf returns the request body b as a reader (one allocation), or
// http.NoBody.
func bodyOf(b []byte) io.ReadCloser {
	if len(b) == 0 {
		return http.NoBody
	}
	m := new(memBody)
	m.Reset(b)
	return m
}

// memBody is a request body in memory.
type memBody struct{ bytes.Reader }

// Close does nothing: the body is the request's own slice.
func (*memBody) Close() error { return nil }

// readBody reads the whole of rd (size bytes if known, else -1), failing
// with *http.MaxBytesError past limit.
func readBody(rd io.Reader, size, limit int64) ([]byte, error) {
	if rd == nil || rd == http.NoBody || size == 0 {
		return nil, nil
	}
	if size > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	var p []byte
	if size > 0 {
		p = make([]byte, 0, size+1) // +1: room to see EOF without growing
	}
	return appendAll(p, rd, limit)
}

// appendAll appends rd's bytes to p, failing past limit.
func appendAll(p []byte, rd io.Reader, limit int64) ([]byte, error) {
	for {
		if len(p) == cap(p) {
			p = append(p, 0)[:len(p)]
		}
		n, err := rd.Read(p[len(p):cap(p)])
		p = p[:len(p)+n]
		if int64(len(p)) > limit {
			return p, &http.MaxBytesError{Limit: limit}
		}
		if err == io.EOF {
			return p, nil
		}
		if err != nil {
			return p, fmt.Errorf("read body: %w", err)
		}
	}
}
