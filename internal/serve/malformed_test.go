package serve

import (
	"strings"
	"testing"
)

// TestMalformedRequests sends bad requests; each must get a 4xx with a JSON
// error, and the server must stay ready.
func TestMalformedRequests(t *testing.T) {
	ts := start(t, Config{Repository: testRepo(t), MaxBodyBytes: 4096})
	const infer = "/v2/models/echo/infer"
	big := `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[` + strings.Repeat("1,", 3000) + `1]}]}`
	cases := []struct {
		name string
		path string
		body string
		hdr  map[string]string
		want int
	}{
		{"empty body", infer, ``, nil, 400},
		{"not json", infer, `hello`, nil, 400},
		{"truncated json", infer, `{"inputs":[{"name":"x"`, nil, 400},
		{"no inputs", infer, `{"inputs":[]}`, nil, 400},
		{"inputs not a list", infer, `{"inputs":{}}`, nil, 400},
		{"input without name", infer, `{"inputs":[{"datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`, nil, 400},
		{"duplicate input", infer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]},{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`, nil, 400},
		{"unknown input", infer, `{"inputs":[{"name":"y","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`, nil, 400},
		{"unknown datatype", infer, `{"inputs":[{"name":"x","datatype":"FP128","shape":[1,3],"data":[1,2,3]}]}`, nil, 400},
		{"wrong datatype", infer, `{"inputs":[{"name":"x","datatype":"INT32","shape":[1,3],"data":[1,2,3]}]}`, nil, 400},
		{"no shape", infer, `{"inputs":[{"name":"x","datatype":"FP32","data":[1,2,3]}]}`, nil, 400},
		{"negative dim", infer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[-1,3],"data":[1,2,3]}]}`, nil, 400},
		{"overflowing dims", infer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[4294967296,4294967296],"data":[1]}]}`, nil, 400},
		{"too many elements", infer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3,4]}]}`, nil, 400},
		{"too few elements", infer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2]}]}`, nil, 400},
		{"wrong width", infer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}`, nil, 400},
		{"string in floats", infer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,"a",3]}]}`, nil, 400},
		{"ragged nesting", infer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"data":[[1,2,3],[4,5]]}]}`, nil, 400},
		{"mixed depth", infer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[2,3],"data":[[1,2,3],4,5,6]}]}`, nil, 400},
		{"no data", infer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3]}]}`, nil, 400},
		{"unknown output", infer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}],"outputs":[{"name":"nope"}]}`, nil, 400},
		{"bad timeout", infer, `{"parameters":{"timeout":"soon"},"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`, nil, 400},
		{"header length too big", infer, `{"inputs":[]}`, map[string]string{"Inference-Header-Content-Length": "999"}, 400},
		{"header length not a number", infer, `{}`, map[string]string{"Inference-Header-Content-Length": "x"}, 400},
		{"binary size past body", infer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"parameters":{"binary_data_size":12}}]}`, map[string]string{"Inference-Header-Content-Length": "94"}, 400},
		{"unclaimed binary bytes", infer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}xxxx`, map[string]string{"Inference-Header-Content-Length": "72"}, 400},
		{"body too large", infer, big, nil, 413},
		{"unknown model", "/v2/models/nope/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`, nil, 404},
		{"unknown version", "/v2/models/echo/versions/9/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`, nil, 404},
		{"non-integer version", "/v2/models/echo/versions/x/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`, nil, 404},
		{"unknown endpoint", "/v2/nope", `{}`, nil, 404},
		{"index bad json", "/v2/repository/index", `{`, nil, 400},
		{"load unknown model", "/v2/repository/models/nope/load", ``, nil, 404},
		{"unload unknown model", "/v2/repository/models/nope/unload", ``, nil, 404},
		{"v1 not a list", "/v1/models/echo:predict", `{"instances":3}`, nil, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, h, b := ts.do(t, "POST", c.path, []byte(c.body), c.hdr)
			if code != c.want {
				t.Errorf("POST %s %.60q = %d %s, want %d", c.path, c.body, code, b, c.want)
			}
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			m := decodeJSON(t, b)
			if e, _ := m["error"].(string); e == "" {
				t.Errorf("body %s has no error message", b)
			}
		})
	}
	if m := ts.getJSON(t, "/v2/health/ready", 200); m["ready"] != true {
		t.Errorf("server not ready after malformed requests: %v", m)
	}
	ts.postJSON(t, infer, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`, 200)
}
