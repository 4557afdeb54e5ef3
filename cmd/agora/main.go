// Command agora is a Go module mirror: point GOPROXY at it.
//
// Usage:
//
//	agora serve [flags]
//
// Run "agora serve -h" for the flags; each has a matching AGORA_*
// environment variable and TOML file setting.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
  agora serve [flags]   serve the module proxy protocol (agora serve -h for flags)
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

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
