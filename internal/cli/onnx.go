package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/shoal-ml/shoal/internal/backend/onnx"
)

// defaultConformanceDir is where the ONNX backend test data lies when run
// from the repository root: the shared directory beside the clone.
const defaultConformanceDir = "../shared/conformance/onnx"

// runONNX runs "shoal onnx SUBCOMMAND".
func runONNX(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "conformance" {
		return usageError{fmt.Errorf("want a subcommand: conformance")}
	}
	fl := flag.NewFlagSet("onnx conformance", flag.ContinueOnError)
	fl.SetOutput(stderr)
	out := fl.String("o", "", "write the Markdown report to this file instead of stdout")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "Usage: shoal onnx conformance [-o FILE] [DIR]\n\nRuns the ONNX backend test data in DIR (default %s) and prints a report.\n", defaultConformanceDir)
		fl.PrintDefaults()
	}
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	if fl.NArg() > 1 {
		return usageError{fmt.Errorf("at most one directory, got %d arguments", fl.NArg())}
	}
	dir := defaultConformanceDir
	if fl.NArg() == 1 {
		dir = fl.Arg(0)
	}
	rep, err := onnx.RunConformance(ctx, dir, nil)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := rep.WriteMarkdown(&buf); err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(buf.Bytes())
	} else {
		err = os.WriteFile(*out, buf.Bytes(), 0o644)
	}
	p, f, u := rep.Counts()
	fmt.Fprintf(stderr, "onnx conformance: %d passed, %d failed, %d unsupported (%.1f%% of claimed tests pass)\n", p, f, u, 100*rep.PassRate())
	return err
}
