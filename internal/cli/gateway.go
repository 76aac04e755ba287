package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"

	"github.com/shoal-ml/shoal/internal/gateway"
	"github.com/shoal-ml/shoal/internal/replica/docker"
)

func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var cfg gateway.Config
	routes := fl.String("routes", "", "routing table `file` (YAML; reloaded when it changes)")
	controlURL := fl.String("control", "", "control plane `URL` (such as http://HOST:8070): watch its routing table and ask it to scale up models at zero (instead of -routes)")
	dockerOn := fl.Bool("docker", false, "route to the running containers labelled shoal.dev/model (or shoal.dev/deployment) on the Docker engine of the environment (DOCKER_HOST; instead of -routes)")
	dockerNet := fl.String("docker-network", "", "with -docker, reach containers that do not publish their ports on this network's `name` (default: a container's only network)")
	httpAddr := fl.String("http", ":8000", "REST listen `address`")
	grpcAddr := fl.String("grpc", ":8001", "gRPC listen `address` (empty: no gRPC)")
	keys := fl.String("keys", "", "API keys `file` (YAML list of {name, sha256, models, rate, burst}; empty: no authentication)")
	jwks := fl.String("jwks", "", "JSON Web Key Set `file`: also accept JWTs signed by these keys as Bearer tokens")
	var jwtCfg gateway.JWTConfig
	fl.StringVar(&jwtCfg.Issuer, "jwt-issuer", "", "required JWT issuer (iss); empty: any")
	fl.StringVar(&jwtCfg.Audience, "jwt-audience", "", "required JWT audience (aud); empty: any")
	fl.StringVar(&jwtCfg.ModelsClaim, "jwt-models-claim", "models", "JWT claim listing the models a token may call")
	fl.Float64Var(&jwtCfg.Rate, "jwt-rate", 0, "per-subject JWT rate limit, requests/s for each \"sub\" claim (tokens without one are then refused); 0: none")
	fl.IntVar(&jwtCfg.Burst, "jwt-burst", 0, "requests a JWT subject may send at once beyond its rate (0: max(1, rate))")
	fl.StringVar(&jwtCfg.RateClaim, "jwt-rate-claim", "", "JWT claim giving the subject's own rate in requests/s (instead of -jwt-rate)")
	controlAuth := controlAuthFlags(fl)
	cert := fl.String("tls-cert", "", "TLS certificate `file` (PEM); with -tls-key, serve HTTPS and gRPC over TLS")
	key := fl.String("tls-key", "", "TLS private key `file` (PEM)")
	replicaCA := fl.String("replica-ca", "", "CA certificates `file` (PEM): dial replicas over TLS (REST and gRPC), trusting these CAs")
	replicaCert := fl.String("replica-cert", "", "client certificate `file` (PEM) shown to replicas (mutual TLS; needs -replica-ca and -replica-key)")
	replicaKey := fl.String("replica-key", "", "client private key `file` (PEM) for -replica-cert")
	replicaName := fl.String("replica-server-name", "", "`name` the replicas' certificates must carry (default: the host of each replica address)")
	fl.DurationVar(&cfg.Timeout, "timeout", 0, "end-to-end timeout of a request whose model sets none (0: 30s)")
	fl.IntVar(&cfg.MaxConcurrency, "max-concurrency", 0, "requests in flight per replica when the model sets none (0: 64)")
	fl.IntVar(&cfg.QueueDepth, "queue", 0, "requests queued per revision when every replica is at its limit (0: 256, <0: none)")
	fl.DurationVar(&cfg.QueueTimeout, "queue-timeout", 0, "longest wait in that queue (0: 1s)")
	fl.IntVar(&cfg.Retries, "retries", 0, "retries per request, each on another replica, only when safe (0: 2, <0: none)")
	fl.Float64Var(&cfg.RetryBudget, "retry-budget", 0, "retries as a share of live traffic (0: 0.2)")
	fl.DurationVar(&cfg.ProbeInterval, "probe-interval", 0, "readiness probe period (0: 2s, <0: no probes)")
	fl.IntVar(&cfg.ActivatorQueue, "activator-queue", 0, "requests held per model while it has no ready replica (0: 1024)")
	fl.DurationVar(&cfg.ActivatorTimeout, "activator-timeout", 0, "longest hold in the activator (0: 60s)")
	fl.StringVar(&cfg.DefaultModel, "default-model", "", "model of POST /predict (default: the only model)")
	fl.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 0, "largest request body (0: 64 MiB)")
	fl.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", 0, "time allowed to read request headers (0: 10s)")
	fl.DurationVar(&cfg.IdleTimeout, "idle-timeout", 0, "idle keep-alive connection timeout (0: 120s)")
	fl.DurationVar(&cfg.GracePeriod, "grace-period", 0, "on SIGTERM, time allowed for in-flight requests (0: 30s)")
	fl.BoolVar(&cfg.LeanHTTP, "lean-http", false, leanHTTPUsage)
	gcPercent := fl.Int("gc-percent", 0, gcPercentUsage)
	level := fl.String("log-level", "info", "log level: debug, info, warn, error")
	format := fl.String("log-format", "text", "log format: text or json")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "Usage: shoal gateway -routes FILE | -control URL | -docker [flags]\n\n"+
			"Routes Open Inference Protocol v2 requests (REST and gRPC) to the replicas of\n"+
			"the routing table in FILE, of the control plane at URL, or of the labelled\n"+
			"containers of a Docker engine, balancing, retrying, splitting and mirroring traffic.\n"+
			"See docs/gateway.md.\n\nFlags:\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fl.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fl.Args())}
	}
	sources := 0
	for _, given := range []bool{*routes != "", *controlURL != "", *dockerOn} {
		if given {
			sources++
		}
	}
	if sources != 1 {
		return usageError{errors.New("give one of -routes FILE, -control URL and -docker")}
	}
	if *dockerNet != "" && !*dockerOn {
		return usageError{errors.New("-docker-network needs -docker")}
	}
	if *jwks == "" && (jwtCfg.Rate != 0 || jwtCfg.Burst != 0 || jwtCfg.RateClaim != "") {
		return usageError{errors.New("-jwt-rate, -jwt-burst and -jwt-rate-claim need -jwks")}
	}
	if *replicaCA == "" && (*replicaCert != "" || *replicaKey != "" || *replicaName != "") {
		return usageError{errors.New("-replica-cert, -replica-key and -replica-server-name need -replica-ca")}
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		return err
	}
	cfg.Logger = log
	source := *routes
	switch {
	case *routes != "":
		cfg.Source = &gateway.FileSource{Path: *routes, OnError: func(err error) {
			log.Error("routing table not reloaded", "file", *routes, "err", err)
		}}
	case *dockerOn:
		cfg.Source = &docker.Discovery{Network: *dockerNet, OnError: func(err error) {
			log.Warn("routing table: docker", "err", err)
		}}
		source = "docker"
	default:
		cs := &gateway.ControlSource{URL: *controlURL, OnError: func(err error) {
			log.Warn("routing table: control plane", "url", *controlURL, "err", err)
		}}
		if _, err := url.Parse(*controlURL); err != nil || !strings.HasPrefix(*controlURL, "http://") && !strings.HasPrefix(*controlURL, "https://") {
			return usageError{fmt.Errorf("-control %q: want http(s)://HOST:PORT", *controlURL)}
		}
		token, tc, err := controlAuth()
		if err != nil {
			return err
		}
		cs.Token = token
		if tc != nil {
			cs.Client = &http.Client{Transport: tlsTransport(tc)} // no timeout: a watch stream lasts
		}
		cfg.Source, cfg.ScaleUp, source = cs, cs.ScaleUp, *controlURL
	}
	if *keys != "" {
		b, err := os.ReadFile(*keys)
		if err != nil {
			return err
		}
		if cfg.Keys, err = gateway.ParseKeys(b); err != nil {
			return fmt.Errorf("%s: %w", *keys, err)
		}
	}
	if *jwks != "" {
		b, err := os.ReadFile(*jwks)
		if err != nil {
			return err
		}
		if jwtCfg.Keys, err = gateway.ParseJWKS(b); err != nil {
			return fmt.Errorf("%s: %w", *jwks, err)
		}
		cfg.JWT = &jwtCfg
	}
	if cfg.TLS, err = serverTLS(*cert, *key, ""); err != nil {
		return err
	}
	if *replicaCA != "" {
		if cfg.ReplicaTLS, err = clientTLS(*replicaCA, *replicaCert, *replicaKey); err != nil {
			return err
		}
		cfg.ReplicaTLS.ServerName = *replicaName
	}
	if err := setGCPercent(*gcPercent); err != nil {
		return err
	}
	g, err := gateway.New(cfg)
	if err != nil {
		return err
	}
	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return err
	}
	var gl net.Listener
	if *grpcAddr != "" {
		if gl, err = net.Listen("tcp", *grpcAddr); err != nil {
			hl.Close()
			return err
		}
	}
	log.Info("gateway", "routes", source, "http", hl.Addr().String(), "grpc", *grpcAddr, "tls", cfg.TLS != nil, "replica_tls", cfg.ReplicaTLS != nil, "keys", len(cfg.Keys), "jwt", cfg.JWT != nil)
	return g.Serve(ctx, hl, gl)
}

