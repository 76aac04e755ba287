package pack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/lightgbm"
	"github.com/shoal-ml/shoal/internal/backend/onnx"
	"github.com/shoal-ml/shoal/internal/backend/xgboost"
	"github.com/shoal-ml/shoal/internal/serve"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// customFormats are the formats that run the user's code and so need an
// interpreter in the image.
var customFormats = map[string]bool{"python": true, "http": true}

// Model describes one model of a repository as `shoal serve` loads it.
type Model struct {
	Name string
	// Versions are the versions its version policy serves, ascending.
	Versions []string
	// Format is the backend format (xgboost, lightgbm, onnx, python, http).
	Format string
	// Metadata is the JSON `shoal serve` answers at GET /v2/models/<Name>,
	// and Signature "sha256:<hex>" of it. Both are empty for custom code,
	// whose signature is only known once its interpreter runs.
	Metadata  []byte
	Signature string
}

// Custom reports whether the model runs custom code (python, http).
func (m Model) Custom() bool { return customFormats[m.Format] }

// Inspect loads the models of a repository directory or model file with
// the server's own repository code and native backends, and describes
// them, sorted by name. Custom-code models are planned (names, versions,
// format, model.yaml checked) but their code is not run. It returns the
// first load error (a bad model.yaml, an unknown format, a model file that
// does not parse), or an error wrapping ErrNoModels.
func Inspect(ctx context.Context, model string) ([]Model, error) {
	st, err := os.Stat(model)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if st.IsDir() && isModelDir(model) {
		return nil, fmt.Errorf("%w: %s holds one model's versions; give the repository above it (%s), as shoal serve takes", ErrModelDir, model, filepath.Dir(filepath.Clean(model)))
	}
	loaders := map[string]backend.Loader{
		"xgboost":  xgboost.Load,
		"lightgbm": lightgbm.Load,
		"onnx":     onnx.Load,
		"python":   declared,
		"http":     declared,
	}
	srv, err := serve.New(serve.Config{Repository: model, Loaders: loaders})
	if err != nil {
		return nil, err
	}
	defer srv.Close(context.WithoutCancel(ctx))
	if err := srv.LoadAll(ctx); err != nil {
		return nil, err
	}
	idx, err := srv.Index(true)
	if err != nil {
		return nil, err
	}
	var out []Model
	for _, e := range idx { // sorted by name, then version
		if len(out) == 0 || out[len(out)-1].Name != e.Name {
			out = append(out, Model{Name: e.Name})
		}
		m := &out[len(out)-1]
		m.Versions = append(m.Versions, e.Version)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w %s (want <model>/<version>/ directories or a model file)", ErrNoModels, model)
	}
	h := srv.Handler()
	for i := range out {
		m := &out[i]
		md, err := srv.ModelMetadata(m.Name, "")
		if err != nil {
			return nil, err
		}
		m.Format = md.Platform
		if m.Custom() {
			continue
		}
		m.Metadata, err = get(h, "/v2/models/"+url.PathEscape(m.Name))
		if err != nil {
			return nil, fmt.Errorf("model %q metadata: %w", m.Name, err)
		}
		sum := sha256.Sum256(m.Metadata)
		m.Signature = "sha256:" + hex.EncodeToString(sum[:])
	}
	return out, nil
}

// ErrModelDir: the path given is one model's directory (its version
// directories inside), not a repository of models.
var ErrModelDir = errors.New("pack: a model directory, not a model repository")

// isModelDir reports whether dir looks like one model's directory rather
// than a repository: a model.yaml at its top, or only version directories
// (1, 2, ...) below it.
func isModelDir(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "model.yaml")); err == nil {
		return true
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	versions := 0
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if v, err := strconv.ParseInt(e.Name(), 10, 64); err != nil || v < 1 {
			return false
		}
		versions++
	}
	return versions > 0
}

// get answers a GET of path from h in memory.
func get(h http.Handler, path string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	w := &memWriter{code: http.StatusOK, header: http.Header{}}
	h.ServeHTTP(w, req)
	if w.code != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", w.code, bytes.TrimSpace(w.body.Bytes()))
	}
	return w.body.Bytes(), nil
}

// memWriter is an http.ResponseWriter into memory.
type memWriter struct {
	code   int
	header http.Header
	body   bytes.Buffer
}

func (w *memWriter) Header() http.Header         { return w.header }
func (w *memWriter) Write(p []byte) (int, error) { return w.body.Write(p) }
func (w *memWriter) WriteHeader(code int)        { w.code = code }

// declared is the loader Inspect uses for custom code: it runs nothing and
// stands for the model with the signature its model.yaml declares.
func declared(_ context.Context, cfg backend.Config) (backend.Model, error) {
	return declaredModel{sig: backend.Signature{Inputs: cfg.Inputs, Outputs: cfg.Outputs}}, nil
}

type declaredModel struct{ sig backend.Signature }

func (d declaredModel) Signature() backend.Signature { return d.sig }

func (d declaredModel) Infer(context.Context, []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return nil, errors.New("pack: a model being inspected does not run")
}
