package onnx

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestConformanceSubset runs the conformance tests whose suite/name
// matches SHOAL_ONNX_CONF (a regular expression) and logs each outcome: a
// quick loop while working on a family of operators.
func TestConformanceSubset(t *testing.T) {
	pat := os.Getenv("SHOAL_ONNX_CONF")
	if pat == "" {
		t.Skip("set SHOAL_ONNX_CONF to a regular expression of suite/test names")
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := filepath.Glob(filepath.Join(conformanceDir, "*", "*"))
	for _, d := range dirs {
		name := filepath.Base(filepath.Dir(d)) + "/" + filepath.Base(d)
		if !re.MatchString(name) {
			continue
		}
		res := runTest(context.Background(), d, DefaultOps())
		t.Logf("%s: %v %s", name, res.Outcome, res.Reason)
	}
}
