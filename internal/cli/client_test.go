package cli

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDescribeTrafficAndResources: shoal describe shows spec.traffic and
// spec.resources, against a control API that answers as shoal up does.
func TestDescribeTrafficAndResources(t *testing.T) {
	const obj = `{"apiVersion":"shoal.dev/v1alpha1","kind":"ModelDeployment","metadata":{"name":"iris"},
"spec":{"model":{"uri":"/m"},"scaling":{"minReplicas":1,"maxReplicas":2},
"traffic":{"split":[{"revision":"previous","weight":90},{"revision":"latest","weight":10}],"mirror":{"revision":"previous","percent":5}},
"resources":{"cpu":"500m"}}}`
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/deployments/iris", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(obj)) })
	mux.HandleFunc("GET /v1/deployments/iris/replicas", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("[]")) })
	mux.HandleFunc("GET /v1/deployments/iris/events", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("[]")) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := Run(t.Context(), []string{"describe", "iris", "-control", strings.TrimPrefix(srv.URL, "http://")}, &out, &errb); code != 0 {
		t.Fatalf("shoal describe = %d %s", code, errb.String())
	}
	for _, want := range []string{"previous 90%, latest 10%, mirror 5% to previous", "cpu 500m, memory -"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("shoal describe:\n%s\nwant %q", out.String(), want)
		}
	}
}
