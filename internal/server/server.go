// Package server is Agora's HTTP face: it routes requests to the module
// proxy protocol, the checksum database proxy and the health endpoint,
// writes the answers with their caching headers, maps errors to status
// codes, and logs one line per request.
//
// It is the only package that knows HTTP status codes; the packages
// behind it report errors with sentinel errors and types.
package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/module"

	"github.com/agora-mirror/agora/internal/access"
	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/protocol"
	"github.com/agora-mirror/agora/internal/store"
	"github.com/agora-mirror/agora/internal/sumdb"
	"github.com/agora-mirror/agora/internal/upstream"
)

// Cache-Control values. Answers for modules under access control are
// private: a shared cache must not hand them to others.
const (
	cacheForever        = "public, max-age=31536000, immutable"
	cacheBriefly        = "public, max-age=60"
	cacheNever          = "no-store"
	cacheForeverPrivate = "private, max-age=31536000, immutable"
	cacheBrieflyPrivate = "private, max-age=60"
)

// RequestObserver is told of every answered request, for metrics.
// endpoint is "list", "latest", "info", "mod", "zip", "query", "sumdb",
// "health", "metrics" or "other"; cache is "hit", "miss" or "".
type RequestObserver interface {
	Request(endpoint string, code int, bytes int64, d time.Duration, cache string)
}

// Options configure the handler.
type Options struct {
	Mirror *mirror.Mirror
	// Catalog answers /index and /catalog; nil answers 404 there.
	Catalog Catalog
	// Access decides who may read which modules; nil lets everyone read
	// everything.
	Access *access.Policy
	// UI serves the web interface at / and /ui/; nil answers / with a
	// line of text.
	UI http.Handler
	// ZipRedirect, when positive, answers zip requests with a redirect
	// to a URL of the object store valid that long (the store must
	// sign URLs: see mirror.Mirror.ZipURL).
	ZipRedirect time.Duration
	// Observer is told of every request; nil for none.
	Observer RequestObserver
	// Metrics serves /metrics; nil answers 404 there.
	Metrics http.Handler
	// Ready reports whether Agora can serve (its store is reachable),
	// for /readyz; nil means always ready.
	Ready func(context.Context) error
	// SumDB serves /sumdb/...; nil answers 404 there, so clients go to
	// the database directly.
	SumDB http.Handler
	// Logger receives one line per request.
	Logger *slog.Logger
	// LogClientAddr adds the client's address to request logs.
	LogClientAddr bool
	// TrustedProxies are the reverse proxies in front of Agora: the
	// client logged for a request from one of them is the one its
	// X-Forwarded-For header names (access.ClientAddr).
	TrustedProxies []netip.Prefix
}

// Handler serves Agora's HTTP endpoints.
type Handler struct {
	m           *mirror.Mirror
	ui          http.Handler
	access      *access.Policy
	cat         Catalog
	zipRedirect time.Duration
	sumdb       http.Handler
	log         *slog.Logger
	logAddr     bool
	proxies     []netip.Prefix
	obs         RequestObserver
	metrics     http.Handler
	ready       func(context.Context) error
}

// New returns the handler.
func New(o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{m: o.Mirror, ui: o.UI, access: o.Access, cat: o.Catalog, zipRedirect: o.ZipRedirect, sumdb: o.SumDB, log: o.Logger, logAddr: o.LogClientAddr,
		proxies: o.TrustedProxies, obs: o.Observer, metrics: o.Metrics, ready: o.Ready}
}

// recorder notes the status and size of a response and the cache outcome,
// for the request log. It passes ReadFrom through, so that zips served from
// files still go out with sendfile.
type recorder struct {
	http.ResponseWriter
	status   int
	bytes    int64
	cache    string // "hit", "miss" or ""
	endpoint string // for metrics
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
	}
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	h.serve(rec, r)
	client := "" // for request logs, when the operator asked for addresses
	if h.logAddr && h.log.Enabled(r.Context(), slog.LevelInfo) {
		client = access.ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), h.proxies)
	}
	h.done(r.Context(), r.Method, r.URL.Path, client, start, rec.status, rec.bytes, rec.cache, rec.endpoint)
}

// done records a request answered (by ServeHTTP or the hot path): the
// request metrics, and the request log line when info logs are on.
func (h *Handler) done(ctx context.Context, method, path, client string, start time.Time, status int, bytes int64, cache, endpoint string) {
	if h.obs != nil {
		h.obs.Request(endpoint, status, bytes, time.Since(start), cache)
	}
	if !h.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("path", path),
		slog.Int("status", status),
		slog.Int64("bytes", bytes),
		slog.Duration("duration", time.Since(start)),
	}
	if cache != "" {
		attrs = append(attrs, slog.String("cache", cache))
	}
	if h.logAddr {
		attrs = append(attrs, slog.String("client", client))
	}
	h.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}

