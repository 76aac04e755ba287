package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/control/store"
	"github.com/shoal-ml/shoal/internal/gateway"
	"github.com/shoal-ml/shoal/internal/rollout"
)

// ErrBadRequest is wrapped by the API's errors about a request's content
// (400).
var ErrBadRequest = errors.New("control: bad request")

// APIConfig configures the control API's handler.
type APIConfig struct {
	// Store holds the objects. Required.
	Store *store.Store
	// Replicas lists the running replicas (Backend.List). Nil lists none.
	Replicas func() []Replica
	// LogPath returns the log file of a replica. Nil means no logs.
	LogPath func(id string) string
	// Logs returns the last tail lines of a replica's output
	// (Backends.Logs). Nil means LogPath is read instead.
	Logs func(ctx context.Context, id string, tail int) ([]byte, error)
	// GatewayURL is reported by GET /v1/info. Empty reports none.
	GatewayURL string
	// Rollout gives a command to a canary rollout (Controller.Rollout).
	// Nil means canary commands are refused.
	Rollout func(ctx context.Context, name, cmd string) error
	// Routes is the gateway's routing table, served by GET /v1/routes to
	// standalone gateways (Controller.Source; see routes_api.go). Nil
	// answers 501.
	Routes gateway.Source
	// ScaleUp asks for a replica of a deployment scaled to zero, for POST
	// /v1/deployments/{name}/activate (Controller.ScaleUp). Nil answers 501.
	ScaleUp func(ctx context.Context, name string) error
	// ResolveModel pins the model URI of each applied deployment (see
	// ResolveModel). Nil stores URIs as they are applied.
	ResolveModel ResolveModel
}

// Handler returns the control API (REST and JSON):
//
//	GET    /v1/info                              {"gateway": URL}
//	GET    /v1/deployments                       list
//	POST   /v1/deployments                       apply (YAML or JSON, one or more objects): create or update each
//	GET    /v1/deployments/{name}                one object with its status
//	DELETE /v1/deployments/{name}                delete (its replicas are drained and stopped)
//	GET    /v1/deployments/{name}/events         recorded events, oldest first
//	GET    /v1/deployments/{name}/replicas       running replicas
//	GET    /v1/deployments/{name}/logs?tail=N    the replicas' output, last N lines each (default 100)
//	POST   /v1/deployments/{name}/scale          {"replicas": N}: pin min and max replicas to N
//	POST   /v1/deployments/{name}/rollout/{cmd}  pause, resume, promote or undo the rollout
//	GET    /v1/watch                             a stream of {"type", "object"} JSON lines
//
// Errors are {"error": "..."} with 400, 404, 409 or 500 (and 401 from
// RequireKey in front of it).
func Handler(cfg APIConfig) http.Handler {
	a := &api{cfg: cfg}
	mux := http.NewServeMux()
	h := func(pattern string, f func(http.ResponseWriter, *http.Request) error) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r); err != nil {
				writeError(w, err)
			}
		})
	}
	h("GET /v1/info", func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, map[string]string{"gateway": cfg.GatewayURL})
	})
	h("GET /v1/deployments", a.list)
	h("POST /v1/deployments", a.apply)
	h("GET /v1/deployments/{name}", a.get)
	h("DELETE /v1/deployments/{name}", a.delete)
	h("GET /v1/deployments/{name}/events", a.events)
	h("GET /v1/deployments/{name}/replicas", a.replicas)
	h("GET /v1/deployments/{name}/logs", a.logs)
	h("POST /v1/deployments/{name}/scale", a.scale)
	h("POST /v1/deployments/{name}/rollout/{cmd}", a.rollout)
	h("GET /v1/watch", a.watch)
	a.registerRoutes(h) // GET /v1/routes, POST /v1/deployments/{name}/activate
	return mux
}

type api struct{ cfg APIConfig }

func (a *api) list(w http.ResponseWriter, r *http.Request) error {
	l, err := a.cfg.Store.List()
	if err != nil {
		return err
	}
	if l == nil {
		l = []v1alpha1.ModelDeployment{}
	}
	return writeJSON(w, l)
}

func (a *api) get(w http.ResponseWriter, r *http.Request) error {
	d, err := a.cfg.Store.Get(r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, d)
}

