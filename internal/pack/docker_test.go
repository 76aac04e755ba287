package pack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-ml/shoal/internal/oip/inferencepb"
)

// dockerEngine skips the test unless a docker CLI and an engine answer.
func dockerEngine(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: this test builds shoal and runs a container")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker CLI on PATH: the image is not run in a real engine")
	}
	out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		t.Skipf("no Docker engine answers (docker version: %v: %s): the image is not run in a real engine", err, bytes.TrimSpace(out))
	}
}

// docker runs the docker CLI and returns its trimmed stdout.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(stdout.String())
}

// buildShoal builds a static linux shoal binary into dir.
func buildShoal(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "shoal")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/shoal-ml/shoal/cmd/shoal")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestImageServesInDocker builds shoal, packages the example repository
// with `shoal package` (which puts the running binary in the image), loads
// the tarball into the real engine, runs it and checks its iris
// predictions over the Open Inference Protocol. The image is never pulled
// from anywhere.
func TestImageServesInDocker(t *testing.T) {
	dockerEngine(t)
	dir := t.TempDir()
	bin := buildShoal(t, dir)
	tag := fmt.Sprintf("shoal-pack-test-%d-%d:1", os.Getpid(), time.Now().UnixNano())
	tarPath := filepath.Join(dir, "iris.tar")

	cmd := exec.Command(bin, "package", repo, "-t", tag, "-o", tarPath, "-q")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("shoal package: %v\n%s", err, out)
	}
	docker(t, "load", "-i", tarPath)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })

	if user := docker(t, "image", "inspect", "--format", "{{.Config.User}}", tag); user != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532", user)
	}
	id := docker(t, "run", "-d", "-p", "127.0.0.1::8080", "-p", "127.0.0.1::8081", tag)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker", "logs", id).CombinedOutput()
			t.Logf("container logs:\n%s", out)
		}
		exec.Command("docker", "rm", "-f", id).Run()
	})
	hostPort := strings.SplitN(docker(t, "port", id, "8080/tcp"), "\n", 2)[0]
	base := "http://" + hostPort

	waitReady(t, base+"/v2/health/ready", id)

	var want struct {
		Inputs        [][]*float64 `json:"inputs"`
		Probabilities [][]float64  `json:"probabilities"`
		Labels        []string     `json:"labels"`
	}
	raw, err := os.ReadFile(filepath.Join(repo, "iris", "1", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	var data []*float64 // null reads as a missing value (NaN)
	for _, row := range want.Inputs {
		data = append(data, row...)
	}
	req, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{
		"name": "input", "datatype": "FP32", "shape": []int{len(want.Inputs), 4}, "data": data,
	}}})
	resp, err := http.Post(base+"/v2/models/iris/infer", "application/json", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Outputs []struct {
			Name string    `json:"name"`
			Data []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("infer: status %d, %v", resp.StatusCode, err)
	}
	classes := []string{"setosa", "versicolor", "virginica"}
	for _, o := range got.Outputs {
		switch o.Name {
		case "label":
			for i, c := range o.Data {
				if classes[int(c)] != want.Labels[i] {
					t.Errorf("row %d: label %s, want %s", i, classes[int(c)], want.Labels[i])
				}
			}
		case "probabilities":
			for i, row := range want.Probabilities {
				for j, p := range row {
					if g := o.Data[i*3+j]; math.Abs(g-p) > 1e-6 {
						t.Errorf("row %d class %d: probability %v, want %v", i, j, g, p)
					}
				}
			}
		default:
			t.Errorf("unexpected output %q", o.Name)
		}
	}
	if len(got.Outputs) != 2 {
		t.Errorf("got %d outputs, want label and probabilities", len(got.Outputs))
	}

	// The gRPC port answers too.
	grpcAddr := strings.SplitN(docker(t, "port", id, "8081/tcp"), "\n", 2)[0]
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	md, err := inferencepb.NewGRPCInferenceServiceClient(conn).ModelMetadata(ctx, &inferencepb.ModelMetadataRequest{Name: "iris"})
	if err != nil || md.GetPlatform() != "xgboost" {
		t.Errorf("gRPC ModelMetadata(iris) = %v, %v; want platform xgboost", md, err)
	}
}

// waitReady polls url until it answers 200, the container exits, or a
// minute passes (a start takes well under a second; the minute is only a
// bound for a stuck engine).
func waitReady(t *testing.T, url, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if n%20 == 19 { // not every tick: a docker CLI call is costly
			if state := docker(t, "inspect", "--format", "{{.State.Status}}", id); state == "exited" || state == "dead" {
				t.Fatalf("container %s before turning ready", state)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not ready after a minute", url)
		case <-tick.C:
		}
	}
}
