// Command agora is a Go module mirror: point GOPROXY at it.
//
// Usage:
//
//	agora serve [flags]
//	agora prefetch [flags] [go.mod | go.sum | go.work | dir | list file]...
//	agora export [flags] -o FILE [-since TIME | module@version...]
//	agora import [flags] FILE
//	agora verify [flags] [-quarantine]
//	agora prune [flags] -unused-for DURATION [-keep go.sum]... [-apply]
//	agora token create|list|revoke [flags]
//	agora status [-server URL] [-token TOKEN]
//
// Run "agora <command> -h" for the flags; the settings each have a
// matching AGORA_* environment variable and TOML file setting.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agora-mirror/agora/internal/app"
	"github.com/agora-mirror/agora/internal/config"
)

const usage = `agora: a Go module mirror

Usage:
  agora serve [flags]      serve the module proxy protocol
  agora prefetch [flags]   fill the cache with what go.mod, go.sum, go.work files or module@version lists need
  agora export [flags]     write a bundle of module versions and their checksum database proofs
  agora import [flags]     check a bundle and load it into the store
  agora verify [flags]     re-hash every stored version; quarantine what is corrupt or missing
  agora prune [flags]      remove versions not requested for a while (dry run unless -apply)
  agora token ...          create, list and revoke client access tokens
  agora status [flags]     what a running Agora is doing

Run agora <command> -h for its flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "prefetch":
		return prefetchCmd(args[1:], stderr)
	case "export":
		return export(args[1:], stderr)
	case "import":
		return importBundle(args[1:], stderr)
	case "verify":
		return verifyStore(args[1:], stderr)
	case "prune":
		return pruneStore(args[1:], stderr)
	case "token":
		return tokenCmd(args[1:], os.Stdout, stderr)
	case "status":
		return statusCmd(args[1:], os.Stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stderr, usage)
		return 0
	}
	fmt.Fprintf(stderr, "agora: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func serve(args []string, stderr io.Writer) int {
	cfg, err := config.Load(config.Sources{Args: args, Output: stderr})
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "agora serve: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	routeStdLog(log)
	a, err := app.New(cfg, log)
	if err != nil {
		log.Error("starting", "err", err)
		return 1
	}
	defer a.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := a.Serve(ctx, 30*time.Second); err != nil {
		log.Error("serving", "err", err)
		return 1
	}
	return 0
}

// routeStdLog sends what libraries write with the standard log package
// (the AWS SDK's transfer manager reports a multipart upload that lost a
// write-once race that way) through l's handler, one warn-level record
// per line, instead of as bare lines on stderr. l's handler must not
// write through the log package itself (slog's default handler does: the
// two would wait on each other); newLogger's never do.
func routeStdLog(l *slog.Logger) {
	stdlog.SetFlags(0)
	stdlog.SetOutput(slog.NewLogLogger(l.Handler(), slog.LevelWarn).Writer())
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
