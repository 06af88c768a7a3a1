// Command deploybot publishes static sites to S3 as immutable releases and
// flips CloudFront between them. See README.md and `deploybot help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	// Deploy windows and retention schedules name IANA time zones; the
	// database is built in (about 450 KB), so a minimal image without
	// /usr/share/zoneinfo reads them the same as a laptop.
	_ "time/tzdata"

	"github.com/deploybot/deploybot/cli"
	"github.com/deploybot/deploybot/releases"
)

// main stops the command on the first Ctrl-C or SIGTERM with the cause
// releases.ErrShutdown, which a deploy takes as "leave me resumable" rather
// than as a failure; a second signal exits at once.
func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel(releases.ErrShutdown)
		<-sigs
		os.Exit(130)
	}()
	code := cli.Run(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	signal.Stop(sigs)
	cancel(nil)
	os.Exit(code)
}
