// Package cli implements the shoal command line: it parses flags and the
// environment into the Config structs of the other packages and runs them.
// It is the only place besides cmd/shoal that reads flags or environment.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
)

// Run runs the shoal command line with args (without the program name) and
// returns the process exit code. It returns when the command is done or,
// for servers, after ctx is done and they have shut down.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "gateway":
		err = runGateway(ctx, args[1:], stdout, stderr)
	case "onnx":
		err = runONNX(ctx, args[1:], stdout, stderr)
	case "up":
		err = runUp(ctx, args[1:], stdout, stderr)
	case "apply":
		err = runApply(ctx, args[1:], stdout, stderr)
	case "get":
		err = runGet(ctx, args[1:], stdout, stderr)
	case "describe":
		err = runDescribe(ctx, args[1:], stdout, stderr)
	case "delete":
		err = runDelete(ctx, args[1:], stdout, stderr)
	case "scale":
		err = runScale(ctx, args[1:], stdout, stderr)
	case "rollout":
		err = runRollout(ctx, args[1:], stdout, stderr)
	case "logs":
		err = runLogs(ctx, args[1:], stdout, stderr)
	case "events":
		err = runEvents(ctx, args[1:], stdout, stderr)
	case "predict":
		err = runPredict(ctx, args[1:], stdout, stderr)
	case "push":
		err = runPush(ctx, args[1:], stdout, stderr)
	case "pull":
		err = runPull(ctx, args[1:], stdout, stderr)
	case "package":
		err = runPackage(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "shoal", version())
	case "help", "-h", "--help":
		usage(stdout)
	default:
		fmt.Fprintf(stderr, "shoal: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "shoal %s: %v\n", args[0], err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "shoal %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// usageError marks an error in the command line itself (exit code 2).
type usageError struct{ error }

func usage(w io.Writer) {
	fmt.Fprint(w, `shoal serves machine-learning models as scalable microservices.

Usage:
  shoal serve [flags] [MODEL_REPOSITORY | MODEL_FILE]   serve models over the Open Inference Protocol v2
  shoal gateway -routes FILE [flags]                    route requests to model replicas (docs/gateway.md)
  shoal up [flags] [FILE | DIR]                         control plane + gateway + replicas on this machine (docs/control-plane.md)
  shoal apply -f FILE                                   create or update ModelDeployments
  shoal get [NAME] | describe NAME | delete NAME        read and delete ModelDeployments (-o table|json|yaml)
  shoal scale NAME REPLICAS                             pin a deployment's replica count
  shoal rollout status|pause|resume|promote|undo NAME   drive a rollout
  shoal logs NAME | events NAME                         replica output, recorded events
  shoal predict NAME JSON|@FILE                         send an inference request through the gateway
  shoal package MODEL -t IMAGE -o FILE|-push REF        build a model image without Docker (docs/packaging.md)
  shoal push MODEL_DIR oci://HOST/REPO:TAG              push a model as an OCI artifact (docs/registry.md)
  shoal pull oci://HOST/REPO[:TAG|@DIGEST] DIR          pull a model artifact into a model repository
  shoal onnx conformance [-o FILE] [DIR]                run the ONNX conformance suite (docs/onnx.md)
  shoal version                                         print the version

Run "shoal COMMAND -h" for a command's flags.
`)
}

// version returns the module version stamped by the Go toolchain.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// newLogger builds the process logger from the -log-level and -log-format
// flags.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("-log-level %q: want debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Errorf("-log-format %q: want text or json", format)}
}
