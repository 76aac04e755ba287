package registry_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/shoal-ml/shoal/internal/registry"
)

// Push a model directory as an artifact and pull it back. shoal push
// learns Config by loading the model; here it is written out.
func ExampleClient() {
	root, err := os.MkdirTemp("", "shoal-registry-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	reg, err := registry.Open(filepath.Join(root, "registry"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg)
	defer srv.Close()
	ref := "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/models/demo:1"

	model := filepath.Join(root, "demo")
	os.MkdirAll(filepath.Join(model, "1"), 0o755)
	os.WriteFile(filepath.Join(model, "1", "model.yaml"), []byte("format: xgboost\n"), 0o644)
	src, err := registry.Scan(model)
	if err != nil {
		log.Fatal(err)
	}
	a, err := registry.Build(src, registry.Config{Models: []registry.Model{{
		Name: "demo", Format: "xgboost",
		Versions: []registry.Version{{Version: "1",
			Inputs:  []registry.Tensor{{Name: "x", Datatype: "FP32", Shape: []int64{-1, 2}}},
			Outputs: []registry.Tensor{{Name: "y", Datatype: "FP32", Shape: []int64{-1}}}}},
	}}}, "")
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()

	c := &registry.Client{Keychain: authn.NewMultiKeychain()} // no credentials
	ctx := context.Background()
	digest, err := c.Push(ctx, a, ref)
	if err != nil {
		log.Fatal(err)
	}
	pinned, _ := c.Resolve(ctx, ref)
	p, err := c.Pull(ctx, pinned, filepath.Join(root, "pulled"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(pinned == ref+"@"+digest.String(), p.Digest == digest, p.Config.Models[0].Name)
	// Output: true true demo
}
