// Package app wires Agora's packages together from a configuration: it
// opens the store, builds the upstream chain, the checksum database and
// the mirror, and serves HTTP until told to stop.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/agora-mirror/agora/internal/config"
	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/server"
	"github.com/agora-mirror/agora/internal/store"
	"github.com/agora-mirror/agora/internal/sumdb"
	"github.com/agora-mirror/agora/internal/upstream"
)

// App is a configured, not yet serving, Agora.
type App struct {
	cfg     *config.Config
	log     *slog.Logger
	handler http.Handler
}

// New builds an App from cfg.
func New(cfg *config.Config, log *slog.Logger) (*App, error) {
	st, err := store.OpenDisk(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	uopts := upstream.Options{Timeout: cfg.UpstreamTimeout, Logger: log}
	chain, err := upstream.ParseChain(cfg.Upstream, uopts)
	if err != nil {
		return nil, err
	}
	if chain.Direct {
		log.Warn("upstream list contains \"direct\": fetching from version control is not supported yet; the entry and those after it are skipped", "upstream", cfg.Upstream)
	}
	if chain.Off() {
		log.Warn("no upstream proxy: serving only what the store holds", "upstream", cfg.Upstream)
	}
	mo := mirror.Options{
		Store:       st,
		Chain:       chain,
		ListTTL:     cfg.ListTTL,
		FillTimeout: cfg.FillTimeout,
		MemoryCache: cfg.MemoryCacheMiB << 20,
		Logger:      log,
	}
	if cfg.MemoryCacheMiB == 0 {
		mo.MemoryCache = -1
	}
	so := server.Options{Logger: log, LogClientAddr: cfg.LogClientAddr}
	dbCfg, err := sumdb.ParseGOSUMDB(cfg.SumDB)
	switch {
	case errors.Is(err, sumdb.ErrOff):
		log.Warn("no checksum database: module hashes are not verified against one", "sumdb", cfg.SumDB)
	case err != nil:
		return nil, err
	default:
		db := sumdb.New(dbCfg, st, sumdb.Options{Chain: chain, Upstream: uopts, NoSum: cfg.NoSum, Logger: log})
		mo.Verifier = db
		so.SumDB = sumdb.NewHandler(db)
	}
	so.Mirror = mirror.New(mo)
	return &App{cfg: cfg, log: log, handler: server.New(so)}, nil
}

// Handler returns the App's HTTP handler.
func (a *App) Handler() http.Handler { return a.handler }

// Serve listens on the configured address and serves until ctx is done,
// then shuts down gracefully: it stops accepting, and gives requests in
// flight up to grace to finish.
func (a *App) Serve(ctx context.Context, grace time.Duration) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	attrs := []any{"addr", ln.Addr().String(), "data_dir", a.cfg.DataDir, "upstream", a.cfg.Upstream, "sumdb", a.cfg.SumDB}
	if a.cfg.ConfigFile != "" {
		attrs = append(attrs, "config", a.cfg.ConfigFile)
	}
	if a.cfg.PprofListen != "" {
		pl, err := net.Listen("tcp", a.cfg.PprofListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("pprof listener: %w", err)
		}
		defer pl.Close()
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		go http.Serve(pl, mux)
		a.log.Info("pprof serving", "addr", pl.Addr().String())
	}
	a.log.Info("agora serving", attrs...)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
