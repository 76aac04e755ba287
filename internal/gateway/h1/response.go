package h1

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

var syscallEMFILE = syscall.EMFILE

// bufferLimit is how much of a body the response holds to send it with
// its length; a handler that writes more (or flushes) streams it in
// chunks.
const bufferLimit = 64 << 10

// response is the http.ResponseWriter (and http.Flusher) of one request.
// The status line and headers go out with the body when the handler
// returns, in one write, with the body's length; past bufferLimit or on
// Flush, they go out at once and the body follows in chunks.
type response struct {
	c      *conn
	req    *http.Request
	header http.Header
	status int
	buf    []byte
	keep   bool // the connection may carry another request
	sent   bool // the status line and headers are written
	chunk  bool // the body is chunked
	err    error
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.status != 0 || w.sent {
		return
	}
	if code < 100 || code > 999 {
		panic("h1: invalid status code " + strconv.Itoa(code))
	}
	if code < 200 { // informational: ignored (no 1xx but 100 Continue)
		return
	}
	w.status = code
}

func (w *response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) || w.req.Method == http.MethodHead {
		return len(p), nil
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.chunk && len(w.buf)+len(p) <= bufferLimit {
		if cap(w.buf) == 0 {
			w.buf = make([]byte, 0, max(len(p), 512))
		}
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	if !w.chunk {
		w.startChunked()
	}
	w.writeChunk(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// Flush sends what was written so far, and makes the rest of the body
// chunked.
func (w *response) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.chunk && bodyAllowed(w.status) && w.req.Method != http.MethodHead {
		w.startChunked()
	}
	if w.err == nil {
		w.err = w.c.bw.Flush()
	}
}

func (w *response) startChunked() {
	w.chunk = true
	if w.req.ProtoMinor == 0 { // no chunks in HTTP/1.0: the close ends the body
		w.keep = false
	}
	w.writeHead(-1)
	buf := w.buf
	w.buf = nil
	w.writeChunk(buf)
}

func (w *response) writeChunk(p []byte) {
	if len(p) == 0 || w.err != nil {
		return
	}
	bw := w.c.bw
	if w.req.ProtoMinor == 0 {
		_, w.err = bw.Write(p)
		return
	}
	bw.WriteString(strconv.FormatInt(int64(len(p)), 16))
	bw.WriteString("\r\n")
	bw.Write(p)
	_, w.err = bw.WriteString("\r\n")
}

// finish ends the answer: status line, headers and buffered body, or the
// last chunk, and flushes them.
func (w *response) finish() error {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.chunk {
		if w.req.ProtoMinor >= 1 && w.err == nil {
			w.c.bw.WriteString("0\r\n\r\n")
		}
	} else {
		n := len(w.buf)
		if !bodyAllowed(w.status) {
			n = -2
		} else if w.req.Method == http.MethodHead {
			n = -3
		}
		w.writeHead(n)
		if n > 0 {
			w.c.bw.Write(w.buf)
		}
	}
	if w.err != nil {
		return w.err
	}
	return w.c.bw.Flush()
}

// writeHead writes the status line and headers for a body of n bytes
// (-1: chunked or, in HTTP/1.0, until the close; -2: none allowed; -3:
// HEAD, the handler's Content-Length kept).
func (w *response) writeHead(n int) {
	if w.sent {
		return
	}
	w.sent = true
	bw := w.c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(w.status))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(w.status))
	bw.WriteString("\r\n")
	h := w.header
	for k, vs := range h {
		switch k {
		case "Content-Length":
			if n == -3 {
				break
			}
			continue
		case "Transfer-Encoding", "Connection", "Keep-Alive", "Trailer", "Upgrade", "Proxy-Connection":
			continue
		}
		if !validHeaderName(k) {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			writeValue(bw, v)
			bw.WriteString("\r\n")
		}
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(date())
		bw.WriteString("\r\n")
	}
	switch {
	case n >= 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.Itoa(n))
		bw.WriteString("\r\n")
	case n == -1 && w.req.ProtoMinor >= 1:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case !w.keep || w.c.s.closing.Load():
		w.keep = false
		bw.WriteString("Connection: close\r\n")
	case w.req.ProtoMinor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
}

// writeValue writes a header value with any CR, LF or NUL (which would
// split the header) turned into a space.
func writeValue(bw *bufio.Writer, v string) {
	if !strings.ContainsAny(v, "\r\n\x00") {
		bw.WriteString(v)
		return
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' || c == 0 {
			c = ' '
		}
		bw.WriteByte(c)
	}
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

// date is the Date header's value, formatted once a second.
func date() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.s
	}
	d := &dated{unix: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.s
}

type dated struct {
	unix int64
	s    string
}

var cachedDate atomic.Pointer[dated]
