// Package app wires Agora's packages together from a configuration: it
// opens the store, builds the upstream chain, the checksum database and
// the mirror, and serves HTTP until told to stop.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/agora-mirror/agora/internal/access"
	"github.com/agora-mirror/agora/internal/config"
	"github.com/agora-mirror/agora/internal/direct"
	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/metrics"
	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/policy"
	"github.com/agora-mirror/agora/internal/server"
	"github.com/agora-mirror/agora/internal/store"
	"github.com/agora-mirror/agora/internal/sumdb"
	"github.com/agora-mirror/agora/internal/ui"
	"github.com/agora-mirror/agora/internal/upstream"
)

// App is a configured, not yet serving, Agora.
type App struct {
	cfg     *config.Config
	log     *slog.Logger
	handler *server.Handler
	tlsCert *tls.Certificate // loaded by New when tls_cert is set
	mirror  *mirror.Mirror
	closers
}

// closers are the functions that release what was opened, run last first.
type closers []func() error

// Close runs the closers, last first, once.
func (c *closers) Close() error {
	var errs []error
	for i := len(*c) - 1; i >= 0; i-- {
		errs = append(errs, (*c)[i]())
	}
	*c = nil
	return errors.Join(errs...)
}

// openStore opens the configured store: object storage when a URL is
// set, else the disk store in the data directory.
func openStore(ctx context.Context, cfg *config.Config) (store.Store, func() error, error) {
	if cfg.Storage == "" {
		st, err := store.OpenDisk(cfg.DataDir)
		return st, func() error { return nil }, err
	}
	st, err := store.OpenBlob(ctx, cfg.Storage, filepath.Join(cfg.DataDir, "tmp"))
	if err != nil {
		return nil, nil, err
	}
	return st, st.Close, nil
}

// databaseDSN returns the configured metadata database, by default SQLite
// in the data directory.
func databaseDSN(cfg *config.Config) string {
	if cfg.Database != "" {
		return cfg.Database
	}
	return "sqlite:" + filepath.Join(cfg.DataDir, "agora.db")
}

// Data is a mirror's stored data, for the commands that work on it
// directly: the store, the metadata database and the checksum database
// configuration (nil when there is none).
type Data struct {
	Store store.Store
	Meta  *meta.DB
	SumDB *sumdb.Config
	closers
}

// OpenData opens the store and the metadata database cfg names.
func OpenData(ctx context.Context, cfg *config.Config) (d *Data, err error) {
	d = new(Data)
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	st, closeStore, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d.Store = st
	d.closers = append(d.closers, closeStore)
	if d.Meta, err = meta.Open(ctx, databaseDSN(cfg)); err != nil {
		return nil, err
	}
	d.closers = append(d.closers, d.Meta.Close)
	sc, err := sumdb.ParseGOSUMDB(cfg.SumDB)
	switch {
	case errors.Is(err, sumdb.ErrOff):
	case err != nil:
		return nil, err
	default:
		d.SumDB = &sc
	}
	return d, nil
}

