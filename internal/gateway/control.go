package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ControlSource discovers the routing table from a shoal control plane's
// API, for a gateway that runs apart from it (`shoal gateway -control
// URL`). It watches GET /v1/routes?watch=true, a stream of JSON lines:
//
//	{"type": "routes", "routes": TABLE}   the whole table, first and on each change
//	{"type": "heartbeat"}                 while the table does not change
//
// When the control plane cannot be reached, or the stream breaks or
// falls silent for three heartbeats, ControlSource keeps the last good
// table and connects again with exponential backoff (and jitter). A
// table that does not validate is reported through OnError and skipped.
// Its ScaleUp method is the gateway's Config.ScaleUp for the same control
// plane (POST /v1/deployments/{model}/activate).
//
// Set the fields before the first call; its methods are then safe for
// concurrent use.
type ControlSource struct {
	// URL of the control API, such as "http://10.0.0.2:8070". Required.
	URL string
	// Client sends the requests (set its Transport for TLS). Nil means
	// http.DefaultClient. Its Timeout, if any, must exceed a watch's
	// lifetime, so leave it zero.
	Client *http.Client
	// Token, when set, is sent as "Authorization: Bearer TOKEN", for a
	// control API that requires keys (shoal up -control-keys). Empty
	// sends no credentials.
	Token string
	// Heartbeat is the interval at which the control plane is asked to
	// send heartbeats; a watch that hears nothing for three of them is
	// dropped and opened again. Zero means 5s.
	Heartbeat time.Duration
	// MinBackoff and MaxBackoff bound the wait before connecting again;
	// it doubles after each failed attempt and starts over once a table
	// arrives. Zero means 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// OnError receives each failed attempt and each bad table. Nil
	// ignores them.
	OnError func(error)
}

// ErrControl wraps the errors of the control plane's answers.
var ErrControl = errors.New("gateway: control plane")

// Watch follows the control plane's routing table until ctx is done,
// calling update with each table; it returns nil then. It only returns
// early, with an error, when URL is not an http or https URL. Before the
// first table arrives the gateway is not ready (Gateway.Ready).
func (s *ControlSource) Watch(ctx context.Context, update func(*Table)) error {
	base, err := s.base()
	if err != nil {
		return err
	}
	hb := s.Heartbeat
	if hb <= 0 {
		hb = 5 * time.Second
	}
	watchURL := base + "/v1/routes?watch=true&heartbeat=" + url.QueryEscape(hb.String())
	return Reconnect(ctx, s.MinBackoff, s.MaxBackoff, func(ctx context.Context) (bool, error) {
		return s.watchOnce(ctx, watchURL, hb, update)
	}, s.OnError)
}

// watchOnce reads one watch stream until it ends; got reports whether it
// delivered a table.
func (s *ControlSource) watchOnce(ctx context.Context, u string, hb time.Duration, update func(*Table)) (got bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	silent := time.AfterFunc(3*hb, cancel) // no answer, or a silent stream
	defer silent.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	s.authorize(req)
	resp, err := s.client().Do(req)
	if err != nil {
		return false, fmt.Errorf("%w: watch: %v", ErrControl, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, answerError("watch", resp)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var ev struct {
			Type   string          `json:"type"`
			Routes json.RawMessage `json:"routes"`
		}
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil { // silent (or ctx done: the caller ignores it)
				return got, fmt.Errorf("%w: watch: nothing heard for %v", ErrControl, 3*hb)
			}
			return got, fmt.Errorf("%w: watch: %v", ErrControl, err)
		}
		silent.Reset(3 * hb)
		switch ev.Type {
		case "routes":
			t, err := DecodeTable(ev.Routes)
			if err != nil {
				if s.OnError != nil {
					s.OnError(err)
				}
				continue
			}
			got = true
			update(t)
		case "heartbeat":
		default: // a newer control plane's event: ignored
		}
	}
}

// ScaleUp asks the control plane for a replica of model (POST
// /v1/deployments/{model}/activate); it returns once the control plane has
// taken the request. Use it as Config.ScaleUp.
func (s *ControlSource) ScaleUp(ctx context.Context, model string) error {
	base, err := s.base()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/deployments/"+url.PathEscape(model)+"/activate", nil)
	if err != nil {
		return err
	}
	s.authorize(req)
	resp, err := s.client().Do(req)
	if err != nil {
		return fmt.Errorf("%w: activate %s: %v", ErrControl, model, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return answerError("activate "+model, resp)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return nil
}

func (s *ControlSource) base() (string, error) {
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("gateway: ControlSource.URL %q: want http(s)://HOST:PORT", s.URL)
	}
	return strings.TrimRight(s.URL, "/"), nil
}

// authorize adds the Token to req.
func (s *ControlSource) authorize(req *http.Request) {
	if s.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
}

func (s *ControlSource) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return http.DefaultClient
}

// answerError reads a control plane's {"error": "..."} answer.
func answerError(what string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return fmt.Errorf("%w: %s: %s: %s", ErrControl, what, resp.Status, msg)
}

// DecodeTable reads a routing table from JSON, strictly (unknown fields
// are errors), and validates it. It is the JSON-only, faster sibling of
// ParseTable.
func DecodeTable(b []byte) (*Table, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var t Table
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	if t.Models == nil {
		t.Models = map[string]Model{}
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}