// leanHTTPUsage is the text of the -lean-http flag of shoal gateway and
// shoal up.
const leanHTTPUsage = "serve the gateway's REST with shoal's lean HTTP/1.1 server instead of net/http's: less CPU per request; plain text only, no HTTP/2 (docs/gateway.md)"

// gcPercentUsage is the text of the -gc-percent flag of the commands that
// run a gateway (shoal gateway, shoal up).
const gcPercentUsage = "garbage collection target `percent` (0: $GOGC when set, else 400: a gateway's live heap is small, so Go's default 100 collects several times a second under load)"

// setGCPercent applies -gc-percent p: p itself when positive, else
// $GOGC when set (the runtime read it), else 400.
func setGCPercent(p int) error {
	switch {
	case p < 0:
		return usageError{fmt.Errorf("-gc-percent %d: want a positive percent (GOGC=off turns the collector off)", p)}
	case p > 0:
		debug.SetGCPercent(p)
	case os.Getenv("GOGC") == "":
		debug.SetGCPercent(400)
	}
	return nil
}

// serverTLS returns the TLS configuration of a server with the
// certificate and key files (nil when both are empty), requiring client
// certificates signed by the CAs of clientCA when it is not empty.
func serverTLS(cert, key, clientCA string) (*tls.Config, error) {
	if (cert == "") != (key == "") {
		return nil, usageError{errors.New("-tls-cert and -tls-key go together")}
	}
	if cert == "" {
		if clientCA != "" {
			return nil, usageError{errors.New("-tls-client-ca needs -tls-cert and -tls-key")}
		}
		return nil, nil
	}
	c, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		if cfg.ClientCAs, err = certPool(clientCA); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// clientTLS returns the TLS configuration of a client that trusts the CAs
// of the file ca and, when cert and key are given, shows that certificate.
func clientTLS(ca, cert, key string) (*tls.Config, error) {
	pool, err := certPool(ca)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if (cert == "") != (key == "") {
		return nil, usageError{errors.New("a client certificate and its key go together")}
	}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// certPool reads the PEM certificates of file.
func certPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate", file)
	}
	return pool, nil
}
