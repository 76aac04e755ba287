package docker

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/shoal-ml/shoal/internal/registry"
)

// TestOCIModel runs a replica whose model is an oci:// artifact in a
// registry on this host: the backend pulls it into its cache, packages
// it, and the container answers predictions. Without a cache, such a
// model is refused at Start.
func TestOCIModel(t *testing.T) {
	api := engine(t)
	reg, err := registry.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	cl := &registry.Client{Keychain: authn.NewMultiKeychain()}
	src, err := registry.Scan(modelDir(t))
	if err != nil {
		t.Fatal(err)
	}
	a, err := registry.Build(src, registry.Config{Models: []registry.Model{{Name: "iris", Format: "xgboost", Versions: []registry.Version{{Version: "1"}}}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ref := registry.Scheme + strings.TrimPrefix(srv.URL, "http://") + "/models/iris:1"
	digest, err := cl.Push(t.Context(), a, ref)
	if err != nil {
		t.Fatal(err)
	}

	cfg, _ := testConfig(t, api)
	plain, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Start(Spec{Deployment: "iris", Revision: "iris-oci", Model: ref}); err == nil || !strings.Contains(err.Error(), "no model cache") {
		t.Errorf("Start(oci model) without Config.Models: %v, want a refusal", err)
	}
	plain.Close()

	cfg.Models = &registry.Cache{Dir: t.TempDir(), Client: cl}
	b, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Start(Spec{Deployment: "iris", Revision: "iris-bad", Model: "oci://"}); err == nil {
		t.Error("Start(oci://) = nil error, want a bad reference")
	}
	pinned := ref + "@" + digest.String()
	if _, err := b.Start(Spec{Deployment: "iris", Revision: "iris-oci", Model: pinned}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "ready", func() bool { return one(t, b).Ready })
	if err := predict("http://" + one(t, b).HTTP); err != nil {
		t.Fatal(err)
	}
}
