package onnx

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// conformanceDir is the ONNX backend test data, in the shared directory
// beside the repository clone.
const conformanceDir = "../../../../shared/conformance/onnx"

// minPassRate is the committed floor of passed / (passed + failed) on the
// ONNX conformance suite: raise it as operators are fixed.
const minPassRate = 0.99

func TestConformance(t *testing.T) {
	if _, err := os.Stat(conformanceDir); err != nil {
		t.Skipf("ONNX conformance data not found at %s (the shared directory beside the repository): %v", conformanceDir, err)
	}
	if testing.Short() {
		t.Skip("the conformance suite takes a while; run without -short")
	}
	rep, err := RunConformance(context.Background(), conformanceDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, f, u := rep.Counts()
	t.Logf("ONNX conformance: %d passed, %d failed, %d unsupported; pass rate of claimed %.1f%%", p, f, u, 100*rep.PassRate())
	for _, r := range rep.Results {
		if r.Outcome == Failed {
			t.Logf("failed %s/%s: %s", r.Suite, r.Name, r.Reason)
		}
	}
	if got := rep.PassRate(); got < minPassRate {
		t.Errorf("pass rate of claimed tests = %.3f, want >= %.3f", got, minPassRate)
	}
	if out := os.Getenv("SHOAL_ONNX_REPORT"); out != "" {
		f, err := os.Create(filepath.Clean(out))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := rep.WriteMarkdown(f); err != nil {
			t.Fatal(err)
		}
	}
}