// New builds an App from cfg. Close releases what it opened.
func New(cfg *config.Config, log *slog.Logger) (app *App, err error) {
	a := &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data, err := OpenData(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, data.Close)
	if cfg.OTLPEndpoint != "" {
		shutdown, err := startTracing(ctx, cfg.OTLPEndpoint)
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, shutdown)
	}
	st, md := data.Store, data.Meta
	uopts := upstream.Options{Timeout: cfg.UpstreamTimeout, Logger: log}
	chain, err := upstream.ParseChain(cfg.Upstream, uopts)
	if err != nil {
		return nil, err
	}
	if cfg.Offline {
		log.Warn("offline: serving only what is held; no upstream, version control or checksum database is contacted")
	} else if chain.Off() && !chain.Direct {
		log.Warn("no upstream proxy: serving only what the store holds (and what routes fetch from version control)", "upstream", cfg.Upstream)
	}
	fetcher, err := newFetcher(cfg, log)
	if err != nil {
		return nil, err
	}
	router, noSum, err := newRouter(cfg, chain, uopts, mirror.DirectSource{Fetcher: fetcher})
	if err != nil {
		return nil, err
	}
	met := metrics.New()
	mo := mirror.Options{
		Offline:     cfg.Offline,
		Observer:    met,
		Store:       st,
		Catalog:     md,
		Router:      router,
		ListTTL:     cfg.ListTTL,
		FillTimeout: cfg.FillTimeout,
		MemoryCache: cfg.MemoryCacheMiB << 20,
		FillAhead:   map[string]mirror.FillAhead{"mod": mirror.AheadMod, "zip": mirror.AheadZip}[cfg.FillAhead],
		Logger:      log,
	}
	if cfg.MemoryCacheMiB == 0 {
		mo.MemoryCache = -1
	}
	policy := access.New(access.Options{Protected: cfg.Auth, Tokens: md, TrustedProxies: cfg.TrustedProxies})
	so := server.Options{Logger: log, LogClientAddr: cfg.LogClientAddr, TrustedProxies: cfg.TrustedProxies, Observer: met, Metrics: met.Handler(),
		Catalog: md, ZipRedirect: cfg.ZipRedirect, Access: policy,
		UI: ui.New(ui.Options{Catalog: md, Store: st, Access: policy, Traffic: met, Config: cfg.Summary(), Started: time.Now()}),
		Ready: func(ctx context.Context) error {
			if _, err := st.List(ctx, "mod"); err != nil {
				return fmt.Errorf("store: %w", err)
			}
			return md.Ping(ctx)
		}}
	if data.SumDB == nil {
		log.Warn("no checksum database: module hashes are not verified against one, only pinned when first fetched", "sumdb", cfg.SumDB)
	} else {
		db := sumdb.New(*data.SumDB, st, sumdb.Options{State: md, Offline: cfg.Offline, Chain: chain, Upstream: uopts, NoSum: noSum, Logger: log})
		mo.Verifier = db
		router.Verify = true
		so.SumDB = sumdb.NewHandler(db)
	}
	so.Mirror = mirror.New(mo)
	if cfg.ZipRedirect > 0 && !so.Mirror.CanSignURLs() {
		return nil, fmt.Errorf("zip_redirect needs object storage (storage = \"s3://...\"): %w", mirror.ErrCannotSign)
	}
	totals := cachedTotals(md)
	met.Gauge("agora_store_versions", "Module versions held (not pruned).", func() float64 { return float64(totals().Versions) })
	met.Gauge("agora_store_modules", "Modules with a version held.", func() float64 { return float64(totals().Modules) })
	met.Gauge("agora_store_bytes", "Bytes of the module zips held.", func() float64 { return float64(totals().Bytes) })
	met.Gauge("agora_fills_in_progress", "Fills (fetch, check, store) running now.", func() float64 {
		return float64(so.Mirror.FillsInProgress())
	})
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls_cert and tls_key: %w", err)
		}
		a.tlsCert = &cert
	} else if cfg.Auth != "" {
		log.Warn("access control without tls_cert: the go command sends netrc and GOAUTH credentials only over HTTPS, so put a TLS-terminating proxy in front", "auth", cfg.Auth)
	}
	a.handler = server.New(so)
	a.mirror = so.Mirror
	return a, nil
}

// startTracing sends the traces of fills to an OpenTelemetry collector
// (OTLP over HTTP) and returns the function that flushes and stops it.
func startTracing(ctx context.Context, endpoint string) (func() error, error) {
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(strings.TrimSuffix(endpoint, "/")+"/v1/traces"))
	if err != nil {
		return nil, fmt.Errorf("otlp_endpoint: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "agora"))))
	otel.SetTracerProvider(tp)
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return tp.Shutdown(ctx)
	}, nil
}

// cachedTotals returns a function that reads the metadata's totals at most
// every 30 seconds, for gauges read at each scrape.
func cachedTotals(md *meta.DB) func() meta.Totals {
	var mu sync.Mutex
	var last meta.Totals
	var at time.Time
	return func() meta.Totals {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) > 30*time.Second {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if t, err := md.Totals(ctx); err == nil {
				last, at = t, time.Now()
			}
		}
		return last
	}
}

// newFetcher returns the fetcher for version control.
func newFetcher(cfg *config.Config, log *slog.Logger) (*direct.Fetcher, error) {
	dir := cfg.DirectDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "direct")
	}
	return direct.New(direct.Options{
		Dir:           dir,
		Insecure:      cfg.Insecure,
		Netrc:         cfg.Netrc,
		Tokens:        cfg.GitTokens,
		SSHKey:        cfg.SSHKey,
		SSHKnownHosts: cfg.SSHKnownHosts,
		GitSSHCommand: cfg.GitSSHCommand,
		GitConfig:     cfg.GitConfig,
		MaxConcurrent: cfg.DirectConcurrency,
		Timeout:       cfg.DirectTimeout,
		Logger:        log,
	})
}

