package gateway

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-ml/shoal/internal/oip/inferencepb"
)

// GRPCServer returns a gRPC server with inference.GRPCInferenceService:
// ModelInfer, ModelMetadata and ModelReady are routed like REST requests
// (metadata x-shoal-revision pins a revision; the model's sticky header
// is read from metadata); ServerLive and ServerReady describe the
// gateway; the repository RPCs are not offered (the gateway has no model
// repository). It uses Config.TLS when set.
func (g *Gateway) GRPCServer() *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(min(g.cfg.MaxBodyBytes, math.MaxInt32))),
		grpc.MaxSendMsgSize(math.MaxInt32),
	}
	if g.cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(g.cfg.TLS)))
	}
	gs := grpc.NewServer(opts...)
	inferencepb.RegisterGRPCInferenceServiceServer(gs, &grpcProxy{g: g})
	return gs
}

type grpcProxy struct {
	inferencepb.UnimplementedGRPCInferenceServiceServer
	g *Gateway
}

func (p *grpcProxy) ServerLive(context.Context, *inferencepb.ServerLiveRequest) (*inferencepb.ServerLiveResponse, error) {
	return &inferencepb.ServerLiveResponse{Live: true}, nil
}

func (p *grpcProxy) ServerReady(context.Context, *inferencepb.ServerReadyRequest) (*inferencepb.ServerReadyResponse, error) {
	return &inferencepb.ServerReadyResponse{Ready: p.g.Ready()}, nil
}

func (p *grpcProxy) ModelReady(ctx context.Context, req *inferencepb.ModelReadyRequest) (*inferencepb.ModelReadyResponse, error) {
	return forward(ctx, p.g, req.GetName(), func(ctx context.Context, c inferencepb.GRPCInferenceServiceClient) (*inferencepb.ModelReadyResponse, error) {
		return c.ModelReady(ctx, req)
	})
}

func (p *grpcProxy) ModelMetadata(ctx context.Context, req *inferencepb.ModelMetadataRequest) (*inferencepb.ModelMetadataResponse, error) {
	return forward(ctx, p.g, req.GetName(), func(ctx context.Context, c inferencepb.GRPCInferenceServiceClient) (*inferencepb.ModelMetadataResponse, error) {
		return c.ModelMetadata(ctx, req)
	})
}

func (p *grpcProxy) ModelInfer(ctx context.Context, req *inferencepb.ModelInferRequest) (*inferencepb.ModelInferResponse, error) {
	resp, t, err := forwardT(ctx, p.g, req.GetModelName(), func(ctx context.Context, c inferencepb.GRPCInferenceServiceClient) (*inferencepb.ModelInferResponse, error) {
		return c.ModelInfer(ctx, req)
	})
	if t != nil {
		if m := t.m; m.mirror != nil && m.mirror != t.rev && rand.Float64()*100 < m.mirrorPct {
			p.g.mirrorGRPC(m, req, resp, status.Code(err))
		}
	}
	return resp, err
}

// forward sends one unary call to a replica of model, retrying on
// UNAVAILABLE (connection failure or a replica not ready) within the
// budget, and converts gateway errors to gRPC status.
func forward[T any](ctx context.Context, g *Gateway, name string, call func(context.Context, inferencepb.GRPCInferenceServiceClient) (T, error)) (T, error) {
	resp, _, err := forwardT(ctx, g, name, call)
	return resp, err
}

