package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/examples"
	"github.com/shoal-ml/shoal/internal/control"
	"github.com/shoal-ml/shoal/internal/control/store"
	"github.com/shoal-ml/shoal/internal/gateway"
	"github.com/shoal-ml/shoal/internal/registry"
	"github.com/shoal-ml/shoal/internal/replica/docker"
	"github.com/shoal-ml/shoal/internal/replica/process"
)

// defaultControlAddr is where `shoal up` serves the control API and where
// the other commands look for it (SHOAL_CONTROL overrides).
const defaultControlAddr = "127.0.0.1:8070"

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("up", flag.ContinueOnError)
	fl.SetOutput(stderr)
	stateDir := fl.String("state", ".shoal", "state `directory`: the object store, replica records and logs")
	httpAddr := fl.String("http", "127.0.0.1:8000", "gateway REST listen `address`")
	grpcAddr := fl.String("grpc", "127.0.0.1:8001", "gateway gRPC listen `address` (empty: no gRPC)")
	controlAddr := fl.String("control", defaultControlAddr, "control API listen `address`")
	registryAddr := fl.String("registry", "", "OCI registry listen `address` (empty: under /v2/ on the control API's listener); see docs/registry.md")
	controlKeys := fl.String("control-keys", "", "API keys `file` of the control API and the registry (the format of shoal gateway -keys; models do not apply): requests then need Authorization: Bearer TOKEN, except registry reads from loopback; empty: no authentication")
	controlCert := fl.String("control-tls-cert", "", "TLS certificate `file` (PEM); with -control-tls-key, serve the control API (and the registry on its listener) over HTTPS")
	controlKey := fl.String("control-tls-key", "", "TLS private key `file` (PEM) for -control-tls-cert")
	grace := fl.Duration("grace-period", 10*time.Second, "time a stopping replica has for its in-flight requests")
	leanHTTP := fl.Bool("lean-http", false, leanHTTPUsage)
	gcPercent := fl.Int("gc-percent", 0, gcPercentUsage)
	level := fl.String("log-level", "info", "log level: debug, info, warn, error")
	format := fl.String("log-format", "text", "log format: text or json")
	dockerOn := fl.Bool("docker", false, "run deployments with spec.backend docker as containers on the Docker engine of the environment (DOCKER_HOST); see docs/docker.md")
	dockerBin := fl.String("docker-binary", "", "static linux shoal `binary` for the docker backend's images (empty: this executable, which must be static)")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "Usage: shoal up [flags] [FILE | DIR]\n\n"+
			"Runs the control plane and the gateway in one process, with model replicas as\n"+
			"child `shoal serve` processes, and applies the ModelDeployments of FILE (YAML),\n"+
			"of the *.yaml files of DIR, or one per model of the model repository DIR.\n"+
			"With no argument it deploys the built-in example model (iris).\n"+
			"See docs/control-plane.md.\n\nFlags:\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fl.NArg() > 1 {
		return usageError{fmt.Errorf("want at most one file or directory, got %d", fl.NArg())}
	}
	if (*controlCert == "") != (*controlKey == "") {
		return usageError{errors.New("-control-tls-cert and -control-tls-key go together")}
	}
	ctlTLS, err := serverTLS(*controlCert, *controlKey, "")
	if err != nil {
		return err
	}
	ctlKeys, err := readControlKeys(*controlKeys)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		return err
	}
	if err := setGCPercent(*gcPercent); err != nil {
		return err
	}
	if err := os.MkdirAll(*stateDir, 0o755); err != nil {
		return err
	}
	state, err := filepath.Abs(*stateDir)
	if err != nil {
		return err
	}
	var objs []v1alpha1.ModelDeployment
	if fl.NArg() == 1 {
		objs, err = loadObjects(fl.Arg(0))
	} else {
		objs, err = builtinObjects(state)
	}
	if err != nil {
		return err
	}

	ur, err := openUpRegistry(state, *controlAddr, *registryAddr, log.With("component", "registry"))
	if err != nil {
		return err
	}
	defer ur.Close()
	ur.keys = ctlKeys
	st, err := store.Open(filepath.Join(state, "store.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	for _, d := range objs {
		d.Default()
		if err := d.Validate(); err != nil {
			return fmt.Errorf("%s: %w", d.Metadata.Name, err)
		}
		if err := ur.pinStartup(ctx, st, &d, log); err != nil {
			return err
		}
		if _, err := control.Apply(st, d); err != nil {
			return err
		}
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
	cl, err := net.Listen("tcp", *controlAddr)
	if err != nil {
		hl.Close()
		if gl != nil {
			gl.Close()
		}
		return err
	}
	gatewayURL := "http://" + hl.Addr().String()
	controlURL := "http://" + cl.Addr().String()
	if ctlTLS != nil {
		cl, controlURL = tls.NewListener(cl, ctlTLS), "https://"+cl.Addr().String()
	}

	var ctlp atomic.Pointer[control.Controller]
	wake := func() {
		if c := ctlp.Load(); c != nil {
			c.Wake()
		}
	}
	proc, err := process.New(ctx, process.Config{
		StateDir: state, Grace: *grace, Logger: log.With("component", "replicas"), OnChange: wake,
		OnEvent: func(deployment, reason, msg string) {
			if err := st.Record(deployment, store.ObjectEvent{Type: "Warning", Reason: reason, Message: msg}); err != nil {
				log.Warn("record event", "deployment", deployment, "err", err)
			}
		},
	})
	if err != nil {
		return err
	}
	defer proc.Close()
	backend := &control.Backends{ByName: map[string]control.Backend{"process": proc}}
	if *dockerOn {
		db, err := docker.New(ctx, docker.Config{
			Binary: *dockerBin, Grace: *grace, Logger: log.With("component", "docker"), OnChange: wake,
			Models: &registry.Cache{Dir: modelCacheDir(), Client: ur.client},
		})
		if err != nil {
			return err
		}
		defer db.Close()
		backend.ByName["docker"] = db
	}
	var gw *gateway.Gateway
	ctl, err := control.New(control.Config{
		Store: st, Backend: backend, GatewayURL: gatewayURL, Logger: log.With("component", "control"),
		Stats:          func() []gateway.ModelStats { return gw.Stats() },
		GatewayMetrics: control.ScrapeGateway(gatewayURL + "/metrics"),
	})
	if err != nil {
		return err
	}
	ctlp.Store(ctl)
	gw, err = gateway.New(gateway.Config{
		Source: ctl.Source(), Logger: log.With("component", "gateway"),
		ScaleUp: ctl.ScaleUp, GracePeriod: *grace, LeanHTTP: *leanHTTP,
	})
	if err != nil {
		return err
	}
	api := &http.Server{
		Handler: control.RequireKey(ctlKeys, loopbackPull, ur.handler(control.Handler(control.APIConfig{
			Store: st, Replicas: backend.List, Logs: backend.Logs, GatewayURL: gatewayURL, Rollout: ctl.Rollout,
			Routes: ctl.Source(), ScaleUp: ctl.ScaleUp, // for standalone gateways (shoal gateway -control)
			ResolveModel: ur.resolve,
		}))),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "shoal up: gateway %s, control API %s, state %s\n", gatewayURL, controlURL, *stateDir)
	if len(ctlKeys) > 0 {
		fmt.Fprintf(stdout, "  control API keys: %d (clients: SHOAL_CONTROL_TOKEN or -control-token-file)\n", len(ctlKeys))
	}
	for _, d := range objs {
		fmt.Fprintf(stdout, "  %s: %s/v2/models/%s/infer\n", d.Metadata.Name, gatewayURL, d.Metadata.Name)
	}
	fmt.Fprintf(stdout, "  model registry: oci://%s/ (shoal push DIR oci://%s/NAME:TAG)\n", ur.addr, ur.addr)
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return gw.Serve(ctx, hl, gl) })
	eg.Go(func() error { return ctl.Run(ctx) })
	eg.Go(func() error { return ur.serve(ctx) })
	eg.Go(func() error {
		if err := api.Serve(cl); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	eg.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return api.Shutdown(sctx)
	})
	return eg.Wait()
}

