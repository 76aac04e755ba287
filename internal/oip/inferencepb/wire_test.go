package inferencepb

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestWireNumbers pins every message, field number and field type to the
// published Open Inference Protocol / Triton definitions, so that an edit of
// grpc_service.proto cannot silently break wire compatibility with other
// clients and servers.
func TestWireNumbers(t *testing.T) {
	// message -> field name -> "number type" ("5 repeated message" etc.).
	want := map[string]map[string]string{
		"ServerLiveRequest":     {},
		"ServerLiveResponse":    {"live": "1 bool"},
		"ServerReadyRequest":    {},
		"ServerReadyResponse":   {"ready": "1 bool"},
		"ModelReadyRequest":     {"name": "1 string", "version": "2 string"},
		"ModelReadyResponse":    {"ready": "1 bool"},
		"ServerMetadataRequest": {},
		"ServerMetadataResponse": {
			"name": "1 string", "version": "2 string", "extensions": "3 repeated string",
		},
		"ModelMetadataRequest": {"name": "1 string", "version": "2 string"},
		"ModelMetadataResponse": {
			"name": "1 string", "versions": "2 repeated string", "platform": "3 string",
			"inputs": "4 repeated message", "outputs": "5 repeated message",
		},
		"ModelMetadataResponse.TensorMetadata": {
			"name": "1 string", "datatype": "2 string", "shape": "3 repeated int64",
		},
		"ModelInferRequest": {
			"model_name": "1 string", "model_version": "2 string", "id": "3 string",
			"parameters": "4 map", "inputs": "5 repeated message", "outputs": "6 repeated message",
			"raw_input_contents": "7 repeated bytes",
		},
		"ModelInferRequest.InferInputTensor": {
			"name": "1 string", "datatype": "2 string", "shape": "3 repeated int64",
			"parameters": "4 map", "contents": "5 message",
		},
		"ModelInferRequest.InferRequestedOutputTensor": {"name": "1 string", "parameters": "2 map"},
		"ModelInferResponse": {
			"model_name": "1 string", "model_version": "2 string", "id": "3 string",
			"parameters": "4 map", "outputs": "5 repeated message", "raw_output_contents": "6 repeated bytes",
		},
		"ModelInferResponse.InferOutputTensor": {
			"name": "1 string", "datatype": "2 string", "shape": "3 repeated int64",
			"parameters": "4 map", "contents": "5 message",
		},
		"InferParameter": {
			"bool_param": "1 bool", "int64_param": "2 int64", "string_param": "3 string",
			"double_param": "4 double", "uint64_param": "5 uint64",
		},
		"InferTensorContents": {
			"bool_contents": "1 repeated bool", "int_contents": "2 repeated int32",
			"int64_contents": "3 repeated int64", "uint_contents": "4 repeated uint32",
			"uint64_contents": "5 repeated uint64", "fp32_contents": "6 repeated float",
			"fp64_contents": "7 repeated double", "bytes_contents": "8 repeated bytes",
		},
		"ModelRepositoryParameter": {
			"bool_param": "1 bool", "int64_param": "2 int64", "string_param": "3 string", "bytes_param": "4 bytes",
		},
		"RepositoryIndexRequest":  {"repository_name": "1 string", "ready": "2 bool"},
		"RepositoryIndexResponse": {"models": "1 repeated message"},
		"RepositoryIndexResponse.ModelIndex": {
			"name": "1 string", "version": "2 string", "state": "3 string", "reason": "4 string",
		},
		"RepositoryModelLoadRequest": {
			"repository_name": "1 string", "model_name": "2 string", "parameters": "3 map",
		},
		"RepositoryModelLoadResponse": {},
		"RepositoryModelUnloadRequest": {
			"repository_name": "1 string", "model_name": "2 string", "parameters": "3 map",
		},
		"RepositoryModelUnloadResponse": {},
	}

	fd := File_grpc_service_proto
	if got := fd.Package(); got != "inference" {
		t.Fatalf("proto package = %q, want inference", got)
	}
	got := map[string]map[string]string{}
	var walk func(protoreflect.MessageDescriptors)
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			m := ms.Get(i)
			if m.IsMapEntry() {
				continue
			}
			name := string(m.FullName()[len("inference."):])
			fields := map[string]string{}
			for j := range m.Fields().Len() {
				f := m.Fields().Get(j)
				fields[string(f.Name())] = describe(f)
			}
			got[name] = fields
			walk(m.Messages())
		}
	}
	walk(fd.Messages())

	for msg, wf := range want {
		gf, ok := got[msg]
		if !ok {
			t.Errorf("message %s missing", msg)
			continue
		}
		for f, w := range wf {
			if g := gf[f]; g != w {
				t.Errorf("%s.%s = %q, want %q", msg, f, g, w)
			}
		}
		for f, g := range gf {
			if _, ok := wf[f]; !ok {
				t.Errorf("%s.%s = %q is not in the published definition", msg, f, g)
			}
		}
	}
	for msg := range got {
		if _, ok := want[msg]; !ok {
			t.Errorf("message %s is not in the published definition", msg)
		}
	}

	// Map values and oneofs.
	maps := map[string]string{
		"ModelInferRequest.parameters":                    "inference.InferParameter",
		"ModelInferRequest.InferInputTensor.parameters":   "inference.InferParameter",
		"ModelInferResponse.parameters":                   "inference.InferParameter",
		"RepositoryModelLoadRequest.parameters":           "inference.ModelRepositoryParameter",
		"RepositoryModelUnloadRequest.parameters":         "inference.ModelRepositoryParameter",
		"ModelInferResponse.InferOutputTensor.parameters": "inference.InferParameter",
	}
	for path, wantVal := range maps {
		f := findField(t, fd, path)
		if f == nil {
			continue
		}
		if !f.IsMap() || f.MapKey().Kind() != protoreflect.StringKind || string(f.MapValue().Message().FullName()) != wantVal {
			t.Errorf("%s is not map<string, %s>", path, wantVal)
		}
	}
	for _, m := range []string{"InferParameter", "ModelRepositoryParameter"} {
		md := fd.Messages().ByName(protoreflect.Name(m))
		if md.Oneofs().Len() != 1 || md.Oneofs().Get(0).Name() != "parameter_choice" || md.Oneofs().Get(0).Fields().Len() != md.Fields().Len() {
			t.Errorf("%s: all fields must be in oneof parameter_choice", m)
		}
	}

	// The service.
	wantRPCs := []string{
		"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
		"RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
	}
	if fd.Services().Len() != 1 {
		t.Fatalf("%d services, want 1", fd.Services().Len())
	}
	sd := fd.Services().Get(0)
	if sd.FullName() != "inference.GRPCInferenceService" {
		t.Errorf("service = %s, want inference.GRPCInferenceService", sd.FullName())
	}
	var rpcs []string
	for i := range sd.Methods().Len() {
		m := sd.Methods().Get(i)
		rpcs = append(rpcs, string(m.Name()))
		if m.IsStreamingClient() || m.IsStreamingServer() {
			t.Errorf("rpc %s is streaming", m.Name())
		}
		if in, out := string(m.Input().Name()), string(m.Output().Name()); in != string(m.Name())+"Request" || out != string(m.Name())+"Response" {
			t.Errorf("rpc %s(%s) returns (%s), want %[1]sRequest / %[1]sResponse", m.Name(), in, out)
		}
	}
	if !slices.Equal(rpcs, wantRPCs) {
		t.Errorf("rpcs = %v, want %v", rpcs, wantRPCs)
	}
}

func describe(f protoreflect.FieldDescriptor) string {
	num := strconv.Itoa(int(f.Number()))
	switch {
	case f.IsMap():
		return num + " map"
	case f.IsList():
		return num + " repeated " + f.Kind().String()
	}
	return num + " " + f.Kind().String()
}

// findField resolves "Msg.Nested.field" in fd.
func findField(t *testing.T, fd protoreflect.FileDescriptor, path string) protoreflect.FieldDescriptor {
	t.Helper()
	parts := strings.Split(path, ".")
	md := fd.Messages().ByName(protoreflect.Name(parts[0]))
	for _, p := range parts[1 : len(parts)-1] {
		if md == nil {
			break
		}
		md = md.Messages().ByName(protoreflect.Name(p))
	}
	if md == nil {
		t.Errorf("%s: no such message", path)
		return nil
	}
	f := md.Fields().ByName(protoreflect.Name(parts[len(parts)-1]))
	if f == nil {
		t.Errorf("%s: no such field", path)
	}
	return f
}
