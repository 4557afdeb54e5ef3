// Package ui is Agora's web interface: pages rendered on the server from
// templates embedded in the binary, usable without JavaScript (a small
// script only makes the search live). It shows what the mirror holds:
// search by module path, a module's versions with when each arrived, its
// hashes, origin and verification, a version's go.mod and zip file list,
// recent additions, and a status page with the configuration (secrets
// hidden), the sources' health and the last hour's traffic. It follows the
// same access rules as the module proxy protocol.
package ui

import (
	"archive/zip"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/agora-mirror/agora/internal/access"
	"github.com/agora-mirror/agora/internal/humanize"
	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/metrics"
	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/store"
)

//go:embed templates/*.html templates/*.css templates/*.js
var files embed.FS

// Catalog is what the pages read from the metadata database. *meta.DB
// implements it.
type Catalog interface {
	Modules(ctx context.Context, after, match string, limit int) ([]meta.Module, error)
	Versions(ctx context.Context, path string) ([]meta.Version, error)
	Recent(ctx context.Context, n int) ([]meta.Version, error)
	Totals(ctx context.Context) (meta.Totals, error)
}

// Traffic is the recent activity for the status page. *metrics.Metrics
// implements it.
type Traffic interface {
	LastHour() []metrics.Minute
	Sources() []metrics.SourceHealth
}

// Options configure the interface.
type Options struct {
	Catalog Catalog
	Store   store.Store
	Access  *access.Policy
	Traffic Traffic
	// Config is the configuration summary (secrets already hidden).
	Config [][2]string
	// Started is when the server started.
	Started time.Time
}

// Handler serves "/" and "/ui/...".
type Handler struct {
	o    Options
	tmpl *template.Template
	css  []byte
	js   []byte
}

// New returns the handler.
func New(o Options) *Handler {
	funcs := template.FuncMap{
		"escPath": func(p string) string { ep, _ := module.EscapePath(p); return ep },
		"escVers": func(v string) string { ev, _ := module.EscapeVersion(v); return ev },
		"ago":     ago,
		"size":    humanize.Bytes,
		"when":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"pct":     func(n, d int64) string { return pct(n, d) },
	}
	tmpl := template.Must(template.New("").Funcs(funcs).ParseFS(files, "templates/*.html"))
	css, _ := files.ReadFile("templates/style.css")
	js, _ := files.ReadFile("templates/search.js")
	return &Handler{o: o, tmpl: tmpl, css: css, js: js}
}

// Handles reports whether the handler serves path.
func Handles(path string) bool { return path == "/" || strings.HasPrefix(path, "/ui/") }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/":
		h.home(w, r)
	case p == "/ui/style.css":
		asset(w, "text/css; charset=utf-8", h.css)
	case p == "/ui/search.js":
		asset(w, "text/javascript; charset=utf-8", h.js)
	case p == "/ui/status":
		h.status(w, r, false)
	case p == "/ui/status.json":
		h.status(w, r, true)
	case strings.HasPrefix(p, "/ui/mod/"):
		h.module(w, r, strings.TrimPrefix(p, "/ui/mod/"))
	default:
		h.problem(w, http.StatusNotFound, "Not found", "There is no such page.")
	}
}

func asset(w http.ResponseWriter, ctype string, data []byte) {
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(data)
}

// page is what every template gets.
type page struct {
	Title string
	Nav   string // the current section, for aria-current
	Query string
	Data  any
}

func (h *Handler) render(w http.ResponseWriter, code int, name string, p page) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:")
	w.WriteHeader(code)
	if err := h.tmpl.ExecuteTemplate(w, name, p); err != nil {
		fmt.Fprintf(w, "<p>template error: %s</p>", template.HTMLEscapeString(err.Error()))
	}
}

func (h *Handler) problem(w http.ResponseWriter, code int, title, msg string) {
	h.render(w, code, "problem.html", page{Title: title, Data: msg})
}

