package serve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
)

// Run listens on Config.HTTPAddr (and Config.GRPCAddr if set), loads the
// repository in the background and serves until ctx is done; then it shuts
// down gracefully (see Serve). It returns after every listener and model is
// closed.
func (s *Server) Run(ctx context.Context) error {
	hl, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return err
	}
	var gl net.Listener
	if s.cfg.GRPCAddr != "" {
		if gl, err = net.Listen("tcp", s.cfg.GRPCAddr); err != nil {
			hl.Close()
			return err
		}
	}
	return s.Serve(ctx, hl, gl)
}

// Serve serves REST on hl and gRPC on gl (nil: none), loading the
// repository in the background; the server turns ready once the initial
// load is done. When ctx is done it shuts down gracefully: readiness turns
// false at once, listeners stay open for Config.DrainDelay, in-flight
// requests get up to Config.GracePeriod to finish, then models are closed.
// It returns after all of that, with the first serving error if any.
func (s *Server) Serve(ctx context.Context, hl, gl net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          nil,
		TLSConfig:         s.cfg.TLS,
	}
	var gs *grpc.Server
	if gl != nil {
		gs = s.GRPCServer()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		serveHTTP := hs.Serve
		if s.cfg.TLS != nil {
			serveHTTP = func(l net.Listener) error { return hs.ServeTLS(l, "", "") }
		}
		if err := serveHTTP(hl); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	if gs != nil {
		g.Go(func() error { return gs.Serve(gl) })
	}
	g.Go(func() error {
		s.LoadAll(gctx) // failures are in the index and logs; they do not stop the server
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		s.setReady(false)
		s.log.Info("shutting down", "drain_delay", s.cfg.DrainDelay, "grace_period", s.cfg.GracePeriod)
		if s.cfg.DrainDelay > 0 && ctx.Err() != nil {
			t := time.NewTimer(s.cfg.DrainDelay)
			<-t.C
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.GracePeriod)
		defer cancel()
		herr := hs.Shutdown(sctx)
		if gs != nil {
			stopped := make(chan struct{})
			go func() { gs.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-sctx.Done():
				gs.Stop()
			}
		}
		return errors.Join(herr, s.Close(sctx))
	})
	return g.Wait()
}
