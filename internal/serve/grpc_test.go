package serve

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/shoal-ml/shoal/internal/oip/inferencepb"
)

func TestGRPC(t *testing.T) {
	ts := start(t, Config{Repository: testRepo(t)})
	c := pb.NewGRPCInferenceServiceClient(ts.conn)
	ctx := context.Background()

	if r, err := c.ServerLive(ctx, &pb.ServerLiveRequest{}); err != nil || !r.Live {
		t.Errorf("ServerLive = %v, %v", r, err)
	}
	if r, err := c.ServerReady(ctx, &pb.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Errorf("ServerReady = %v, %v", r, err)
	}
	if r, err := c.ModelReady(ctx, &pb.ModelReadyRequest{Name: "echo", Version: "1"}); err != nil || !r.Ready {
		t.Errorf("ModelReady = %v, %v", r, err)
	}
	if r, err := c.ModelReady(ctx, &pb.ModelReadyRequest{Name: "broken"}); err != nil || r.Ready {
		t.Errorf("ModelReady(broken) = %v, %v", r, err)
	}
	if _, err := c.ModelReady(ctx, &pb.ModelReadyRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("ModelReady(nope) = %v, want NotFound", err)
	}
	if r, err := c.ServerMetadata(ctx, &pb.ServerMetadataRequest{}); err != nil || r.Name != "shoal" || !strings.Contains(strings.Join(r.Extensions, ","), "model_repository") {
		t.Errorf("ServerMetadata = %v, %v", r, err)
	}
	md, err := c.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	if got := protojson.Format(md); !strings.Contains(strings.Join(strings.Fields(got), ""), `"inputs":[{"name":"x","datatype":"FP32","shape":["-1","3"]}]`) {
		t.Errorf("ModelMetadata = %s", got)
	}
	hc := healthpb.NewHealthClient(ts.conn)
	if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health Check = %v, %v", r, err)
	}

	// Typed contents in, typed contents out.
	req := &pb.ModelInferRequest{
		ModelName: "echo", ModelVersion: "2", Id: "g1",
		Inputs: []*pb.ModelInferRequest_InferInputTensor{{
			Name: "x", Datatype: "FP32", Shape: []int64{1, 3},
			Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 2, 3}},
		}},
	}
	r, err := c.ModelInfer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r.Id != "g1" || r.ModelVersion != "2" || len(r.Outputs) != 1 || len(r.RawOutputContents) != 0 {
		t.Fatalf("ModelInfer = %v", r)
	}
	if got := r.Outputs[0].GetContents().GetFp32Contents(); len(got) != 3 || got[2] != 6 {
		t.Errorf("typed output = %v, want [2 4 6]", got)
	}

	// Raw in, raw out.
	req.Inputs[0].Contents = nil
	req.RawInputContents = [][]byte{float32Bytes(1, 2, 3)}
	r, err = c.ModelInfer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.RawOutputContents) != 1 || string(r.RawOutputContents[0]) != string(float32Bytes(2, 4, 6)) {
		t.Errorf("raw output = %v", r.RawOutputContents)
	}

	// Errors map to status codes.
	for _, c2 := range []struct {
		name string
		req  *pb.ModelInferRequest
		want codes.Code
	}{
		{"unknown model", &pb.ModelInferRequest{ModelName: "nope", Inputs: req.Inputs, RawInputContents: req.RawInputContents}, codes.NotFound},
		{"bad shape", &pb.ModelInferRequest{ModelName: "echo", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 2}}}}}, codes.InvalidArgument},
		{"raw count mismatch", &pb.ModelInferRequest{ModelName: "echo", Inputs: req.Inputs, RawInputContents: [][]byte{{1}, {2}}}, codes.InvalidArgument},
		{"no inputs", &pb.ModelInferRequest{ModelName: "echo"}, codes.InvalidArgument},
		{"broken model", &pb.ModelInferRequest{ModelName: "broken", Inputs: req.Inputs, RawInputContents: req.RawInputContents}, codes.Unavailable},
	} {
		if _, err := c.ModelInfer(ctx, c2.req); status.Code(err) != c2.want {
			t.Errorf("%s: ModelInfer = %v, want %v", c2.name, err, c2.want)
		}
	}

	// Repository extension.
	idx, err := c.RepositoryIndex(ctx, &pb.RepositoryIndexRequest{Ready: true})
	if err != nil || len(idx.Models) != 4 { // echo 1, echo 2, gated 1, types 1
		t.Errorf("RepositoryIndex(ready) = %v, %v", idx, err)
	}
	if _, err := c.RepositoryModelUnload(ctx, &pb.RepositoryModelUnloadRequest{ModelName: "types"}); err != nil {
		t.Errorf("unload: %v", err)
	}
	if r, _ := c.ModelReady(ctx, &pb.ModelReadyRequest{Name: "types"}); r.GetReady() {
		t.Error("types ready after unload")
	}
	if _, err := c.RepositoryModelLoad(ctx, &pb.RepositoryModelLoadRequest{ModelName: "types"}); err != nil {
		t.Errorf("load: %v", err)
	}
	if _, err := c.RepositoryModelLoad(ctx, &pb.RepositoryModelLoadRequest{ModelName: "broken"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("load broken = %v, want InvalidArgument", err)
	}
	if _, err := c.RepositoryModelLoad(ctx, &pb.RepositoryModelLoadRequest{ModelName: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("load nope = %v, want NotFound", err)
	}
}
