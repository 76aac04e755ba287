package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/shoal-ml/shoal/internal/gateway"
)

// The routing-table part of the control API, for gateways that run apart
// from the control plane (gateway.ControlSource):
//
//	GET  /v1/routes                           the routing table (JSON, the routes-file format)
//	GET  /v1/routes?watch=true[&heartbeat=D]  a stream of JSON lines: {"type":"routes","routes":TABLE}
//	                                          first and on each change, {"type":"heartbeat"} every D
//	                                          (default 5s, 10ms to 5m) while nothing changes
//	POST /v1/deployments/{name}/activate      ask for a replica of a deployment scaled to zero (202)
//
// Without APIConfig.Routes (or ScaleUp) these answer 501.
func (a *api) registerRoutes(h func(string, func(http.ResponseWriter, *http.Request) error)) {
	h("GET /v1/routes", a.routes)
	h("POST /v1/deployments/{name}/activate", a.activate)
}

// notServed answers 501 for a part of the API this control plane was
// not given.
func notServed(w http.ResponseWriter, what string) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotImplemented)
	b, _ := json.Marshal(map[string]string{"error": "control: " + what + " is not served by this control plane"})
	_, err := w.Write(append(b, '\n'))
	return err
}

func (a *api) routes(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.Routes == nil {
		return notServed(w, "the routing table")
	}
	q := r.URL.Query()
	watch := q.Get("watch")
	if watch != "" && watch != "true" && watch != "false" {
		return fmt.Errorf("%w: watch %q: want true or false", ErrBadRequest, watch)
	}
	hb := 5 * time.Second
	if s := q.Get("heartbeat"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 10*time.Millisecond || d > 5*time.Minute {
			return fmt.Errorf("%w: heartbeat %q: want a duration from 10ms to 5m", ErrBadRequest, s)
		}
		hb = d
	}

	ctx, cancel := context.WithCancel(r.Context())
	var wg sync.WaitGroup
	defer wg.Wait() // Watch has returned before the handler does
	defer cancel()
	var mu sync.Mutex
	var latest *gateway.Table
	changed := make(chan struct{}, 1)
	stopped := make(chan error, 1) // the source's Watch returned
	wg.Add(1)
	go func() {
		defer wg.Done()
		// update must not block: a TableSource calls it under its lock.
		stopped <- a.cfg.Routes.Watch(ctx, func(t *gateway.Table) {
			mu.Lock()
			latest = t
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	}()
	take := func() *gateway.Table {
		mu.Lock()
		defer mu.Unlock()
		t := latest
		latest = nil
		return t
	}

	if watch != "true" {
		select {
		case <-changed:
		case err := <-stopped:
			if t := take(); t != nil { // a table came before the end
				return writeJSON(w, t)
			}
			if err == nil {
				err = errors.New("control: the routing table's source stopped")
			}
			return err
		case <-ctx.Done():
			return nil
		}
		return writeJSON(w, take())
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := w.Write(append(b, '\n')); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := rc.Flush(); err != nil { // the headers, before any table
		return nil
	}
	tick := time.NewTicker(hb)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-stopped:
			return nil // the stream ends; the gateway watches again
		case <-changed:
			if t := take(); t != nil {
				err = send(routesEvent{Type: "routes", Routes: t})
				tick.Reset(hb)
			}
		case <-tick.C:
			err = send(routesEvent{Type: "heartbeat"})
		}
		if err != nil {
			return nil // the gateway went away; the status line is gone
		}
	}
}

// routesEvent is one line of the routes watch.
type routesEvent struct {
	Type   string         `json:"type"`
	Routes *gateway.Table `json:"routes,omitempty"`
}

func (a *api) activate(w http.ResponseWriter, r *http.Request) error {
	if a.cfg.ScaleUp == nil {
		return notServed(w, "activation")
	}
	name := r.PathValue("name")
	if _, err := a.cfg.Store.Get(name); err != nil {
		return err
	}
	if err := a.cfg.ScaleUp(r.Context(), name); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	b, _ := json.Marshal(map[string]string{"activating": name})
	_, err := w.Write(append(b, '\n'))
	return err
}