// readControlKeys reads the -control-keys file (empty: none). Every key
// has full access; a key with a rate is refused, as rates do not apply.
func readControlKeys(file string) ([]gateway.APIKey, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	keys, err := gateway.ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no keys", file)
	}
	for _, k := range keys {
		if k.Rate != 0 {
			return nil, fmt.Errorf("%s: key %q: rate limits do not apply to the control API", file, k.Name)
		}
	}
	return keys, nil
}

// loadObjects reads the ModelDeployments of a YAML file, of the *.yaml
// files of a directory, or makes one per model of a model repository.
// Relative model paths are made absolute against the file's directory.
func loadObjects(path string) ([]v1alpha1.ModelDeployment, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return readObjects(path)
	}
	files, _ := filepath.Glob(filepath.Join(path, "*.yaml"))
	more, _ := filepath.Glob(filepath.Join(path, "*.yml"))
	files = append(files, more...)
	if len(files) > 0 {
		var out []v1alpha1.ModelDeployment
		for _, f := range files {
			objs, err := readObjects(f)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
		return out, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(abs)
	if err != nil {
		return nil, err
	}
	var out []v1alpha1.ModelDeployment
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, modelDeployment(e.Name(), abs))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no *.yaml objects and no model directories", path)
	}
	return out, nil
}

// readObjects decodes a YAML file of ModelDeployments.
func readObjects(file string) ([]v1alpha1.ModelDeployment, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	objs, err := v1alpha1.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil, err
	}
	for i := range objs {
		u := objs[i].Spec.Model.URI
		if u != "" && !strings.Contains(u, "://") && !filepath.IsAbs(u) {
			objs[i].Spec.Model.URI = filepath.Join(dir, u)
		}
	}
	return objs, nil
}

// builtinObjects extracts the example repository into the state directory
// (the same path every time, so replicas are adopted across restarts) and
// returns a ModelDeployment of its iris model.
func builtinObjects(state string) ([]v1alpha1.ModelDeployment, error) {
	dir := filepath.Join(state, "examples")
	root, err := fs.Sub(examples.Models, "models")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		tmp, err := os.MkdirTemp(state, "examples-")
		if err != nil {
			return nil, err
		}
		if err := os.CopyFS(tmp, root); err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("extract example models: %w", err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
	}
	return []v1alpha1.ModelDeployment{modelDeployment("iris", dir)}, nil
}

func modelDeployment(name, repo string) v1alpha1.ModelDeployment {
	return v1alpha1.ModelDeployment{
		TypeMeta: v1alpha1.TypeMeta{APIVersion: v1alpha1.APIVersion, Kind: v1alpha1.KindModelDeployment},
		Metadata: v1alpha1.ObjectMeta{Name: name},
		Spec:     v1alpha1.ModelDeploymentSpec{Model: v1alpha1.ModelSource{URI: repo}},
	}
}
