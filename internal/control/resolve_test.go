package control

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/control/store"
)

// TestApplyPinsTheModel: the control API stores the model URI that
// ResolveModel returns, so the revision follows the digest a tag named at
// apply time. (internal/cli's up test resolves against a real registry.)
func TestApplyPinsTheModel(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	digest := "sha256:1111"
	resolve := func(ctx context.Context, uri string) (string, error) {
		if strings.HasSuffix(uri, ":missing") {
			return "", errors.New("manifest unknown")
		}
		if strings.HasPrefix(uri, "oci://") && !strings.Contains(uri, "@") {
			return uri + "@" + digest, nil
		}
		return uri, nil
	}
	srv := httptest.NewServer(Handler(APIConfig{Store: st, ResolveModel: resolve}))
	defer srv.Close()
	apply := func(uri string) (int, v1alpha1.ModelDeployment, string) {
		body := "apiVersion: shoal.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: iris}\nspec: {model: {uri: \"" + uri + "\"}}\n"
		resp, err := http.Post(srv.URL+"/v1/deployments", "application/yaml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out []v1alpha1.ModelDeployment
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(b, &out); err != nil || len(out) != 1 {
				t.Fatalf("apply: %s", b)
			}
			return resp.StatusCode, out[0], string(b)
		}
		return resp.StatusCode, v1alpha1.ModelDeployment{}, string(b)
	}
	const tag = "oci://127.0.0.1:8070/models/iris:1"
	_, d1, _ := apply(tag)
	if d1.Spec.Model.URI != tag+"@sha256:1111" {
		t.Errorf("applied %s, stored %s, want it pinned", tag, d1.Spec.Model.URI)
	}
	_, again, _ := apply(tag)
	if RevisionName(&again) != RevisionName(&d1) {
		t.Errorf("re-applying an unmoved tag changed the revision: %s -> %s", RevisionName(&d1), RevisionName(&again))
	}
	digest = "sha256:2222" // the tag moves
	_, d2, _ := apply(tag)
	if d2.Spec.Model.URI != tag+"@sha256:2222" || RevisionName(&d2) == RevisionName(&d1) {
		t.Errorf("after the tag moved: uri %s revision %s, want a new pinned revision", d2.Spec.Model.URI, RevisionName(&d2))
	}
	code, _, body := apply("oci://127.0.0.1:8070/models/iris:missing")
	if code != 400 || !strings.Contains(body, "manifest unknown") || !strings.Contains(body, `"error"`) {
		t.Errorf("apply of an unresolvable tag = %d %s, want 400 with the reason", code, body)
	}
}
