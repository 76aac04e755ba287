package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

type testServer struct {
	*Server
	url  string
	conn *grpc.ClientConn
	stop func() error
}

// start serves repo on in-process loopback listeners until the test ends
// (or stop is called), and waits for readiness.
func start(t *testing.T, cfg Config) *testServer {
	t.Helper()
	if cfg.Loaders == nil {
		cfg.Loaders = testLoaders(nil)
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, hl, gl) }()
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	ts := &testServer{Server: s, url: "http://" + hl.Addr().String(), conn: conn}
	ts.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		conn.Close()
		return <-done
	}
	t.Cleanup(func() {
		if err := ts.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !s.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("server not ready after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return ts
}

// do sends a request and returns status, headers and body.
func (ts *testServer) do(t *testing.T, method, path string, body []byte, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func (ts *testServer) getJSON(t *testing.T, path string, want int) map[string]any {
	t.Helper()
	code, _, b := ts.do(t, "GET", path, nil, nil)
	if code != want {
		t.Fatalf("GET %s = %d %s, want %d", path, code, b, want)
	}
	return decodeJSON(t, b)
}

func (ts *testServer) postJSON(t *testing.T, path, body string, want int) map[string]any {
	t.Helper()
	code, _, b := ts.do(t, "POST", path, []byte(body), nil)
	if code != want {
		t.Fatalf("POST %s %s = %d %s, want %d", path, body, code, b, want)
	}
	return decodeJSON(t, b)
}

// decodeJSON decodes an object keeping numbers exact.
func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestHealthAndMetadata(t *testing.T) {
	ts := start(t, Config{Repository: testRepo(t)})
	if m := ts.getJSON(t, "/v2/health/live", 200); m["live"] != true {
		t.Errorf("live = %v", m)
	}
	if m := ts.getJSON(t, "/v2/health/ready", 200); m["ready"] != true {
		t.Errorf("ready = %v", m)
	}
	md := ts.getJSON(t, "/v2", 200)
	if md["name"] != "shoal" || !strings.Contains(jsonString(md["extensions"]), "binary_tensor_data") {
		t.Errorf("server metadata = %v", md)
	}
	mm := ts.getJSON(t, "/v2/models/echo", 200)
	want := `{"inputs":[{"datatype":"FP32","name":"x","shape":[-1,3]}],"name":"echo","outputs":[{"datatype":"FP32","name":"out_x","shape":[-1,3]}],"platform":"echo","versions":["1","2"]}`
	if got := jsonString(mm); got != want {
		t.Errorf("model metadata = %s\nwant %s", got, want)
	}
	if v := ts.getJSON(t, "/v2/models/echo/versions/1", 200); jsonString(v["versions"]) != `["1"]` {
		t.Errorf("version metadata = %v", v)
	}
	ts.getJSON(t, "/v2/models/echo/ready", 200)
	ts.getJSON(t, "/v2/models/echo/versions/2/ready", 200)
	ts.getJSON(t, "/v2/models/echo/versions/3/ready", 503)
	ts.getJSON(t, "/v2/models/nope/ready", 404)
	ts.getJSON(t, "/v2/models/nope", 404)
	ts.getJSON(t, "/v2/models/broken/ready", 503)
	if e := ts.getJSON(t, "/v2/models/broken", 503); !strings.Contains(e["error"].(string), "never loads") {
		t.Errorf("broken model error = %v, want the load error", e)
	}
	if code, _, b := ts.do(t, "GET", "/health", nil, nil); code != 200 || string(b) != "ok" {
		t.Errorf("GET /health = %d %q", code, b)
	}
}

func TestInferJSON(t *testing.T) {
	ts := start(t, Config{Repository: testRepo(t)})
	body := `{"id":"req-7","parameters":{"p":1},"inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"data":[[1,2,3],[4,5,6.5]]}]}`
	resp := ts.postJSON(t, "/v2/models/echo/infer", body, 200)
	want := `{"id":"req-7","model_name":"echo","model_version":"2","outputs":[{"data":[2,4,6,8,10,13],"datatype":"FP32","name":"out_x","shape":[2,3]}]}`
	if got := jsonString(resp); got != want {
		t.Errorf("infer default version = %s\nwant %s", got, want)
	}
	flat := `{"inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"data":[1,2,3,4,5,6.5]}]}`
	resp = ts.postJSON(t, "/v2/models/echo/versions/1/infer", flat, 200)
	if got := jsonString(resp["outputs"]); got != `[{"data":[1,2,3,4,5,6.5],"datatype":"FP32","name":"out_x","shape":[2,3]}]` {
		t.Errorf("infer version 1 = %s", got)
	}
	if resp["model_version"] != "1" {
		t.Errorf("model_version = %v, want 1", resp["model_version"])
	}
}

func TestInferAllDatatypes(t *testing.T) {
	ts := start(t, Config{Repository: testRepo(t)})
	inputs := []map[string]any{
		{"name": "b", "datatype": "BOOL", "shape": []int{2}, "data": []any{true, false}},
		{"name": "u8", "datatype": "UINT8", "shape": []int{2}, "data": []any{0, 255}},
		{"name": "u16", "datatype": "UINT16", "shape": []int{2}, "data": []any{0, 65535}},
		{"name": "u32", "datatype": "UINT32", "shape": []int{2}, "data": []any{0, 4294967295}},
		{"name": "u64", "datatype": "UINT64", "shape": []int{2}, "data": []any{0, uint64(18446744073709551615)}},
		{"name": "i8", "datatype": "INT8", "shape": []int{2}, "data": []any{-128, 127}},
		{"name": "i16", "datatype": "INT16", "shape": []int{2}, "data": []any{-32768, 32767}},
		{"name": "i32", "datatype": "INT32", "shape": []int{2}, "data": []any{-2147483648, 2147483647}},
		{"name": "i64", "datatype": "INT64", "shape": []int{2}, "data": []any{int64(-9223372036854775808), int64(9223372036854775807)}},
		{"name": "f16", "datatype": "FP16", "shape": []int{2}, "data": []any{0.5, -2}},
		{"name": "f32", "datatype": "FP32", "shape": []int{2}, "data": []any{1.5, "NaN"}},
		{"name": "f64", "datatype": "FP64", "shape": []int{2}, "data": []any{1e300, "-Inf"}},
		{"name": "s", "datatype": "BYTES", "shape": []int{2}, "data": []any{"héllo", "a\"b\n"}},
	}
	body := jsonString(map[string]any{"inputs": inputs})
	resp := ts.postJSON(t, "/v2/models/types/infer", body, 200)
	outs := resp["outputs"].([]any)
	if len(outs) != len(inputs) {
		t.Fatalf("got %d outputs, want %d", len(outs), len(inputs))
	}
	for i, o := range outs {
		o := o.(map[string]any)
		in := inputs[i]
		if o["name"] != "out_"+in["name"].(string) || o["datatype"] != in["datatype"] {
			t.Errorf("output %d = %v, want echo of %v", i, o, in)
		}
		if got, want := jsonString(o["data"]), jsonString(in["data"]); got != want {
			t.Errorf("%s data = %s, want %s", in["datatype"], got, want)
		}
	}
}

// binaryBody builds a binary-extension request: JSON header then raw data.
func binaryBody(t *testing.T, header map[string]any, raw ...[]byte) ([]byte, map[string]string) {
	t.Helper()
	js := []byte(jsonString(header))
	body := append([]byte(nil), js...)
	for _, r := range raw {
		body = append(body, r...)
	}
	return body, map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(js)), "Content-Type": "application/octet-stream"}
}

func float32Bytes(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func TestInferBinary(t *testing.T) {
	ts := start(t, Config{Repository: testRepo(t)})
	raw := float32Bytes(1, 2, 3, 4, 5, 6)
	body, hdr := binaryBody(t, map[string]any{
		"inputs": []any{map[string]any{"name": "x", "datatype": "FP32", "shape": []int{2, 3},
			"parameters": map[string]any{"binary_data_size": len(raw)}}},
		"outputs": []any{map[string]any{"name": "out_x", "parameters": map[string]any{"binary_data": true}}},
	}, raw)
	code, h, b := ts.do(t, "POST", "/v2/models/echo/versions/1/infer", body, hdr)
	if code != 200 {
		t.Fatalf("binary infer = %d %s", code, b)
	}
	hl, err := strconv.Atoi(h.Get("Inference-Header-Content-Length"))
	if err != nil || hl > len(b) {
		t.Fatalf("response header length %q (body %d bytes)", h.Get("Inference-Header-Content-Length"), len(b))
	}
	var js map[string]any
	if err := json.Unmarshal(b[:hl], &js); err != nil {
		t.Fatal(err)
	}
	out := js["outputs"].([]any)[0].(map[string]any)
	if got := jsonString(out["parameters"]); got != `{"binary_data_size":24}` {
		t.Errorf("output parameters = %s", got)
	}
	if !bytes.Equal(b[hl:], raw) {
		t.Errorf("binary output = %v, want %v", b[hl:], raw)
	}

	// binary_data_output on the request makes every output binary; a JSON
	// input and a BYTES binary input mix in one request.
	s := binary.LittleEndian.AppendUint32(nil, 2)
	s = append(s, "hi"...)
	body, hdr = binaryBody(t, map[string]any{
		"parameters": map[string]any{"binary_data_output": true},
		"inputs": []any{
			map[string]any{"name": "s", "datatype": "BYTES", "shape": []int{1}, "parameters": map[string]any{"binary_data_size": len(s)}},
			map[string]any{"name": "b", "datatype": "BOOL", "shape": []int{1}, "data": []bool{true}},
		},
		"outputs": []any{map[string]any{"name": "out_s"}},
	}, s)
	code, h, b = ts.do(t, "POST", "/v2/models/types/infer", body, hdr)
	if code != 400 || !strings.Contains(string(b), "missing input") {
		t.Errorf("partial inputs = %d %s, want 400 missing input", code, b)
	}
	_ = h
}

func TestV1AndPredict(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "only/1/model.yaml", echoYAML)
	ts := start(t, Config{Repository: dir})
	resp := ts.postJSON(t, "/v1/models/only:predict", `{"instances":[[1,2,3],[4,5,6]]}`, 200)
	if got := jsonString(resp); got != `{"predictions":[[1,2,3],[4,5,6]]}` {
		t.Errorf("V1 predict = %s", got)
	}
	resp = ts.postJSON(t, "/predict", `{"instances":[[1,2,3]]}`, 200)
	if got := jsonString(resp); got != `{"predictions":[[1,2,3]]}` {
		t.Errorf("/predict = %s", got)
	}
	if m := ts.getJSON(t, "/v1/models/only", 200); m["ready"] != true {
		t.Errorf("V1 status = %v", m)
	}
	ts.postJSON(t, "/predict", `{"rows":[[1,2,3]]}`, 400)
	ts.postJSON(t, "/v1/models/only:predict", `{"instances":[1,2,3]}`, 400)
	ts.postJSON(t, "/v1/models/nope:predict", `{"instances":[[1,2,3]]}`, 404)
	ts.postJSON(t, "/v1/models/only:explain", `{"instances":[[1,2,3]]}`, 404)
}

func TestMetrics(t *testing.T) {
	ts := start(t, Config{Repository: testRepo(t)})
	ts.postJSON(t, "/v2/models/echo/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`, 200)
	ts.postJSON(t, "/v2/models/echo/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}]}`, 400)
	code, _, b := ts.do(t, "GET", "/metrics", nil, nil)
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`shoal_inference_requests_total{model="echo",outcome="success",version="2"} 1`,
		`shoal_inference_requests_total{model="echo",outcome="client_error",version="2"} 1`,
		`shoal_inference_duration_seconds_bucket{model="echo",phase="compute",version="2"`,
		`shoal_inference_duration_seconds_bucket{model="echo",phase="queue",version="2"`,
		`shoal_inference_batch_size_bucket{model="echo",version="2"`,
		`shoal_inference_inflight_requests{model="echo"} 0`,
		`shoal_model_load_seconds{model="echo",version="1"}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
