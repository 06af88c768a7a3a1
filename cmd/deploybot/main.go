// Command deploybot publishes static sites to S3 as immutable releases and
// flips CloudFront between them. See README.md and `deploybot help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/deploybot/deploybot/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}
