package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agora-mirror/agora/internal/app"
	"github.com/agora-mirror/agora/internal/config"
	"github.com/agora-mirror/agora/internal/prefetch"
)

func prefetchCmd(args []string, stderr io.Writer) int {
	var server string
	var concurrency int
	cfg, err := config.Load(config.Sources{Command: "agora prefetch", Args: args, Output: stderr, Positional: true,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&server, "server", "", "URL of a running Agora to fill; without it, Agora's store (the settings below) is filled directly")
			fs.IntVar(&concurrency, "concurrency", 8, "downloads in parallel")
		}})
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "agora prefetch: %v\n", err)
		return 2
	}
	if len(cfg.Args) == 0 {
		fmt.Fprintf(stderr, "agora prefetch: name go.mod, go.sum or go.work files, directories, or files of module@version lines (- for stdin)\n")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if server == "" {
		// An Agora of our own on the store, on a loopback port, for
		// the go command to talk to.
		a, err := app.New(cfg, newLogger(&config.Config{LogLevel: "warn"}, stderr))
		if err != nil {
			fmt.Fprintf(stderr, "agora prefetch: %v\n", err)
			return 1
		}
		defer a.Close()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintf(stderr, "agora prefetch: %v\n", err)
			return 1
		}
		sctx, cancel := context.WithCancel(context.Background())
		served := make(chan struct{})
		go func() {
			defer close(served)
			a.ServeOn(sctx, ln, 30*time.Second)
		}()
		defer func() { cancel(); <-served }()
		server = "http://" + ln.Addr().String()
	}
	res, err := prefetch.Run(ctx, cfg.Args, os.Stdin, prefetch.Options{
		Server: server, Concurrency: concurrency, Progress: stderr, Terminal: isTerminal(stderr),
	})
	if err != nil {
		fmt.Fprintf(stderr, "agora prefetch: %v\n", err)
		return 1
	}
	if res.Count(prefetch.Failed) > 0 || len(res.RootErrors) > 0 {
		return 1
	}
	return 0
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
