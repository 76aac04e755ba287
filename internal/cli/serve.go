package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/shoal-ml/shoal/examples"
	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/httpmodel"
	"github.com/shoal-ml/shoal/internal/backend/lightgbm"
	"github.com/shoal-ml/shoal/internal/backend/onnx"
	"github.com/shoal-ml/shoal/internal/backend/python"
	"github.com/shoal-ml/shoal/internal/backend/xgboost"
	"github.com/shoal-ml/shoal/internal/registry"
	"github.com/shoal-ml/shoal/internal/serve"
)

// Loaders returns the backends built into this binary, by format name;
// those that run processes log their output to log.
func Loaders(log *slog.Logger) map[string]backend.Loader {
	return map[string]backend.Loader{
		"xgboost":  xgboost.Load,
		"lightgbm": lightgbm.Load,
		"onnx":     onnx.Load,
		"http":     httpmodel.Loader(log),
		"python":   python.Loader(log),
	}
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var cfg serve.Config
	fl.StringVar(&cfg.HTTPAddr, "http", ":8080", "REST listen `address`")
	fl.StringVar(&cfg.GRPCAddr, "grpc", ":8081", "gRPC listen `address` (empty: no gRPC)")
	fl.StringVar(&cfg.DefaultModel, "default-model", "", "model served by POST /predict (default: the only model)")
	fl.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 64<<20, "largest request body accepted (413 beyond)")
	fl.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", 0, "time allowed to read request headers (0: 10s)")
	fl.DurationVar(&cfg.IdleTimeout, "idle-timeout", 0, "idle keep-alive connection timeout (0: 120s)")
	fl.DurationVar(&cfg.DefaultTimeout, "default-timeout", 0, "timeout of requests that set none (0: none)")
	fl.DurationVar(&cfg.DrainDelay, "drain-delay", 0, "on SIGTERM, keep serving unready this long before closing listeners")
	fl.DurationVar(&cfg.GracePeriod, "grace-period", 0, "on SIGTERM, time allowed for in-flight requests (0: 30s)")
	tlsCert := fl.String("tls-cert", "", "TLS certificate `file` (PEM); with -tls-key, serve HTTPS and gRPC over TLS")
	tlsKey := fl.String("tls-key", "", "TLS private key `file` (PEM)")
	clientCA := fl.String("tls-client-ca", "", "CA certificates `file` (PEM): require client certificates signed by them (mutual TLS)")
	level := fl.String("log-level", "info", "log level: debug, info, warn, error")
	format := fl.String("log-format", "text", "log format: text or json")
	cacheDir := fl.String("model-cache", modelCacheDir(), "`directory` of the models pulled for oci:// references, by digest ($SHOAL_MODEL_CACHE)")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "Usage: shoal serve [flags] [MODEL_REPOSITORY | MODEL_FILE | oci://HOST/REPO[:TAG|@DIGEST]]\n\n"+
			"Serves a model repository (<model>/<version>/ with model.yaml) or one model file\n"+
			"(.json XGBoost, .txt LightGBM). With no argument it serves the built-in example.\n"+
			"An oci:// model artifact is pulled into -model-cache and verified first, or\n"+
			"taken from there when its digest is cached (docs/registry.md).\n\nFlags:\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fl.NArg() > 1 {
		return usageError{fmt.Errorf("want at most one model repository or file, got %d", fl.NArg())}
	}
	log, err := newLogger(stderr, *level, *format)
	if err != nil {
		return err
	}
	cfg.Logger, cfg.Loaders, cfg.Version = log, Loaders(log), version()
	cfg.Repository = fl.Arg(0)
	if cfg.TLS, err = serverTLS(*tlsCert, *tlsKey, *clientCA); err != nil {
		return err
	}
	if registry.IsReference(cfg.Repository) {
		dir, digest, err := (&registry.Cache{Dir: *cacheDir}).Fetch(ctx, cfg.Repository)
		if err != nil {
			return err
		}
		log.Info("model artifact verified", "ref", cfg.Repository, "digest", digest.String(), "dir", dir)
		cfg.Repository = dir
	} else if cfg.Repository == "" {
		dir, err := extractExamples()
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.Repository = dir
		log.Info("no model given: serving the built-in example repository", "models", "iris")
	} else if _, err := os.Stat(cfg.Repository); err != nil {
		return fmt.Errorf("model repository: %w", err)
	}
	s, err := serve.New(cfg)
	if err != nil {
		return err
	}
	log.Info("serving", "repository", cfg.Repository, "http", cfg.HTTPAddr, "grpc", cfg.GRPCAddr, "tls", cfg.TLS != nil)
	return s.Run(ctx)
}

// extractExamples copies the embedded example repository to a new
// temporary directory and returns its path.
func extractExamples() (string, error) {
	dir, err := os.MkdirTemp("", "shoal-examples-")
	if err != nil {
		return "", err
	}
	root, err := fs.Sub(examples.Models, "models")
	if err != nil {
		return "", err
	}
	if err := os.CopyFS(dir, root); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("extract example models: %w", err)
	}
	return filepath.Clean(dir), nil
}
