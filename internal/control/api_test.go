package control

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/control/store"
)

// TestAPI drives the control API over a real store: apply, get, scale,
// a revision change remembered for undo, errors, delete.
func TestAPI(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(Handler(APIConfig{Store: st, GatewayURL: "http://127.0.0.1:1"}))
	defer srv.Close()
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	get := func() v1alpha1.ModelDeployment {
		code, body := do("GET", "/v1/deployments/iris", "")
		var d v1alpha1.ModelDeployment
		if code != 200 || json.Unmarshal([]byte(body), &d) != nil {
			t.Fatalf("GET iris = %d %s", code, body)
		}
		return d
	}
	const v1 = "apiVersion: shoal.dev/v1alpha1\nkind: ModelDeployment\nmetadata:\n  name: iris\nspec:\n  model:\n    uri: /m/v1\n"
	steps := []struct {
		method, path, body string
		code               int
		contains           string
	}{
		{"POST", "/v1/deployments", v1, 200, `"generation": 1`},
		{"POST", "/v1/deployments", "kind: Pod\n", 400, "not supported"},
		{"POST", "/v1/deployments", strings.Replace(v1, "/m/v1", "", 1), 400, "spec.model.uri"},
		{"GET", "/v1/deployments", "", 200, `"name": "iris"`},
		{"GET", "/v1/deployments/nope", "", 404, "not found"},
		{"POST", "/v1/deployments/iris/scale", `{"replicas": 3}`, 200, `"minReplicas": 3`},
		{"POST", "/v1/deployments/iris/scale", `{"replicas": -1}`, 400, "replicas"},
		{"POST", "/v1/deployments/iris/rollout/undo", "", 400, "no previous revision"},
		{"POST", "/v1/deployments/iris/rollout/sideways", "", 400, "rollout command"},
		{"POST", "/v1/deployments", strings.Replace(v1, "/m/v1", "/m/v2", 1), 200, `"generation": 3`},
		{"POST", "/v1/deployments/iris/rollout/pause", "", 200, AnnotationPaused},
		{"GET", "/v1/info", "", 200, "127.0.0.1:1"},
		{"GET", "/v1/deployments/iris/events", "", 200, "[]"},
	}
	for _, s := range steps {
		code, body := do(s.method, s.path, s.body)
		if code != s.code || !strings.Contains(body, s.contains) {
			t.Errorf("%s %s = %d %s, want %d containing %q", s.method, s.path, code, body, s.code, s.contains)
		}
	}
	d := get()
	if d.Spec.Model.URI != "/m/v2" || *d.Spec.Scaling.MinReplicas != 1 {
		// apply replaces the whole spec: the scale of 3 is gone with it.
		t.Errorf("after re-apply: uri %q min %d, want /m/v2 and 1", d.Spec.Model.URI, *d.Spec.Scaling.MinReplicas)
	}
	if code, body := do("POST", "/v1/deployments/iris/rollout/undo", ""); code != 200 {
		t.Fatalf("undo = %d %s", code, body)
	}
	d = get()
	if d.Spec.Model.URI != "/m/v1" || d.Metadata.Annotations[AnnotationPaused] != "" {
		t.Errorf("after undo: uri %q annotations %v, want /m/v1 and not paused", d.Spec.Model.URI, d.Metadata.Annotations)
	}
	if code, _ := do("DELETE", "/v1/deployments/iris", ""); code != 204 {
		t.Errorf("DELETE = %d, want 204", code)
	}
	if code, _ := do("DELETE", "/v1/deployments/iris", ""); code != 404 {
		t.Errorf("second DELETE = %d, want 404", code)
	}
}