// forwardT is forward that also returns the target of the last attempt
// (nil when none was made).
func forwardT[T any](ctx context.Context, g *Gateway, name string, call func(context.Context, inferencepb.GRPCInferenceServiceClient) (T, error)) (T, *target, error) {
	var zero T
	start := time.Now()
	md, _ := metadata.FromIncomingContext(ctx)
	get := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if g.authOn() {
		if err := g.authorize(get, name, start); err != nil {
			g.metrics.rejected.WithLabelValues(g.label(name), rejectReason(err)).Inc()
			return zero, nil, grpcError(err)
		}
	}
	m, err := g.lookup(name)
	if err != nil {
		return zero, nil, grpcError(err)
	}
	rt := routing{model: name, pin: get(HeaderRevision)}
	if sh := m.spec.StickyHeader; sh != "" {
		rt.sticky = get(sh)
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	// Forward the caller's metadata, less the credentials.
	out := md.Copy()
	delete(out, "authorization")
	delete(out, "x-api-key")
	ctx = metadata.NewOutgoingContext(ctx, out)
	ctl := m.ctl
	ctl.inflight.Add(1)
	ctl.requests.Add(1)
	defer ctl.inflight.Add(-1)
	ctl.budget.request(start)
	var exclude *replica
	for attempt := 0; ; attempt++ {
		t, err := g.pick(ctx, rt, exclude)
		if err != nil {
			return zero, nil, grpcError(err)
		}
		if t.r.grpc == "" {
			t.done()
			return zero, nil, status.Errorf(codes.Unavailable, "gateway: replica %s of revision %q has no gRPC address", t.r.http, t.rev.name)
		}
		t0 := time.Now()
		var resp T
		if d := m.hedgeDelay(t.rev); d > 0 && attempt == 0 {
			r := hedgedCall(ctx, g, rt, t, call, d, ctl)
			resp, err, t, t0 = r.resp, r.err, r.t, r.start
		} else {
			resp, err = callOn(ctx, g, t, call)
		}
		now := time.Now()
		code := status.Code(err)
		g.result(t, code != codes.Unavailable && code != codes.Internal && code != codes.Unknown, now.Sub(t0), now)
		if code == codes.Unavailable {
			g.unready(t, now)
		}
		if code == codes.OK && m.spec.Hedge != nil {
			t.rev.lat.add(now.Sub(t0))
		}
		t.done()
		if code == codes.Unavailable && ctx.Err() == nil && g.canRetry(attempt, ctl, now) {
			exclude = t.r
			continue
		}
		g.metrics.requests.WithLabelValues(name, t.rev.name, "grpc_"+code.String()).Inc()
		t.rev.latency.Observe(now.Sub(start).Seconds())
		return resp, t, err
	}
}

// callOn makes one call to t's replica.
func callOn[T any](ctx context.Context, g *Gateway, t *target, call func(context.Context, inferencepb.GRPCInferenceServiceClient) (T, error)) (T, error) {
	var zero T
	if t.r.grpc == "" {
		return zero, status.Errorf(codes.Unavailable, "gateway: replica %s of revision %q has no gRPC address", t.r.http, t.rev.name)
	}
	conn, err := g.grpcConn(t.r.grpc)
	if err != nil {
		return zero, status.Error(codes.Internal, err.Error())
	}
	return call(ctx, inferencepb.NewGRPCInferenceServiceClient(conn))
}

// hedgedCall is hedged (REST) for gRPC calls: the first attempt goes to
// first; after delay without an answer a copy goes to another replica
// with a gRPC address free at once, within the retry budget; the first
// answer that is not UNAVAILABLE wins and the other attempt is
// cancelled. The caller ends the winner's target; the loser's is ended
// here.
func hedgedCall[T any](ctx context.Context, g *Gateway, rt routing, first *target, call func(context.Context, inferencepb.GRPCInferenceServiceClient) (T, error), delay time.Duration, ctl *modelCtl) attempt[T] {
	h := gatewayHedge[T](g, rt, first, ctl, func(t *target) bool { return t.r.grpc != "" })
	h.send = func(ctx context.Context, t *target) (T, error) { return callOn(ctx, g, t, call) }
	h.good = func(_ T, err error) bool { return status.Code(err) != codes.Unavailable }
	a := h.run(ctx, first, delay)
	a.cancel() // a unary answer is complete
	return a
}

// grpcError converts a gateway error to a gRPC status.
func grpcError(err error) error {
	c := codes.Internal
	switch {
	case errors.Is(err, ErrNoModel), errors.Is(err, ErrNoRevision):
		c = codes.NotFound
	case errors.Is(err, ErrOverloaded), errors.Is(err, ErrScaledToZero), errors.Is(err, ErrUpstream):
		c = codes.Unavailable
	case errors.Is(err, ErrRateLimited):
		c = codes.ResourceExhausted
	case errors.Is(err, ErrUnauthenticated):
		c = codes.Unauthenticated
	case errors.Is(err, ErrForbidden):
		c = codes.PermissionDenied
	case errors.Is(err, context.DeadlineExceeded):
		c = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		c = codes.Canceled
	}
	return status.Error(c, err.Error())
}