func (a *api) delete(w http.ResponseWriter, r *http.Request) error {
	if err := a.cfg.Store.Delete(r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// apply creates or updates each object of the body (YAML documents, or
// JSON, which is YAML). An update keeps the object's annotations of shoal
// and remembers the previous spec when the revision changes.
func (a *api) apply(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		return err
	}
	ds, err := v1alpha1.Decode(body)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	var out []v1alpha1.ModelDeployment
	for _, d := range ds {
		d.Default()
		if err := d.Validate(); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrBadRequest, d.Metadata.Name, err)
		}
		if err := PinModel(r.Context(), a.cfg.ResolveModel, &d); err != nil {
			return err
		}
		res, err := Apply(a.cfg.Store, d)
		if err != nil {
			return err
		}
		out = append(out, res)
	}
	return writeJSON(w, out)
}

// Apply creates d, or updates the stored object of its name with d's spec,
// labels and annotations (keeping shoal's own annotations, and recording
// the previous spec when the revision changes). d must be defaulted and
// valid. A traffic split or mirror naming a revision that is neither the
// new spec's nor the previous one is refused with an error wrapping
// ErrBadRequest.
//
// The control plane writes status at any time, which changes the stored
// resourceVersion: Apply reads and writes again (a few times) when its
// write conflicts with one.
func Apply(s *store.Store, d v1alpha1.ModelDeployment) (v1alpha1.ModelDeployment, error) {
	for try := 0; ; try++ {
		out, err := applyOnce(s, d)
		if !errors.Is(err, store.ErrConflict) || try == 4 {
			return out, err
		}
	}
}

