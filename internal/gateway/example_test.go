package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/shoal-ml/shoal/internal/gateway"
)

// Example routes a request through a gateway to a replica. The replica
// here is a stand-in; in production it is `shoal serve`.
func Example() {
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"model_name":"iris","path":%q}`, r.URL.Path)
	}))
	defer replica.Close()

	table, err := gateway.ParseTable([]byte(`
models:
  iris:
    revisions:
      - name: v1
        weight: 1
        replicas: [{http: "` + replica.Listener.Addr().String() + `"}]
`))
	if err != nil {
		panic(err)
	}
	g, err := gateway.New(gateway.Config{Source: gateway.StaticSource{Table: table}, ProbeInterval: -1})
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Serve(ctx, l, nil) }()
	defer func() { stop(); <-done }()
	<-g.Loaded() // Serve reads the table in the background

	resp, err := http.Post("http://"+l.Addr().String()+"/v2/models/iris/infer", "application/json", strings.NewReader(`{"inputs":[]}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, resp.Header.Get(gateway.HeaderRevision), string(body))
	// Output: 200 v1 {"model_name":"iris","path":"/v2/models/iris/infer"}
}

// ExampleControlSource runs a gateway apart from its control plane: it
// watches the control plane's routing table (GET /v1/routes?watch=true,
// which `shoal up` serves; here a stand-in that sends one table and holds
// the stream open) and would ask it to scale up models at zero.
func ExampleControlSource() {
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/routes" || r.URL.Query().Get("watch") != "true" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		fmt.Fprintln(w, `{"type":"routes","routes":{"models":{"iris":{"revisions":[{"name":"v1","weight":1,"replicas":[{"http":"10.0.0.5:8080"}]}]}}}}`)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // until the gateway goes
	}))
	defer control.Close()

	cs := &gateway.ControlSource{URL: control.URL}
	g, err := gateway.New(gateway.Config{Source: cs, ScaleUp: cs.ScaleUp, ProbeInterval: -1})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Run(ctx) }()
	<-g.Loaded()
	fmt.Println(g.Table().Models["iris"].Revisions[0].Replicas[0].HTTP)
	stop()
	<-done
	control.CloseClientConnections()
	// Output: 10.0.0.5:8080
}
