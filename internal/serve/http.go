package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/batch"
	"github.com/shoal-ml/shoal/internal/oip"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// errLoadFailed marks a repository load request that failed (HTTP 400, as
// Triton answers).
var errLoadFailed = errors.New("serve: load failed")

// Handler returns the REST handler: the Open Inference Protocol v2
// endpoints, the model repository extension, KServe V1, the founding
// example's /predict and /health, and /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, f func(http.ResponseWriter, *http.Request) error) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r); err != nil {
				s.writeError(w, r, err)
			}
		})
	}
	h("GET /v2", s.serverMetadata)
	h("GET /v2/health/live", s.live)
	h("GET /v2/health/ready", s.readyHandler)
	h("GET /v2/models/{model}", s.modelMetadata)
	h("GET /v2/models/{model}/versions/{version}", s.modelMetadata)
	h("GET /v2/models/{model}/ready", s.modelReady)
	h("GET /v2/models/{model}/versions/{version}/ready", s.modelReady)
	h("POST /v2/models/{model}/infer", s.inferHandler)
	h("POST /v2/models/{model}/versions/{version}/infer", s.inferHandler)
	h("POST /v2/repository/index", s.index)
	h("POST /v2/repository/models/{model}/load", s.load)
	h("POST /v2/repository/models/{model}/unload", s.unload)
	h("GET /v1/models/{model}", s.v1Status)
	h("POST /v1/models/{target}", s.v1Predict)
	h("POST /predict", s.predict)
	h("GET /health", s.healthHandler)
	mux.Handle("GET /metrics", s.metrics.handler())
	h("/", func(w http.ResponseWriter, r *http.Request) error {
		return &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)}
	})
	return mux
}

// httpError is an error with its own status code, for the few errors that
// belong to HTTP itself.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

// statusOf maps an error to its HTTP status code.
func statusOf(err error) int {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.code
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrModelNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrModelNotReady), errors.Is(err, backend.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, batch.ErrQueueFull), errors.Is(err, batch.ErrDeadline):
		return http.StatusTooManyRequests
	case errors.Is(err, errLoadFailed), isClientError(err):
		return http.StatusBadRequest
	case errors.Is(err, context.Canceled):
		return 499 // client closed the request
	}
	return http.StatusInternalServerError
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	if code >= 500 && code != 503 {
		s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	}
	if code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", retryAfter(err))
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

var (
	bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	outPool = sync.Pool{New: func() any { return new([]byte) }}
)

// writeBody writes an encoded response body and keeps its (possibly grown)
// array in outPool for the next response.
func writeBody(w http.ResponseWriter, p *[]byte, body []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
	if cap(body) <= 1<<20 {
		*p = body[:0]
		outPool.Put(p)
	}
}

// readBody reads the whole body, within Config.MaxBodyBytes; the caller
// returns buf to bufPool once done with the bytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (*bytes.Buffer, error) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	if r.ContentLength > s.cfg.MaxBodyBytes {
		bufPool.Put(buf)
		return nil, &http.MaxBytesError{Limit: s.cfg.MaxBodyBytes}
	}
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		bufPool.Put(buf)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: read body: %w", oip.ErrBadRequest, err)
	}
	return buf, nil
}

func (s *Server) serverMetadata(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.Metadata())
	return nil
}

func (s *Server) live(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]bool{"live": s.Live()})
	return nil
}

func (s *Server) readyHandler(w http.ResponseWriter, r *http.Request) error {
	code := http.StatusOK
	if !s.Ready() {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]bool{"ready": code == http.StatusOK})
	return nil
}

func (s *Server) healthHandler(w http.ResponseWriter, r *http.Request) error {
	if !s.Ready() {
		return &httpError{code: http.StatusServiceUnavailable, msg: "not ready"}
	}
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "ok")
	return nil
}

type tensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

func tensorsMetadata(specs []backend.TensorSpec) []tensorMetadata {
	out := make([]tensorMetadata, len(specs))
	for i, t := range specs {
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		out[i] = tensorMetadata{Name: t.Name, Datatype: t.DType.String(), Shape: shape}
	}
	return out
}

func (s *Server) modelMetadata(w http.ResponseWriter, r *http.Request) error {
	md, err := s.ModelMetadata(r.PathValue("model"), r.PathValue("version"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Name     string           `json:"name"`
		Versions []string         `json:"versions"`
		Platform string           `json:"platform"`
		Inputs   []tensorMetadata `json:"inputs"`
		Outputs  []tensorMetadata `json:"outputs"`
	}{md.Name, md.Versions, md.Platform, tensorsMetadata(md.Inputs), tensorsMetadata(md.Outputs)})
	return nil
}

func (s *Server) modelReady(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("model")
	ok, err := s.ModelReady(name, r.PathValue("version"))
	if err != nil {
		return err
	}
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"name": name, "ready": ok})
	return nil
}

