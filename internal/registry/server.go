package registry

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Registry is an embeddable OCI distribution registry: go-containerregistry's
// pkg/registry with its blobs in Dir/blobs and its manifests, which that
// package keeps in memory, written to Dir/manifests and a journal
// (Dir/manifests.jsonl) that Open replays, so pushed artifacts survive a
// restart. Blob uploads stream to files in Dir/uploads (pkg/registry would
// hold them in memory) and move into Dir/blobs once their digest checks.
// It has no authentication: serve it on a loopback address or behind a
// proxy that authenticates. Create it with Open; ServeHTTP is safe for
// concurrent use.
type Registry struct {
	dir     string
	h       http.Handler
	up      *uploads
	log     *slog.Logger
	mu      sync.Mutex // orders manifest changes and their journal lines
	journal *os.File
}

// journalEntry is one line of the manifest journal.
type journalEntry struct {
	Op     string `json:"op"` // "put" or "delete"
	Repo   string `json:"repo"`
	Ref    string `json:"ref"` // tag or digest
	Type   string `json:"type,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// Open opens (creating it if needed) the registry stored in dir and
// replays its manifests. log receives the request log at debug level; nil
// discards it.
func Open(dir string, log *slog.Logger) (*Registry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{"blobs", "manifests"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	up, err := newUploads(dir)
	if err != nil {
		return nil, err
	}
	r := &Registry{
		dir: dir, log: log, up: up,
		h: ggcr.New(
			ggcr.WithBlobHandler(ggcr.NewDiskBlobHandler(filepath.Join(dir, "blobs"))),
			ggcr.Logger(slog.NewLogLogger(log.Handler(), slog.LevelDebug)),
		),
	}
	path := filepath.Join(dir, "manifests.jsonl")
	if err := cutPartialLine(path); err != nil {
		return nil, err
	}
	if err := r.replay(path); err != nil {
		return nil, fmt.Errorf("registry: replay %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	r.journal = f
	return r, nil
}

// Close closes the journal. It is idempotent; the registry must not serve
// afterwards.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.journal == nil {
		return nil
	}
	err := r.journal.Close()
	r.journal = nil
	return err
}

func (r *Registry) replay(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		var e journalEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		target := "/v2/" + e.Repo + "/manifests/" + e.Ref
		var req *http.Request
		switch e.Op {
		case "put":
			h, err := v1.NewHash(e.Digest)
			if err != nil {
				return fmt.Errorf("line %d: %w", line, err)
			}
			body, err := os.ReadFile(r.manifestPath(h))
			if err != nil {
				return fmt.Errorf("line %d: %w", line, err)
			}
			if got, _, _ := v1.SHA256(bytes.NewReader(body)); got != h {
				return fmt.Errorf("line %d: manifest %s has digest %s", line, h, got)
			}
			req, _ = http.NewRequest(http.MethodPut, target, bytes.NewReader(body))
			req.Header.Set("Content-Type", e.Type)
		case "delete":
			req, _ = http.NewRequest(http.MethodDelete, target, nil)
		default:
			return fmt.Errorf("line %d: unknown op %q", line, e.Op)
		}
		rec := newRecorder()
		r.h.ServeHTTP(rec, req)
		if rec.status >= 300 && e.Op == "put" {
			return fmt.Errorf("line %d: put %s: %d %s", line, target, rec.status, rec.body.String())
		}
	}
	return sc.Err()
}

// cutPartialLine truncates the journal after its last newline: a line cut
// short by a crash never got its reply, and the next line must not be
// appended to it.
func cutPartialLine(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) || len(b) == 0 || b[len(b)-1] == '\n' {
		return nil
	}
	if err != nil {
		return err
	}
	return os.Truncate(path, int64(bytes.LastIndexByte(b, '\n')+1))
}

func (r *Registry) manifestPath(h v1.Hash) string {
	return filepath.Join(r.dir, "manifests", h.Algorithm, h.Hex)
}

// manifestTarget returns the repository and reference of a manifest
// request path (/v2/REPO/manifests/REF).
func manifestTarget(path string) (repo, ref string, ok bool) {
	el := strings.Split(strings.TrimPrefix(path, "/v2/"), "/")
	if !strings.HasPrefix(path, "/v2/") || len(el) < 3 || el[len(el)-2] != "manifests" {
		return "", "", false
	}
	return strings.Join(el[:len(el)-2], "/"), el[len(el)-1], true
}

// ServeHTTP answers the OCI distribution API under /v2/.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if repo, id, ok := uploadTarget(req.URL.Path); ok {
		r.up.serve(w, req, repo, id)
		return
	}
	repo, ref, ok := manifestTarget(req.URL.Path)
	if !ok || (req.Method != http.MethodPut && req.Method != http.MethodDelete) {
		r.h.ServeHTTP(w, req)
		return
	}
	var body []byte
	if req.Method == http.MethodPut {
		b, err := io.ReadAll(io.LimitReader(req.Body, maxConfigBytes+1))
		if err != nil {
			writeRegistryError(w, http.StatusBadRequest, "MANIFEST_INVALID", "read manifest: "+err.Error())
			return
		}
		if len(b) > maxConfigBytes {
			writeRegistryError(w, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID", fmt.Sprintf("manifest larger than %d bytes", maxConfigBytes))
			return
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.journal == nil {
		writeRegistryError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "registry closed")
		return
	}
	rec := newRecorder()
	r.h.ServeHTTP(rec, req)
	var err error
	switch {
	case req.Method == http.MethodPut && rec.status == http.StatusCreated:
		err = r.persist(repo, ref, req.Header.Get("Content-Type"), body)
	case req.Method == http.MethodDelete && rec.status == http.StatusAccepted:
		err = r.appendJournal(journalEntry{Op: "delete", Repo: repo, Ref: ref})
	}
	if err != nil {
		r.log.Error("registry: manifest not persisted", "repo", repo, "ref", ref, "err", err)
		writeRegistryError(w, http.StatusInternalServerError, "UNKNOWN", "manifest not persisted: "+err.Error())
		return
	}
	rec.writeTo(w)
}

// persist writes a manifest's body (content-addressed) and its journal
// line, both synced.
func (r *Registry) persist(repo, ref, typ string, body []byte) error {
	h, _, err := v1.SHA256(bytes.NewReader(body))
	if err != nil {
		return err
	}
	p := r.manifestPath(h)
	if _, err := os.Stat(p); err != nil {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.CreateTemp(filepath.Dir(p), "put-*")
		if err != nil {
			return err
		}
		_, err = f.Write(body)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), p)
		}
		if err != nil {
			os.Remove(f.Name())
			return err
		}
	}
	return r.appendJournal(journalEntry{Op: "put", Repo: repo, Ref: ref, Type: typ, Digest: h.String()})
}

func (r *Registry) appendJournal(e journalEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := r.journal.Write(append(b, '\n')); err != nil {
		return err
	}
	return r.journal.Sync()
}

// writeRegistryError writes an OCI distribution error body.
func writeRegistryError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// recorder is an in-memory http.ResponseWriter.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}

func (r *recorder) writeTo(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header()[k] = v
	}
	r.WriteHeader(http.StatusOK)
	w.WriteHeader(r.status)
	w.Write(r.body.Bytes())
}

// Transport returns a RoundTripper that answers requests for the given
// hosts ("host:port", as in an oci:// reference) from the registry in
// process and sends the others through next (nil means
// http.DefaultTransport). shoal up uses it to resolve references to its
// own registry before its listener serves. Responses are buffered whole:
// it suits manifests, not large blobs.
func (r *Registry) Transport(next http.RoundTripper, hosts ...string) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	set := map[string]bool{}
	for _, h := range hosts {
		set[h] = true
	}
	return &localTransport{r: r, hosts: set, next: next}
}

type localTransport struct {
	r     *Registry
	hosts map[string]bool
	next  http.RoundTripper
}

func (t *localTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.hosts[req.URL.Host] {
		return t.next.RoundTrip(req)
	}
	rec := newRecorder()
	t.r.ServeHTTP(rec, req)
	if req.Body != nil {
		req.Body.Close()
	}
	rec.WriteHeader(http.StatusOK)
	return &http.Response{
		Status: fmt.Sprintf("%d %s", rec.status, http.StatusText(rec.status)), StatusCode: rec.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rec.header, Body: io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		ContentLength: int64(rec.body.Len()), Request: req,
	}, nil
}

// LoopbackHosts returns the host:port names by which a client on this
// machine reaches a listener on addr: addr itself and, when addr listens
// on a loopback or unspecified address, localhost, 127.0.0.1 and [::1]
// with its port.
func LoopbackHosts(addr string) []string {
	out := []string{addr}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return out
	}
	if _, err := strconv.Atoi(port); err != nil {
		return out
	}
	ip := net.ParseIP(host)
	if host == "" || host == "localhost" || (ip != nil && (ip.IsLoopback() || ip.IsUnspecified())) {
		for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
			if a := net.JoinHostPort(h, port); a != addr {
				out = append(out, a)
			}
		}
	}
	return out
}
