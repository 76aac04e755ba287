package pack_test

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-ml/shoal/internal/pack"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// foundingRepo lays out the founding example (a Flask predict.py and its
// pickled model) as a model repository for the http backend.
func foundingRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir+"/iris/model.yaml", `format: http
inputs:
  - {name: input, datatype: FP32, shape: [-1, 4]}
outputs:
  - {name: predictions, datatype: INT64, shape: [-1]}
parameters:
  command: python3 predict.py
`)
	writeFile(t, dir+"/iris/1/predict.py", "# the founding Flask app\n")
	writeFile(t, dir+"/iris/1/model.pkl", "pickle")
	return dir
}

func TestContextForTheFoundingExample(t *testing.T) {
	models := foundingRepo(t)
	reqs := filepath.Join(t.TempDir(), "requirements.txt")
	writeFile(t, reqs, "flask\nscikit-learn\nnumpy\n")
	bin := staticBinary(t)
	out := filepath.Join(t.TempDir(), "ctx")
	got, err := pack.Context(context.Background(), pack.ContextOptions{
		ModelDir: models, Binary: bin, PythonBase: "python:3.11-slim",
		Requirements: reqs, Source: "https://github.com/shoal-ml/shoal", Dir: out,
	})
	if err != nil {
		t.Fatalf("Context: %v", err)
	}
	if len(got) != 1 || got[0].Name != "iris" || got[0].Format != "http" || !got[0].Custom() || got[0].Signature != "" {
		t.Errorf("Context models = %+v, want iris, http, custom, no signature", got)
	}
	df, err := os.ReadFile(filepath.Join(out, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "founding.Dockerfile")
	if *update {
		if err := os.WriteFile(golden, df, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(df) != string(want) {
		t.Errorf("Dockerfile differs from %s (go test -update rewrites it):\n%s", golden, df)
	}
	for _, f := range []string{"shoal", "requirements.txt", "models/iris/model.yaml", "models/iris/1/predict.py", "models/iris/1/model.pkl"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("build context lacks %s: %v", f, err)
		}
	}
	if st, err := os.Stat(filepath.Join(out, "shoal")); err == nil && st.Mode()&0o111 == 0 {
		t.Errorf("shoal in the build context has mode %v, want executable", st.Mode())
	}

	// A second write into the same directory is refused.
	_, err = pack.Context(context.Background(), pack.ContextOptions{ModelDir: models, Binary: bin, PythonBase: "python:3.11-slim", Dir: out})
	if !errors.Is(err, pack.ErrContextDirNotEmpty) {
		t.Errorf("Context into a full directory: %v, want ErrContextDirNotEmpty", err)
	}
}

func TestContextAddsNumpyForThePythonBackend(t *testing.T) {
	models := t.TempDir()
	writeFile(t, models+"/clf/1/model.yaml", "format: python\nparameters:\n  allow_pickle: \"true\"\n")
	writeFile(t, models+"/clf/1/model.pkl", "pickle")
	for _, tc := range []struct {
		name     string
		packages []string
		wantPip  string
	}{
		{"none listed", nil, "RUN pip install --no-cache-dir numpy\n"},
		{"scikit-learn listed", []string{"scikit-learn==1.5.2"}, "RUN pip install --no-cache-dir scikit-learn==1.5.2 numpy\n"},
		{"numpy pinned", []string{"numpy<2", "scikit-learn"}, "RUN pip install --no-cache-dir 'numpy<2' scikit-learn\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "ctx")
			_, err := pack.Context(context.Background(), pack.ContextOptions{
				ModelDir: models, Binary: staticBinary(t), PythonBase: "python:3.11-slim", Packages: tc.packages, Dir: out,
			})
			if err != nil {
				t.Fatal(err)
			}
			df, _ := os.ReadFile(filepath.Join(out, "Dockerfile"))
			if !strings.Contains(string(df), tc.wantPip) {
				t.Errorf("Dockerfile lacks %q:\n%s", tc.wantPip, df)
			}
		})
	}
}

func TestContextRefuses(t *testing.T) {
	models := foundingRepo(t)
	dyn := filepath.Join(t.TempDir(), "dyn")
	writeELF(t, dyn, true)
	for _, tc := range []struct {
		name string
		o    pack.ContextOptions
		want string
	}{
		{"no base", pack.ContextOptions{ModelDir: models, Dir: t.TempDir()}, "PythonBase"},
		{"dynamic binary", pack.ContextOptions{ModelDir: models, Binary: dyn, PythonBase: "python:3.11-slim", Dir: t.TempDir()}, "dynamically linked"},
		{"shell in a package", pack.ContextOptions{ModelDir: models, Binary: staticBinary(t), PythonBase: "python:3.11-slim", Packages: []string{"x; rm -rf /"}, Dir: t.TempDir()}, "pip package"},
		{"missing requirements", pack.ContextOptions{ModelDir: models, Binary: staticBinary(t), PythonBase: "python:3.11-slim", Requirements: "/nonexistent/requirements.txt", Dir: t.TempDir()}, "requirements"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pack.Context(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Context: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