// denied answers a request access control refused, as the protocol does:
// 401 (browsers then ask for a user name and a token as the password),
// 403, or 429.
func (h *Handler) denied(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, access.ErrTooManyFailures):
		w.Header().Set("Retry-After", "60")
		h.problem(w, http.StatusTooManyRequests, "Too many attempts", err.Error())
	case errors.Is(err, access.ErrForbidden):
		h.problem(w, http.StatusForbidden, "Not allowed", err.Error())
	default:
		w.Header().Set("WWW-Authenticate", `Basic realm="agora"`)
		h.problem(w, http.StatusUnauthorized, "Sign in", err.Error()+" (in a browser: any user name, and the token as the password)")
	}
}

// moduleSummary is a module in search results.
type moduleSummary struct {
	Path     string
	Versions int
	Latest   string
}

func summarize(m meta.Module) moduleSummary {
	vs := make([]string, len(m.Versions))
	for i, v := range m.Versions {
		vs[i] = v.Version
	}
	semver.Sort(vs)
	return moduleSummary{Path: m.Path, Versions: len(vs), Latest: vs[len(vs)-1]}
}

type homeData struct {
	Results    []moduleSummary
	Searched   bool
	Recent     []meta.Version
	Totals     meta.Totals
	ShowTotals bool
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	may := h.o.Access.Filter(r)
	var d homeData
	if q != "" {
		d.Searched = true
		mods, err := h.o.Catalog.Modules(ctx, "", q, 50)
		if err != nil {
			h.problem(w, http.StatusInternalServerError, "Error", err.Error())
			return
		}
		for _, m := range mods {
			if may(m.Path) {
				d.Results = append(d.Results, summarize(m))
			}
		}
	}
	recent, err := h.o.Catalog.Recent(ctx, 40)
	if err != nil {
		h.problem(w, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	for _, v := range recent {
		if may(v.Path) && len(d.Recent) < 20 {
			d.Recent = append(d.Recent, v)
		}
	}
	// Totals count every module: with access control on they would tell
	// of modules the visitor may not see.
	if !h.o.Access.Enabled() {
		d.Totals, _ = h.o.Catalog.Totals(ctx)
		d.ShowTotals = true
	}
	h.render(w, http.StatusOK, "home.html", page{Title: "Find a module", Nav: "search", Query: q, Data: d})
}

type moduleData struct {
	Path     string
	Versions []meta.Version // newest (by semver) first
}

type versionData struct {
	Path    string
	V       meta.Version
	GoMod   string
	Files   []zipEntry
	ZipNote string
}

type zipEntry struct {
	Name string
	Size uint64
}

// module serves /ui/mod/<escaped path> and /ui/mod/<escaped path>/@v/<version>.
func (h *Handler) module(w http.ResponseWriter, r *http.Request, rest string) {
	epath, evers, isVersion := strings.Cut(rest, "/@v/")
	path, err := module.UnescapePath(strings.TrimSuffix(epath, "/"))
	if err != nil {
		h.problem(w, http.StatusBadRequest, "Bad module path", err.Error())
		return
	}
	if err := h.o.Access.Check(r, path); err != nil {
		h.denied(w, r, err)
		return
	}
	ctx := r.Context()
	vs, err := h.o.Catalog.Versions(ctx, path)
	if err != nil {
		h.problem(w, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	if len(vs) == 0 {
		h.problem(w, http.StatusNotFound, "Not held", path+": this mirror holds no version of this module (yet). Fetching it through GOPROXY adds it.")
		return
	}
	slices.SortFunc(vs, func(a, b meta.Version) int { return semver.Compare(b.Version, a.Version) })
	if !isVersion {
		h.render(w, http.StatusOK, "module.html", page{Title: path, Data: moduleData{Path: path, Versions: vs}})
		return
	}
	vers, err := module.UnescapeVersion(evers)
	i := slices.IndexFunc(vs, func(v meta.Version) bool { return v.Version == vers })
	if err != nil || i < 0 {
		h.problem(w, http.StatusNotFound, "Not held", path+"@"+evers+": this mirror does not hold this version.")
		return
	}
	d := versionData{Path: path, V: vs[i]}
	if mod, err := h.o.Store.Get(ctx, mirror.FileKey(path, vers, ".mod")); err == nil {
		d.GoMod = string(mod)
	}
	d.Files, err = h.zipFiles(ctx, path, vers)
	if err != nil {
		d.ZipNote = "The file list cannot be read: " + err.Error()
	}
	h.render(w, http.StatusOK, "version.html", page{Title: path + "@" + vers, Data: d})
}

// zipFiles lists a version's zip from its central directory, reading only
// that part of the object.
func (h *Handler) zipFiles(ctx context.Context, path, vers string) ([]zipEntry, error) {
	obj, err := h.o.Store.Open(ctx, mirror.FileKey(path, vers, ".zip"))
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	zr, err := zip.NewReader(&readerAt{rs: obj}, obj.Size())
	if err != nil {
		return nil, err
	}
	prefix := path + "@" + vers + "/"
	var out []zipEntry
	for _, f := range zr.File {
		out = append(out, zipEntry{Name: strings.TrimPrefix(f.Name, prefix), Size: f.UncompressedSize64})
	}
	return out, nil
}

// readerAt reads at offsets from a ReadSeeker.
type readerAt struct {
	mu sync.Mutex
	rs io.ReadSeeker
}

func (r *readerAt) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.rs.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(r.rs, p)
}

// statusData is the status page's (and status.json's) content.
type statusData struct {
	Started    time.Time
	Uptime     string
	Totals     meta.Totals
	Config     [][2]string
	Sources    []metrics.SourceHealth
	LastHour   []metrics.Minute `json:"-"`
	Hour       hourSummary
	Chart      template.HTML `json:"-"`
	AccessNote string        `json:",omitempty"`
}

type hourSummary struct {
	Requests, Hits, Misses, Errors, BytesServed, Fetches, Refused int64
	HitRate                                                       string
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request, asJSON bool) {
	// The status page is for operators (its errors may name any module):
	// with access control on, it needs a token that may read everything.
	if h.o.Access.Enabled() {
		id, err := h.o.Access.Authenticate(r)
		switch {
		case err != nil:
		case id == nil:
			err = fmt.Errorf("the status page: %w", access.ErrUnauthenticated)
		case !h.o.Access.MayReadAll(id):
			err = fmt.Errorf("the status page: %w: it needs a token allowing \"*\" (agora token create -allow '*')", access.ErrForbidden)
		}
		if err != nil {
			h.denied(w, r, err)
			return
		}
	}
	d := statusData{Started: h.o.Started, Uptime: time.Since(h.o.Started).Round(time.Second).String(), Config: h.o.Config}
	d.Totals, _ = h.o.Catalog.Totals(r.Context())
	if h.o.Traffic != nil {
		d.LastHour = h.o.Traffic.LastHour()
		d.Sources = h.o.Traffic.Sources()
		slices.SortFunc(d.Sources, func(a, b metrics.SourceHealth) int { return strings.Compare(a.Source, b.Source) })
	}
	for _, m := range d.LastHour {
		d.Hour.Requests += m.Requests
		d.Hour.Hits += m.Hits
		d.Hour.Misses += m.Misses
		d.Hour.Errors += m.Errors
		d.Hour.BytesServed += m.BytesServed
		d.Hour.Fetches += m.Fetches
		d.Hour.Refused += m.Refused
	}
	d.Hour.HitRate = pct(d.Hour.Hits, d.Hour.Hits+d.Hour.Misses)
	if asJSON {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(d)
		return
	}
	d.Chart = chart(d.LastHour)
	h.render(w, http.StatusOK, "status.html", page{Title: "Status", Nav: "status", Data: d})
}

func pct(n, d int64) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", float64(n)*100/float64(d))
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}
