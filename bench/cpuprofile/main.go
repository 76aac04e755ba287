// Command cpuprofile runs the shoal command line (internal/cli) in-process
// under the Go CPU profiler, so the profile of `shoal serve` under
// bench/loadgen can be read with `go tool pprof` without a profiling
// endpoint in the server. The profile is written to -o when the command
// returns, which `shoal serve` does on SIGINT or SIGTERM.
//
//	cpuprofile -o serve.pprof serve -http 127.0.0.1:18081 -grpc '' examples/models
//	go tool pprof -top serve.pprof
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/shoal-ml/shoal/internal/cli"
)

func main() {
	out := flag.String("o", "cpu.pprof", "profile output `file`")
	flag.Parse()
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpuprofile:", err)
		os.Exit(1)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "cpuprofile:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, flag.Args(), os.Stdout, os.Stderr)
	stop()
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "cpuprofile:", err)
		code = 1
	}
	os.Exit(code)
}
