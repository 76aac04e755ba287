package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// buffer holds one request's body (kept for retries and mirroring), a
// copy buffer for the response, and the response when it is mirrored.
// Buffers are pooled and reference counted: the transport may close a
// request body after RoundTrip has returned, so a buffer goes back to
// the pool only when the handler and every body reader are done with it.
type buffer struct {
	b    []byte
	copy []byte
	resp []byte
	refs atomic.Int32
	pool *sync.Pool
}

// getBuffer returns a pooled buffer holding one reference.
func getBuffer(pool *sync.Pool) *buffer {
	b := pool.Get().(*buffer)
	b.pool = pool
	b.refs.Store(1)
	return b
}

// unref drops a reference; the last one returns b to its pool.
func (b *buffer) unref() {
	if b.refs.Add(-1) == 0 {
		if cap(b.b) > 4<<20 {
			b.b = nil // do not pin a huge body in the pool
		}
		if cap(b.resp) > 4<<20 {
			b.resp = nil
		}
		b.pool.Put(b)
	}
}

// bodyReader reads a buffer's body for one attempt.
type bodyReader struct {
	bytes.Reader
	buf    *buffer
	closed atomic.Bool
}

func (r *bodyReader) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		r.buf.unref()
	}
	return nil
}

// reader returns a new reader over the body; closing it drops its
// reference to b.
func (b *buffer) reader() io.ReadCloser {
	if len(b.b) == 0 {
		return http.NoBody
	}
	b.refs.Add(1)
	r := &bodyReader{buf: b}
	r.Reset(b.b)
	return r
}

// readFrom reads the whole of rd (size bytes if known, else -1) into b,
// failing with *http.MaxBytesError past limit.
func (b *buffer) readFrom(rd io.Reader, size, limit int64) error {
	if b.copy == nil {
		b.copy = make([]byte, 32<<10)
	}
	b.b = b.b[:0]
	if rd == nil || rd == http.NoBody {
		return nil
	}
	if size > limit {
		return &http.MaxBytesError{Limit: limit}
	}
	if size > int64(cap(b.b)) {
		b.b = make([]byte, 0, size+1) // +1: room to see EOF without growing
	}
	var err error
	b.b, err = appendAll(b.b, rd, limit)
	return err
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