func applyOnce(s *store.Store, d v1alpha1.ModelDeployment) (v1alpha1.ModelDeployment, error) {
	old, err := s.Get(d.Metadata.Name)
	if errors.Is(err, store.ErrNotFound) {
		if err := d.ValidateTraffic(knownRevisions(&d)); err != nil {
			return d, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		return s.Create(d)
	}
	if err != nil {
		return d, err
	}
	return update(s, old, func(n *v1alpha1.ModelDeployment) {
		n.Spec = d.Spec
		n.Metadata.Labels = d.Metadata.Labels
		keep := n.Metadata.Annotations
		n.Metadata.Annotations = map[string]string{}
		for k, v := range d.Metadata.Annotations {
			n.Metadata.Annotations[k] = v
		}
		for _, k := range []string{AnnotationPaused, AnnotationPreviousSpec} {
			if v, ok := keep[k]; ok {
				n.Metadata.Annotations[k] = v
			}
		}
	})
}

// update applies change to old and writes it, recording old's spec as the
// previous one when the revision changes.
func update(s *store.Store, old v1alpha1.ModelDeployment, change func(*v1alpha1.ModelDeployment)) (v1alpha1.ModelDeployment, error) {
	n := old
	n.Metadata.Annotations = map[string]string{}
	for k, v := range old.Metadata.Annotations {
		n.Metadata.Annotations[k] = v
	}
	change(&n)
	if n.Spec.RevisionHash() != old.Spec.RevisionHash() {
		raw, err := json.Marshal(old.Spec)
		if err != nil {
			return n, err
		}
		n.Metadata.Annotations[AnnotationPreviousSpec] = string(raw)
	}
	if err := n.ValidateTraffic(knownRevisions(&n)); err != nil {
		return n, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return s.Update(n)
}

func (a *api) events(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := a.cfg.Store.Get(name); err != nil {
		return err
	}
	ev, err := a.cfg.Store.Events(name)
	if err != nil {
		return err
	}
	if ev == nil {
		ev = []store.ObjectEvent{}
	}
	return writeJSON(w, ev)
}

func (a *api) replicasOf(name string) []Replica {
	out := []Replica{}
	if a.cfg.Replicas == nil {
		return out
	}
	for _, r := range a.cfg.Replicas() {
		if r.Deployment == name {
			out = append(out, r)
		}
	}
	return out
}

func (a *api) replicas(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, a.replicasOf(r.PathValue("name")))
}

func (a *api) logs(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := a.cfg.Store.Get(name); err != nil {
		return err
	}
	tail := 100
	if s := r.URL.Query().Get("tail"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: tail %q", ErrBadRequest, s)
		}
		tail = n
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if a.cfg.LogPath == nil && a.cfg.Logs == nil {
		return nil
	}
	for _, rep := range a.replicasOf(name) {
		var b []byte
		var err error
		if a.cfg.Logs != nil {
			b, err = a.cfg.Logs(r.Context(), rep.ID, tail)
		} else {
			b, err = os.ReadFile(a.cfg.LogPath(rep.ID))
		}
		if err != nil || len(b) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		for _, l := range lines[max(0, len(lines)-tail):] {
			fmt.Fprintf(w, "[%s] %s\n", rep.ID, l)
		}
	}
	return nil
}

func (a *api) scale(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Replicas *int32 `json:"replicas"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req.Replicas == nil || *req.Replicas < 0 {
		return fmt.Errorf("%w: want {\"replicas\": N} with N >= 0", ErrBadRequest)
	}
	old, err := a.cfg.Store.Get(r.PathValue("name"))
	if err != nil {
		return err
	}
	n := *req.Replicas
	d, err := update(a.cfg.Store, old, func(d *v1alpha1.ModelDeployment) {
		d.Spec.Scaling.MinReplicas = &n
		d.Spec.Scaling.MaxReplicas = max(n, 1)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, d)
}

func (a *api) rollout(w http.ResponseWriter, r *http.Request) error {
	old, err := a.cfg.Store.Get(r.PathValue("name"))
	if err != nil {
		return err
	}
	cmd := r.PathValue("cmd")
	if old.Spec.Rollout.Strategy == "canary" && a.cfg.Rollout != nil {
		err := a.cfg.Rollout(r.Context(), old.Metadata.Name, cmd)
		switch {
		case err == nil:
			d, err := a.cfg.Store.Get(old.Metadata.Name)
			if err != nil {
				return err
			}
			return writeJSON(w, d)
		case errors.Is(err, ErrNoCanary) && cmd == "undo":
			// Fall through: undo the last revision change.
		case errors.Is(err, ErrNoCanary), errors.Is(err, rollout.ErrFinished), errors.Is(err, rollout.ErrUnknownCommand):
			return fmt.Errorf("%w: %v", ErrBadRequest, err)
		default:
			return err
		}
	}
	var change func(*v1alpha1.ModelDeployment)
	switch cmd {
	case "pause":
		change = func(d *v1alpha1.ModelDeployment) { d.Metadata.Annotations[AnnotationPaused] = "true" }
	case "resume":
		change = func(d *v1alpha1.ModelDeployment) { delete(d.Metadata.Annotations, AnnotationPaused) }
	case "undo":
		prev := old.Metadata.Annotations[AnnotationPreviousSpec]
		if prev == "" {
			return fmt.Errorf("%w: %s has no previous revision to go back to", ErrBadRequest, old.Metadata.Name)
		}
		var spec v1alpha1.ModelDeploymentSpec
		if err := json.Unmarshal([]byte(prev), &spec); err != nil {
			return err
		}
		change = func(d *v1alpha1.ModelDeployment) {
			// Keep the scaling and rollout settings; go back to the old
			// revision's model and runtime.
			d.Spec.Model, d.Spec.Runtime, d.Spec.Backend, d.Spec.Resources = spec.Model, spec.Runtime, spec.Backend, spec.Resources
			delete(d.Metadata.Annotations, AnnotationPaused)
		}
	default:
		return fmt.Errorf("%w: rollout command %q (want pause, resume or undo; promote is for canary rollouts)", ErrBadRequest, cmd)
	}
	d, err := update(a.cfg.Store, old, change)
	if err != nil {
		return err
	}
	return writeJSON(w, d)
}

// watch streams the store's changes as JSON lines until the client goes.
func (a *api) watch(w http.ResponseWriter, r *http.Request) error {
	list, ch, err := a.cfg.Store.Watch(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	fl, _ := w.(http.Flusher)
	for _, d := range list {
		enc.Encode(store.Event{Type: store.Added, Object: d})
	}
	if fl != nil {
		fl.Flush()
	}
	for e := range ch {
		if err := enc.Encode(e); err != nil {
			return nil
		}
		if fl != nil {
			fl.Flush()
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeError converts an error to its status code and JSON body, once.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, store.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExists):
		code = http.StatusConflict
	case errors.Is(err, ErrBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, ErrUnauthenticated):
		code = http.StatusUnauthorized
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	w.Write(append(b, '\n'))
}
