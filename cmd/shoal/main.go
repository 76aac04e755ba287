// Command shoal serves machine-learning models as scalable microservices.
// Every role is a subcommand; run "shoal help" for the list.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/shoal-ml/shoal/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
