package pack_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/shoal-ml/shoal/internal/cli"
	"github.com/shoal-ml/shoal/internal/pack"
)

// TestPackageCommand runs `shoal package` (internal/cli, which owns the
// flags) for its outputs and its errors: exit code and message.
func TestPackageCommand(t *testing.T) {
	bin := staticBinary(t)
	tmp := t.TempDir()
	unknown := t.TempDir()
	writeFile(t, unknown+"/m/1/model.yaml", "format: sklearn\n")
	custom := foundingRepo(t)

	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		{"layout", []string{repo, "-t", "iris:1", "-layout", tmp + "/oci", "-binary", bin}, 0, "iris:1 sha256:", "layer 2: model repository"},
		{"tarball, flags first, quiet", []string{"-q", "-t", "iris:1", "-o", tmp + "/iris.tar", "-binary", bin, repo}, 0, "2 layers", ""},
		{"build context", []string{custom, "-python-base", "python:3.11-slim", "-context", tmp + "/ctx", "-pip", "flask", "-binary", bin, "-t", "iris:1"}, 0, "docker build -t iris:1 " + tmp + "/ctx", ""},
		{"missing model", []string{tmp + "/nope", "-t", "x:1", "-o", tmp + "/x.tar", "-binary", bin}, 1, "", "no such file"},
		{"unknown format", []string{unknown, "-t", "x:1", "-o", tmp + "/x.tar", "-binary", bin}, 1, "", `unknown format "sklearn"`},
		{"custom code", []string{custom, "-t", "x:1", "-o", tmp + "/x.tar", "-binary", bin}, 1, "", "-python-base"},
		{"no output", []string{repo, "-t", "x:1", "-binary", bin}, 2, "", "-o FILE, -layout DIR or -push REF"},
		{"no tag", []string{repo, "-o", tmp + "/x.tar", "-binary", bin}, 2, "", "need -t"},
		{"two models", []string{repo, repo, "-t", "x:1", "-o", tmp + "/x.tar"}, 2, "", "want one model"},
		{"context without base", []string{custom, "-context", tmp + "/ctx2", "-t", "x:1", "-o", tmp + "/x.tar"}, 2, "", "go with -python-base"},
		{"bad created", []string{repo, "-t", "x:1", "-o", tmp + "/x.tar", "-created", "yesterday"}, 2, "", "RFC 3339"},
		{"unreachable registry", []string{repo, "-push", "127.0.0.1:1/iris:1", "-push-timeout", "20s", "-binary", bin, "-q"}, 1, "", "pack: push 127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := cli.Run(context.Background(), append([]string{"package"}, tc.args...), &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tc.wantOut) {
				t.Errorf("stdout %q, want it to contain %q", &stdout, tc.wantOut)
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", &stderr, tc.wantErr)
			}
		})
	}
	if _, err := layout.ImageIndexFromPath(tmp + "/oci"); err != nil {
		t.Errorf("the layout written: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "ctx", "Dockerfile")); err != nil {
		t.Errorf("the build context written: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "x.tar")); err == nil {
		t.Error("a failed build left x.tar behind")
	}
}

func TestPackageCommandSourceDateEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "86400")
	dir := t.TempDir() + "/oci"
	var stdout, stderr bytes.Buffer
	if code := cli.Run(context.Background(), []string{"package", repo, "-t", "iris:1", "-layout", dir, "-binary", staticBinary(t), "-q"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d: %s", code, &stderr)
	}
	img, err := pack.LoadBase(dir)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if got := cf.Config.Labels["org.opencontainers.image.created"]; got != "1970-01-02T00:00:00Z" {
		t.Errorf("created label %q with SOURCE_DATE_EPOCH=86400, want 1970-01-02T00:00:00Z", got)
	}

	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if code := cli.Run(context.Background(), []string{"package", repo, "-t", "iris:1", "-layout", dir, "-binary", staticBinary(t), "-q"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit code %d with SOURCE_DATE_EPOCH=yesterday, want 2", code)
	}
}
