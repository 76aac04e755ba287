package registry

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// uploads streams blob uploads to files under dir/uploads and moves each,
// once its digest is verified, to where pkg/registry's disk blob handler
// reads it (dir/blobs/sha256/HEX). pkg/registry itself holds an upload in
// memory until it completes, several times over while its buffer grows;
// a model of some GiB would need that much memory.
type uploads struct {
	dir      string // the registry's directory
	mu       sync.Mutex
	sessions map[string]*session
}

// session is one upload in progress.
type session struct {
	mu   sync.Mutex
	f    *os.File
	h    hash.Hash
	n    int64
	repo string
}

func newUploads(dir string) (*uploads, error) {
	tmp := filepath.Join(dir, "uploads")
	// Uploads cut short by a restart cannot resume: their sessions died.
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	return &uploads{dir: dir, sessions: map[string]*session{}}, nil
}

// uploadTarget parses /v2/REPO/blobs/uploads/[ID].
func uploadTarget(path string) (repo, id string, ok bool) {
	p := strings.TrimPrefix(path, "/v2/")
	if p == path {
		return "", "", false
	}
	i := strings.LastIndex(p, "/blobs/uploads")
	if i <= 0 {
		return "", "", false
	}
	rest := strings.TrimPrefix(p[i+len("/blobs/uploads"):], "/")
	if strings.Contains(rest, "/") {
		return "", "", false
	}
	return p[:i], rest, true
}

// serve answers an upload request.
func (u *uploads) serve(w http.ResponseWriter, req *http.Request, repo, id string) {
	q := req.URL.Query()
	switch {
	case id == "" && req.Method == http.MethodPost:
		// Blobs are stored once for every repository: a mount of one
		// that is there succeeds; any other starts an upload.
		if h, err := v1.NewHash(q.Get("mount")); err == nil && h.Algorithm == "sha256" {
			if _, err := os.Stat(filepath.Join(u.dir, "blobs", h.Algorithm, h.Hex)); err == nil {
				w.Header().Set("Docker-Content-Digest", h.String())
				w.Header().Set("Location", "/v2/"+repo+"/blobs/"+h.String())
				w.Header().Set("Content-Length", "0")
				w.WriteHeader(http.StatusCreated)
				return
			}
		}
		s, id, err := u.start(repo)
		if err != nil {
			writeRegistryError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
			return
		}
		if d := q.Get("digest"); d != "" { // monolithic upload
			u.finish(w, req, s, id, d)
			return
		}
		s.status(w, repo, id, http.StatusAccepted)
		return
	case id == "":
		writeRegistryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", req.Method+" of an upload without a session")
		return
	}
	u.mu.Lock()
	s := u.sessions[id]
	u.mu.Unlock()
	if s == nil || s.repo != repo {
		writeRegistryError(w, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN", "upload "+id+" unknown")
		return
	}
	switch req.Method {
	case http.MethodGet:
		s.mu.Lock()
		defer s.mu.Unlock()
		s.status(w, repo, id, http.StatusNoContent)
	case http.MethodPatch:
		s.mu.Lock()
		defer s.mu.Unlock()
		if cr := req.Header.Get("Content-Range"); cr != "" {
			start, _, _ := strings.Cut(cr, "-")
			if n, err := strconv.ParseInt(start, 10, 64); err != nil || n != s.n {
				writeRegistryError(w, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID", fmt.Sprintf("Content-Range %q: the upload has %d bytes", cr, s.n))
				return
			}
		}
		if err := s.write(req.Body); err != nil {
			u.drop(id)
			writeRegistryError(w, http.StatusInternalServerError, "BLOB_UPLOAD_INVALID", err.Error())
			return
		}
		s.status(w, repo, id, http.StatusAccepted)
	case http.MethodPut:
		u.finish(w, req, s, id, q.Get("digest"))
	case http.MethodDelete:
		u.drop(id)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeRegistryError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", req.Method+" of an upload")
	}
}

func (u *uploads) start(repo string) (*session, string, error) {
	var b [16]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	f, err := os.Create(filepath.Join(u.dir, "uploads", id))
	if err != nil {
		return nil, "", err
	}
	s := &session{f: f, h: sha256.New(), repo: repo}
	u.mu.Lock()
	u.sessions[id] = s
	u.mu.Unlock()
	return s, id, nil
}

// finish appends the request's body, checks the digest and moves the
// blob into place.
func (u *uploads) finish(w http.ResponseWriter, req *http.Request, s *session, id, digest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer u.drop(id)
	want, err := v1.NewHash(digest)
	if err != nil || want.Algorithm != "sha256" {
		writeRegistryError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("digest %q: want sha256:HEX", digest))
		return
	}
	if err := s.write(req.Body); err != nil {
		writeRegistryError(w, http.StatusInternalServerError, "BLOB_UPLOAD_INVALID", err.Error())
		return
	}
	if got := "sha256:" + hex.EncodeToString(s.h.Sum(nil)); got != want.String() {
		writeRegistryError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("upload has digest %s, not %s", got, want))
		return
	}
	if err := s.f.Sync(); err != nil {
		writeRegistryError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	dst := filepath.Join(u.dir, "blobs", want.Algorithm, want.Hex)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		writeRegistryError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	if err := os.Rename(s.f.Name(), dst); err != nil {
		writeRegistryError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	w.Header().Set("Docker-Content-Digest", want.String())
	w.Header().Set("Location", "/v2/"+s.repo+"/blobs/"+want.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// drop forgets a session and removes its file (gone already once moved).
func (u *uploads) drop(id string) {
	u.mu.Lock()
	s := u.sessions[id]
	delete(u.sessions, id)
	u.mu.Unlock()
	if s != nil {
		s.f.Close()
		os.Remove(s.f.Name())
	}
}

func (s *session) write(r io.Reader) error {
	n, err := io.Copy(io.MultiWriter(s.f, s.h), r)
	s.n += n
	return err
}

func (s *session) status(w http.ResponseWriter, repo, id string, code int) {
	w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
	w.Header().Set("Docker-Upload-UUID", id)
	w.Header().Set("Range", fmt.Sprintf("0-%d", max(s.n-1, 0)))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(code)
}