func (s *Server) inferHandler(w http.ResponseWriter, r *http.Request) error {
	if err := s.shed(r.PathValue("model"), r.PathValue("version")); err != nil {
		return err
	}
	arrived := s.arrive(r.PathValue("model"))
	defer arrived()
	buf, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	defer bufPool.Put(buf)
	headerLen := -1
	if v := r.Header.Get(oip.HeaderContentLength); v != "" {
		if headerLen, err = strconv.Atoi(v); err != nil || headerLen < 0 {
			return fmt.Errorf("%w: bad %s %q", oip.ErrBadRequest, oip.HeaderContentLength, v)
		}
	}
	req, err := oip.DecodeRequest(buf.Bytes(), headerLen)
	if err != nil {
		return err
	}
	req.ModelName, req.ModelVersion = r.PathValue("model"), r.PathValue("version")
	arrived()
	resp, err := s.Infer(r.Context(), req)
	if err != nil {
		return err
	}
	p := outPool.Get().(*[]byte)
	body, hl, err := oip.EncodeResponse((*p)[:0], resp)
	if err != nil {
		return err
	}
	if hl >= 0 {
		w.Header().Set(oip.HeaderContentLength, strconv.Itoa(hl))
		w.Header().Set("Content-Type", "application/octet-stream")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	writeBody(w, p, body)
	return nil
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) error {
	buf, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	defer bufPool.Put(buf)
	var req struct {
		Ready bool `json:"ready"`
	}
	if b := bytes.TrimSpace(buf.Bytes()); len(b) > 0 {
		if err := json.Unmarshal(b, &req); err != nil {
			return fmt.Errorf("%w: invalid JSON: %w", oip.ErrBadRequest, err)
		}
	}
	idx, err := s.Index(req.Ready)
	if err != nil {
		return err
	}
	if idx == nil {
		idx = []IndexEntry{}
	}
	writeJSON(w, http.StatusOK, idx)
	return nil
}

func (s *Server) load(w http.ResponseWriter, r *http.Request) error {
	if err := s.Load(r.Context(), r.PathValue("model")); err != nil {
		if errors.Is(err, ErrModelNotFound) {
			return err
		}
		return fmt.Errorf("%w: %w", errLoadFailed, err)
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) unload(w http.ResponseWriter, r *http.Request) error {
	if err := s.Unload(r.Context(), r.PathValue("model")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) v1Status(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("model")
	ok, err := s.ModelReady(name, "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "ready": ok})
	return nil
}

func (s *Server) v1Predict(w http.ResponseWriter, r *http.Request) error {
	name, ok := strings.CutSuffix(r.PathValue("target"), ":predict")
	if !ok {
		return &httpError{code: http.StatusNotFound, msg: fmt.Sprintf("no endpoint POST %s (want /v1/models/NAME:predict)", r.URL.Path)}
	}
	return s.predictV1(w, r, name)
}

// predict serves the founding example's POST /predict on the default model.
func (s *Server) predict(w http.ResponseWriter, r *http.Request) error {
	name := s.cfg.DefaultModel
	if name == "" {
		s.mu.RLock()
		for n, m := range s.models {
			if m.def != nil {
				if name != "" {
					name = ""
					break
				}
				name = n
			}
		}
		s.mu.RUnlock()
		if name == "" {
			return fmt.Errorf("%w: /predict needs exactly one serving model or a default model; use /v1/models/NAME:predict", oip.ErrBadRequest)
		}
	}
	return s.predictV1(w, r, name)
}

// predictV1 maps a V1 body onto the model's first input and answers with
// its first output.
func (s *Server) predictV1(w http.ResponseWriter, r *http.Request, name string) error {
	sig, err := s.signature(name)
	if err != nil {
		return err
	}
	if len(sig.Inputs) != 1 || len(sig.Outputs) == 0 {
		return fmt.Errorf("%w: model %q has %d inputs and %d outputs; the V1 instances API needs one input and an output (use /v2)", oip.ErrBadRequest, name, len(sig.Inputs), len(sig.Outputs))
	}
	buf, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	defer bufPool.Put(buf)
	v1, err := oip.DecodeV1(buf.Bytes())
	if err != nil {
		return err
	}
	dt := sig.Inputs[0].DType
	if dt == tensor.Invalid {
		dt = tensor.FP32
	}
	in, err := v1.Tensor(sig.Inputs[0].Name, dt)
	if err != nil {
		return err
	}
	resp, err := s.Infer(r.Context(), &oip.InferRequest{
		ModelName: name, Inputs: []*tensor.Tensor{in},
		Outputs: []oip.RequestedOutput{{Name: sig.Outputs[0].Name}},
	})
	if err != nil {
		return err
	}
	p := outPool.Get().(*[]byte)
	body, err := oip.EncodeV1((*p)[:0], resp.Outputs[0])
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	writeBody(w, p, body)
	return nil
}