// newRouter builds the routing policy: the private patterns first, then
// the configured routes, then the default chain (falling back to version
// control when the upstream list ends in "direct"). It also returns the
// patterns the checksum database must never hear of: nosum, and every
// private pattern.
func newRouter(cfg *config.Config, chain *upstream.Chain, uopts upstream.Options, direct mirror.Source) (*mirror.PolicyRouter, string, error) {
	source := func(c *upstream.Chain) mirror.Source {
		var s mirror.Source = mirror.ChainSource{Chain: c}
		if c.Direct {
			s = mirror.FallbackSource{Primary: s, Fallback: direct, AnyError: c.DirectAfterAnyError()}
		}
		return s
	}
	r := &mirror.PolicyRouter{Default: source(chain), Chains: make(map[string]mirror.Source), Direct: direct}
	names := make(map[string]bool)
	for name, list := range cfg.Upstreams {
		c, err := upstream.ParseChain(list, uopts)
		if err != nil {
			return nil, "", fmt.Errorf("upstream chain %q: %w", name, err)
		}
		r.Chains[name] = source(c)
		names[name] = true
	}
	var rules []policy.Rule
	if cfg.Private != "" {
		rules = append(rules, policy.Rule{Pattern: cfg.Private, Action: policy.Private})
	}
	for i, rc := range cfg.Routes {
		a, err := policy.ParseAction(rc.Action)
		if err != nil {
			return nil, "", fmt.Errorf("route %d: %w", i+1, err)
		}
		rules = append(rules, policy.Rule{Pattern: rc.Pattern, Action: a, Chain: rc.Upstream, Versions: rc.Versions})
	}
	p, err := policy.New(rules, names)
	if err != nil {
		return nil, "", err
	}
	r.Policy = p
	return r, NoSum(cfg), nil
}

// NoSum returns the module path patterns the checksum database must never
// hear of: the nosum setting, and every private pattern (the private
// setting and private routes).
func NoSum(cfg *config.Config) string {
	noSum := []string{cfg.NoSum, cfg.Private}
	for _, rc := range cfg.Routes {
		if a, err := policy.ParseAction(rc.Action); err == nil && a == policy.Private {
			noSum = append(noSum, rc.Pattern)
		}
	}
	return strings.Join(slices.DeleteFunc(noSum, func(s string) bool { return s == "" }), ",")
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
	return a.ServeOn(ctx, ln, grace)
}

// closeMirror stops the mirror's fills (filling ahead, and fills whose
// requests are gone) before the store and database close, waiting for them
// up to grace.
func (a *App) closeMirror(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := a.mirror.Close(ctx); err != nil {
		a.log.Warn("fills still running at shutdown", "err", err)
	}
}

// ServeOn is Serve on a listener of the caller's (which it closes).
func (a *App) ServeOn(ctx context.Context, ln net.Listener, grace time.Duration) error {
	const readHeaderTimeout, idleTimeout = 10 * time.Second, 2 * time.Minute
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	attrs := []any{"addr", ln.Addr().String(), "data_dir", a.cfg.DataDir, "upstream", a.cfg.Upstream, "sumdb", a.cfg.SumDB}
	for _, kv := range a.cfg.Summary() {
		if (kv[0] == "storage" || kv[0] == "database") && kv[1] != "" {
			attrs = append(attrs, kv[0], kv[1]) // redacted
		}
	}
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
	var hot *server.HotListener
	if a.tlsCert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*a.tlsCert}}
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	} else {
		// Answers held (.info and .mod in memory, zips on disk) go out
		// below net/http.
		hot = server.NewHotListener(a.handler, ln, idleTimeout, readHeaderTimeout)
		go func() { errc <- srv.Serve(hot) }()
	}
	// Which versions are requested is recorded once a minute (for
	// prune), sooner when many are noted, and at shutdown.
	flushDone := make(chan struct{})
	defer func() {
		close(flushDone)
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.mirror.FlushUsage(fctx); err != nil {
			a.log.Warn("recording version usage", "err", err)
		}
	}()
	go func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-flushDone:
				return
			case <-t.C:
			case <-a.mirror.UsageFull():
			}
			if err := a.mirror.FlushUsage(context.Background()); err != nil {
				a.log.Warn("recording version usage", "err", err)
			}
		}
	}()
	select {
	case err := <-errc:
		a.closeMirror(grace)
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err == nil && hot != nil {
		err = hot.Wait(sctx)
	}
	if err == nil {
		err = a.mirror.Close(sctx)
	} else {
		a.closeMirror(grace)
	}
	if err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
