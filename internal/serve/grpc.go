package serve

import (
	"context"
	"errors"
	"math"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-ml/shoal/internal/oip"
	"github.com/shoal-ml/shoal/internal/oip/inferencepb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// GRPCServer returns a gRPC server with inference.GRPCInferenceService and
// grpc.health.v1 registered; its health status follows Ready. Its maximum
// message size is Config.MaxBodyBytes; it speaks TLS when Config.TLS is set.
func (s *Server) GRPCServer() *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(min(s.cfg.MaxBodyBytes, math.MaxInt32))),
		grpc.MaxSendMsgSize(math.MaxInt32),
	}
	if s.cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.cfg.TLS)))
	}
	gs := grpc.NewServer(opts...)
	inferencepb.RegisterGRPCInferenceServiceServer(gs, &grpcService{s: s})
	hs := health.NewServer()
	s.healthMu.Lock()
	s.health = append(s.health, hs)
	s.healthMu.Unlock()
	s.setReady(s.Ready())
	healthpb.RegisterHealthServer(gs, hs)
	return gs
}

// setReady sets readiness and the gRPC health status with it.
func (s *Server) setReady(ready bool) {
	s.ready.Store(ready)
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ready {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	for _, h := range s.health {
		h.SetServingStatus("", st)
		h.SetServingStatus("inference.GRPCInferenceService", st)
	}
}

// grpcCode maps an error to its gRPC status code, as statusOf does for HTTP.
func grpcError(err error) error {
	code := codes.Internal
	switch statusOf(err) {
	case 400, 413:
		code = codes.InvalidArgument
	case 404:
		code = codes.NotFound
	case 503:
		code = codes.Unavailable
	case 504:
		code = codes.DeadlineExceeded
	case 429:
		code = codes.ResourceExhausted
	case 499:
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}

type grpcService struct {
	inferencepb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

func (g *grpcService) ServerLive(context.Context, *inferencepb.ServerLiveRequest) (*inferencepb.ServerLiveResponse, error) {
	return &inferencepb.ServerLiveResponse{Live: g.s.Live()}, nil
}

func (g *grpcService) ServerReady(context.Context, *inferencepb.ServerReadyRequest) (*inferencepb.ServerReadyResponse, error) {
	return &inferencepb.ServerReadyResponse{Ready: g.s.Ready()}, nil
}

func (g *grpcService) ModelReady(_ context.Context, r *inferencepb.ModelReadyRequest) (*inferencepb.ModelReadyResponse, error) {
	ok, err := g.s.ModelReady(r.GetName(), r.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	return &inferencepb.ModelReadyResponse{Ready: ok}, nil
}

func (g *grpcService) ServerMetadata(context.Context, *inferencepb.ServerMetadataRequest) (*inferencepb.ServerMetadataResponse, error) {
	md := g.s.Metadata()
	return &inferencepb.ServerMetadataResponse{Name: md.Name, Version: md.Version, Extensions: md.Extensions}, nil
}

func (g *grpcService) ModelMetadata(_ context.Context, r *inferencepb.ModelMetadataRequest) (*inferencepb.ModelMetadataResponse, error) {
	md, err := g.s.ModelMetadata(r.GetName(), r.GetVersion())
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &inferencepb.ModelMetadataResponse{Name: md.Name, Versions: md.Versions, Platform: md.Platform}
	for _, t := range tensorsMetadata(md.Inputs) {
		resp.Inputs = append(resp.Inputs, &inferencepb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape})
	}
	for _, t := range tensorsMetadata(md.Outputs) {
		resp.Outputs = append(resp.Outputs, &inferencepb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape})
	}
	return resp, nil
}

func (g *grpcService) ModelInfer(ctx context.Context, r *inferencepb.ModelInferRequest) (*inferencepb.ModelInferResponse, error) {
	req, raw, err := inferRequestFromGRPC(r)
	if err != nil {
		return nil, grpcError(err)
	}
	resp, err := g.s.Infer(ctx, req)
	if err != nil {
		if statusOf(err) == http.StatusTooManyRequests {
			// Best effort: the status says enough without it.
			_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", retryAfter(err)))
		}
		return nil, grpcError(err)
	}
	out := &inferencepb.ModelInferResponse{
		ModelName: resp.ModelName, ModelVersion: resp.ModelVersion, Id: resp.ID,
		Parameters: oip.ParamsToGRPC(resp.Parameters),
	}
	for _, t := range resp.Outputs {
		if t.DType == tensor.FP16 {
			raw = true // FP16 has no typed field, and forms cannot be mixed
		}
	}
	for _, t := range resp.Outputs {
		o, b := oip.TensorToGRPC(t, raw)
		out.Outputs = append(out.Outputs, o)
		if raw {
			out.RawOutputContents = append(out.RawOutputContents, b)
		}
	}
	return out, nil
}

// inferRequestFromGRPC decodes a gRPC request; raw reports whether the
// response should use raw_output_contents (the request used raw inputs, or
// asked with binary_data_output).
func inferRequestFromGRPC(r *inferencepb.ModelInferRequest) (*oip.InferRequest, bool, error) {
	req := &oip.InferRequest{
		ModelName: r.GetModelName(), ModelVersion: r.GetModelVersion(), ID: r.GetId(),
		Parameters: oip.ParamsFromGRPC(r.GetParameters()),
	}
	rawIn := r.GetRawInputContents()
	if len(rawIn) > 0 && len(rawIn) != len(r.GetInputs()) {
		return nil, false, errors.Join(oip.ErrBadRequest, errors.New("raw_input_contents must have one entry per input"))
	}
	if len(r.GetInputs()) == 0 {
		return nil, false, errors.Join(oip.ErrBadRequest, errors.New("no inputs"))
	}
	seen := map[string]bool{}
	for i, in := range r.GetInputs() {
		if seen[in.GetName()] {
			return nil, false, errors.Join(oip.ErrBadRequest, errors.New("input "+in.GetName()+" given twice"))
		}
		seen[in.GetName()] = true
		var raw []byte
		if len(rawIn) > 0 {
			raw = rawIn[i]
		}
		t, err := oip.TensorFromGRPC(in, raw, len(rawIn) > 0)
		if err != nil {
			return nil, false, err
		}
		req.Inputs = append(req.Inputs, t)
	}
	for _, o := range r.GetOutputs() {
		req.Outputs = append(req.Outputs, oip.RequestedOutput{Name: o.GetName(), Parameters: oip.ParamsFromGRPC(o.GetParameters())})
	}
	binOut, _ := req.Parameters["binary_data_output"].(bool)
	return req, len(rawIn) > 0 || binOut, nil
}

func (g *grpcService) RepositoryIndex(_ context.Context, r *inferencepb.RepositoryIndexRequest) (*inferencepb.RepositoryIndexResponse, error) {
	idx, err := g.s.Index(r.GetReady())
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &inferencepb.RepositoryIndexResponse{}
	for _, e := range idx {
		resp.Models = append(resp.Models, &inferencepb.RepositoryIndexResponse_ModelIndex{Name: e.Name, Version: e.Version, State: e.State, Reason: e.Reason})
	}
	return resp, nil
}

func (g *grpcService) RepositoryModelLoad(ctx context.Context, r *inferencepb.RepositoryModelLoadRequest) (*inferencepb.RepositoryModelLoadResponse, error) {
	if err := g.s.Load(ctx, r.GetModelName()); err != nil {
		if !errors.Is(err, ErrModelNotFound) {
			err = errors.Join(errLoadFailed, err)
		}
		return nil, grpcError(err)
	}
	return &inferencepb.RepositoryModelLoadResponse{}, nil
}

func (g *grpcService) RepositoryModelUnload(ctx context.Context, r *inferencepb.RepositoryModelUnloadRequest) (*inferencepb.RepositoryModelUnloadResponse, error) {
	if err := g.s.Unload(ctx, r.GetModelName()); err != nil {
		return nil, grpcError(err)
	}
	return &inferencepb.RepositoryModelUnloadResponse{}, nil
}