func (h *Handler) serve(w *recorder, r *http.Request) {
	w.endpoint = "other"
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		errorText(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: the module proxy protocol is read-only (GET, HEAD)")
		return
	}
	p := r.URL.Path
	// The hottest answers, .info and .mod files served before, straight
	// from memory: a path found there was parsed and checked when it was
	// first answered.
	if data, ctype, endpoint, ok := h.cachedSmall(p); ok {
		w.endpoint, w.cache = endpoint, "hit"
		writeBody(w, r, http.StatusOK, ctype, cacheImmut, data)
		return
	}
	switch {
	case p == "/healthz":
		w.endpoint = "health"
		text(w, r, http.StatusOK, cacheNever, "ok\n")
		return
	case p == "/readyz":
		w.endpoint = "health"
		if h.ready != nil {
			if err := h.ready(r.Context()); err != nil {
				errorText(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
				return
			}
		}
		text(w, r, http.StatusOK, cacheNever, "ready\n")
		return
	case p == "/metrics" && h.metrics != nil:
		w.endpoint = "metrics"
		h.metrics.ServeHTTP(w, r)
		return
	case p == "/index" && h.cat != nil:
		h.serveIndex(w, r)
		return
	case p == "/catalog" && h.cat != nil:
		h.serveCatalog(w, r)
		return
	case h.ui != nil && (p == "/" || strings.HasPrefix(p, "/ui/")):
		w.endpoint = "ui"
		h.ui.ServeHTTP(w, r)
		return
	case p == "/":
		text(w, r, http.StatusOK, cacheNever, "Agora Go module mirror.\nSet GOPROXY to this server's URL.\n")
		return
	case len(p) >= len("/sumdb/") && p[:len("/sumdb/")] == "/sumdb/":
		w.endpoint = "sumdb"
		if h.sumdb == nil {
			errorText(w, http.StatusNotFound, "no checksum database is proxied here")
			return
		}
		// A lookup names a module: the same rules as its files.
		if _, rest, ok := strings.Cut(p, "/lookup/"); ok && h.access.Enabled() {
			epath, _, _ := strings.Cut(rest, "@")
			if path, err := module.UnescapePath(epath); err == nil {
				if err := h.access.Check(r, path); err != nil {
					h.fail(w, r, err)
					return
				}
			}
		}
		h.sumdb.ServeHTTP(w, r)
		return
	}
	req, err := protocol.Parse(p)
	if err != nil {
		errorText(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := h.access.Check(r, req.Module); err != nil {
		h.fail(w, r, err)
		return
	}
	if r.Header.Get("Disable-Module-Fetch") == "true" {
		// As the public mirror's: answer only from what is held.
		r = r.WithContext(mirror.WithoutFetch(r.Context()))
	}
	w.endpoint = req.Kind.String()
	if req.Query {
		w.endpoint = "query"
	}
	h.serveModule(w, r, req)
}

func (h *Handler) serveModule(w *recorder, r *http.Request, req protocol.Request) {
	ctx := r.Context()
	var data []byte
	var hit bool
	var err error
	ctype, cache := ctypeJSON, cacheImmut
	switch req.Kind {
	case protocol.List:
		data, err = h.m.List(ctx, req.Module)
		ctype, cache = ctypeText, cacheShort
	case protocol.Latest:
		data, err = h.m.Latest(ctx, req.Module)
		cache = cacheShort
	case protocol.Info:
		if req.Query {
			data, err = h.m.Query(ctx, req.Module, req.Version)
			cache = cacheShort
		} else {
			data, hit, err = h.m.Info(ctx, req.Module, req.Version)
			w.cache = outcome(hit, err)
		}
	case protocol.Mod:
		data, hit, err = h.m.Mod(ctx, req.Module, req.Version)
		w.cache = outcome(hit, err)
		ctype = ctypeText
	case protocol.Zip:
		h.serveZip(w, r, req)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeBody(w, r, http.StatusOK, ctype, h.private(req.Module, cache), data)
}

// cachedSmall returns an .info or .mod answer held in memory, found by its
// request path (Mirror.Cached), with its content type and metrics endpoint,
// unless its module is under access control: the fast path of ServeHTTP
// and of the hot path below net/http.
func (h *Handler) cachedSmall(p string) (data []byte, ctype []string, endpoint string, ok bool) {
	if h.m == nil || !strings.HasSuffix(p, ".info") && !strings.HasSuffix(p, ".mod") {
		return nil, nil, "", false
	}
	data, ok = h.m.Cached(p, h.open)
	if !ok {
		return nil, nil, "", false
	}
	if p[len(p)-1] == 'o' { // .info
		return data, ctypeJSON, "info", true
	}
	return data, ctypeText, "mod", true
}

// open reports whether modPath is outside access control: the fast
// paths serve only such modules, leaving the others to the handler, which
// checks the request's credentials.
func (h *Handler) open(modPath string) bool { return !h.access.Protected(modPath) }

// writeBody writes a whole answer: status, content type, length and
// Cache-Control, and the body unless the request is a HEAD. Header values
// are shared, read-only slices: no allocation and no canonicalization per
// request.
func writeBody(w http.ResponseWriter, r *http.Request, code int, ctype, cache []string, data []byte) {
	hd := w.Header()
	hd["Content-Type"] = ctype
	hd["Content-Length"] = []string{strconv.Itoa(len(data))}
	hd["Cache-Control"] = cache
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(data)
	}
}

// Header values for the small answers.
var (
	ctypeJSON         = []string{"application/json"}
	ctypeText         = []string{"text/plain; charset=utf-8"}
	ctypeJSONUTF8     = []string{"application/json; charset=utf-8"}
	cacheNone         = []string{cacheNever}
	cacheImmut        = []string{cacheForever}
	cacheShort        = []string{cacheBriefly}
	cacheImmutPrivate = []string{cacheForeverPrivate}
	cacheShortPrivate = []string{cacheBrieflyPrivate}
)

// private returns the private variant of a Cache-Control value when the
// module is under access control.
func (h *Handler) private(modPath string, cache []string) []string {
	if !h.access.Protected(modPath) {
		return cache
	}
	if cache[0] == cacheForever {
		return cacheImmutPrivate
	}
	return cacheShortPrivate
}

func outcome(hit bool, err error) string {
	switch {
	case err != nil:
		return ""
	case hit:
		return "hit"
	}
	return "miss"
}

// osFiler is implemented by store objects backed by a local file.
type osFiler interface{ OSFile() *os.File }

func (h *Handler) serveZip(w *recorder, r *http.Request, req protocol.Request) {
	if h.zipRedirect > 0 {
		u, hit, err := h.m.ZipURL(r.Context(), req.Module, req.Version, h.zipRedirect)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		w.cache = outcome(hit, nil)
		w.Header().Set("Cache-Control", cacheNever) // the URL expires
		http.Redirect(w, r, u, http.StatusFound)
		return
	}
	obj, hit, err := h.m.Zip(r.Context(), req.Module, req.Version)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer obj.Close()
	w.cache = outcome(hit, nil)
	hd := w.Header()
	hd.Set("Content-Type", "application/zip")
	hd["Cache-Control"] = h.private(req.Module, cacheImmut)
	hd.Set("ETag", zipETag(obj.ModTime(), obj.Size()))
	var content io.ReadSeeker = obj
	if f, ok := obj.(osFiler); ok {
		content = f.OSFile()
	}
	http.ServeContent(w, r, "", obj.ModTime(), content)
}

// status maps an error from the mirror to an HTTP status.
func status(err error) int {
	switch {
	case errors.Is(err, access.ErrUnauthenticated), errors.Is(err, access.ErrBadToken):
		return http.StatusUnauthorized
	case errors.Is(err, access.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, access.ErrTooManyFailures):
		return http.StatusTooManyRequests
	case errors.Is(err, mirror.ErrDenied):
		return http.StatusForbidden
	case errors.Is(err, upstream.ErrNotFound):
		// Includes "fetching is off": either way, not here.
		return http.StatusNotFound
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, upstream.ErrTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, syscall.ENOSPC):
		return http.StatusInsufficientStorage
	case errors.Is(err, sumdb.ErrChecksumMismatch), errors.Is(err, mirror.ErrBadUpstream),
		errors.Is(err, sumdb.ErrNotFound), errors.Is(err, sumdb.ErrSecurity), errors.Is(err, mirror.ErrSourceFailed):
		return http.StatusBadGateway
	case errors.Is(err, store.ErrInvalidKey):
		return http.StatusBadRequest
	}
	var ue *upstream.Error
	if errors.As(err, &ue) {
		return http.StatusBadGateway
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return http.StatusBadGateway
	}
	if errors.Is(err, upstream.ErrTooLarge) {
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

func (h *Handler) fail(w *recorder, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The client went away; nobody reads the answer.
		w.status = 499
		return
	}
	code := status(err)
	switch code {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="agora"`)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "60")
	}
	if code >= 500 {
		h.log.Warn("request failed", "path", r.URL.Path, "status", code, "err", err)
	}
	errorText(w, code, err.Error())
}

// errorText writes a plain-text error body, which the go command shows
// to its user.
func errorText(w http.ResponseWriter, code int, msg string) {
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("Cache-Control", cacheNever)
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}

func text(w http.ResponseWriter, r *http.Request, code int, cache, msg string) {
	writeBody(w, r, code, ctypeText, []string{cache}, []byte(msg))
}
