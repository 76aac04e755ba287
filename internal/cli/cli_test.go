package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServeExample runs "shoal serve" with no model: the README's first
// command. It serves the embedded iris example and exits 0 on shutdown.
func TestServeExample(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "-http", addr, "-grpc", "", "-log-format", "json"}, io.Discard, &stderr)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("not ready after 20s; stderr:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Post("http://"+addr+"/predict", "application/json", strings.NewReader(`{"instances":[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != `{"predictions":[0,2]}` {
		t.Errorf("POST /predict = %d %s, want 200 {\"predictions\":[0,2]}", resp.StatusCode, b)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop 30s after cancel")
	}
	if !strings.Contains(stderr.String(), `"msg":"model ready","model":"iris"`) {
		t.Errorf("logs lack the model ready line:\n%s", stderr.String())
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{nil, 2, "Usage"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"serve", "-no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"serve", "a", "b"}, 2, "at most one"},
		{[]string{"serve", "-log-level", "loud"}, 2, "-log-level"},
		{[]string{"serve", "-http", "127.0.0.1:0", "/definitely/not/here"}, 1, "no such file"},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		if code := Run(context.Background(), c.args, io.Discard, &stderr); code != c.code || !strings.Contains(stderr.String(), c.inStderr) {
			t.Errorf("Run(%q) = %d, stderr %q; want %d and %q", c.args, code, stderr.String(), c.code, c.inStderr)
		}
	}
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"version"}, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "shoal ") {
		t.Errorf("version = %d %q", code, out.String())
	}
}
