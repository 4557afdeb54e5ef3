package modtest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// Upstream is a test module proxy speaking the GOPROXY protocol, served
// from memory by httptest on 127.0.0.1.
//
// It answers, for a case-encoded module path <p> and version <v>:
//
//	GET /<p>/@v/list       tagged versions, one per line, in semver order
//	GET /<p>/@v/<v>.info   {"Version":...,"Time":...}
//	GET /<p>/@v/<v>.mod    the go.mod file
//	GET /<p>/@v/<v>.zip    the module zip
//	GET /<p>/@latest       only after SetLatest(true)
//
// and, for each database registered with [Upstream.ServeSumDB], the
// checksum database proxy paths /sumdb/<name>/supported and
// /sumdb/<name>/.... HEAD is answered like GET without a body. Anything it
// does not have gets the not-found status (404 unless changed by
// [Upstream.SetNotFoundStatus]) with the text/plain body
// "not found: <request path>".
//
// All methods are safe to call while the server is handling requests.
type Upstream struct {
	// URL is the base URL, "http://127.0.0.1:<port>", usable as GOPROXY.
	URL string

	srv  *httptest.Server
	once sync.Once

	mu         sync.Mutex
	mods       map[string]map[string]*Built // path -> version -> module
	branches   map[string]map[string]string // path -> branch -> version
	sumdbs     map[string]*SumDB            // name -> database
	handlers   map[string]http.HandlerFunc  // URL path -> override
	latest     bool
	listPseudo bool
	notFound   int
	counts     map[string]int
	requests   []string
}

// NewUpstream starts a test proxy serving mods. It is closed by t.Cleanup.
func NewUpstream(t testing.TB, mods ...*Built) *Upstream {
	t.Helper()
	u := &Upstream{
		mods:     make(map[string]map[string]*Built),
		branches: make(map[string]map[string]string),
		sumdbs:   make(map[string]*SumDB),
		handlers: make(map[string]http.HandlerFunc),
		notFound: http.StatusNotFound,
		counts:   make(map[string]int),
	}
	u.Add(mods...)
	u.srv = newLocalServer(t, u)
	u.URL = u.srv.URL
	t.Cleanup(u.Close)
	return u
}

// Add makes mods available, replacing any module version already present
// with the same path and version.
func (u *Upstream) Add(mods ...*Built) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, b := range mods {
		vs := u.mods[b.Path]
		if vs == nil {
			vs = make(map[string]*Built)
			u.mods[b.Path] = vs
		}
		vs[b.Version] = b
	}
}

// Remove withdraws path@version. When the last version of a module is
// removed, the module itself becomes unknown (its list is not found).
func (u *Upstream) Remove(path, version string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.mods[path], version)
	if len(u.mods[path]) == 0 {
		delete(u.mods, path)
	}
}

// SetBranch makes a .info request for the query branch of module path
// resolve to version, the way a proxy resolves a branch name to the
// commit at its tip. An empty version removes the branch.
func (u *Upstream) SetBranch(path, branch, version string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if version == "" {
		delete(u.branches[path], branch)
		return
	}
	if u.branches[path] == nil {
		u.branches[path] = make(map[string]string)
	}
	u.branches[path][branch] = version
}

// ServeSumDB makes the proxy serve db from now on: it answers
// /sumdb/<db.Name>/supported with 200 and an empty body, and passes
// /sumdb/<db.Name>/<rest> to db.Handler() as /<rest>. With GOPROXY set to
// this proxy, the go command then reaches db through it.
func (u *Upstream) ServeSumDB(db *SumDB) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.sumdbs[db.Name] = db
}

// SetLatest controls whether /<module>/@latest is served. It is off by
// default, so @latest is not found, as with some real upstreams. When on,
// the answer is the .info of the highest release version, or failing that
// the highest pre-release, or failing that the pseudo-version with the
// newest Time.
func (u *Upstream) SetLatest(enabled bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.latest = enabled
}

// SetNotFoundStatus sets the HTTP status of "not here" answers (404 by
// default; 403, 410 and 400 are also seen in the wild).
func (u *Upstream) SetNotFoundStatus(code int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.notFound = code
}

// SetListPseudo controls whether @v/list includes pseudo-versions (by
// default it lists tagged versions only, as real proxies do).
func (u *Upstream) SetListPseudo(enabled bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.listPseudo = enabled
}

// Handle sends requests whose URL path is exactly path to h instead of the
// normal logic, for fault injection. Handle(path, nil) removes the
// override. Overridden requests are still counted and logged. A handler
// that blocks should watch r.Context(), which is cancelled by
// [Upstream.Close].
func (u *Upstream) Handle(path string, h http.HandlerFunc) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if h == nil {
		delete(u.handlers, path)
		return
	}
	u.handlers[path] = h
}

// Count returns how many requests were seen for exactly this URL path
// (for example "/example.com/hello/@v/v1.0.0.zip") since the start or the
// last [Upstream.Reset].
func (u *Upstream) Count(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts[path]
}

// Requests returns the URL paths of all requests seen, in arrival order.
func (u *Upstream) Requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.requests...)
}

// Reset clears the request counters and the request log.
func (u *Upstream) Reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.counts = make(map[string]int)
	u.requests = nil
}

// Close stops serving at once, simulating the upstream going down: open
// connections are cut, in-flight requests see their context cancelled,
// and new connections are refused. It is safe to call more than once.
func (u *Upstream) Close() {
	u.once.Do(func() {
		u.srv.CloseClientConnections()
		u.srv.Close()
	})
}

// ServeHTTP answers r as the server at u.URL would (and logs it likewise),
// so an Upstream can also be used in-process as an http.Handler.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	u.mu.Lock()
	u.requests = append(u.requests, p)
	u.counts[p]++
	h := u.handlers[p]
	u.mu.Unlock()

	if h != nil {
		h(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if rest, ok := strings.CutPrefix(p, "/sumdb/"); ok {
		u.serveSumDB(w, r, rest)
		return
	}
	u.serveModule(w, r)
}

// serveSumDB handles /sumdb/<name>/..., with rest being the part after
// "/sumdb/". Names may contain slashes, so the longest match wins.
func (u *Upstream) serveSumDB(w http.ResponseWriter, r *http.Request, rest string) {
	u.mu.Lock()
	var db *SumDB
	for name, d := range u.sumdbs {
		if strings.HasPrefix(rest, name+"/") && (db == nil || len(name) > len(db.Name)) {
			db = d
		}
	}
	u.mu.Unlock()
	if db == nil {
		u.notFoundReply(w, r)
		return
	}
	if rest == db.Name+"/supported" {
		serveBytes(w, r, "text/plain; charset=utf-8", nil)
		return
	}
	http.StripPrefix("/sumdb/"+db.Name, db.Handler()).ServeHTTP(w, r)
}

// serveModule handles the module download protocol.
func (u *Upstream) serveModule(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	escPath, file, ok := strings.Cut(p, "/@v/")
	if !ok {
		if escPath, ok := strings.CutSuffix(p, "/@latest"); ok {
			u.serveLatest(w, r, escPath)
			return
		}
		u.notFoundReply(w, r)
		return
	}
	modPath, err := module.UnescapePath(escPath)
	if err != nil {
		u.notFoundReply(w, r)
		return
	}
	if file == "list" {
		u.serveList(w, r, modPath)
		return
	}
	ext := path.Ext(file)
	if ext != ".info" && ext != ".mod" && ext != ".zip" {
		u.notFoundReply(w, r)
		return
	}
	vers, err := module.UnescapeVersion(strings.TrimSuffix(file, ext))
	if err != nil {
		u.notFoundReply(w, r)
		return
	}

	u.mu.Lock()
	b := u.mods[modPath][vers]
	if b == nil && ext == ".info" {
		b = u.resolveQuery(modPath, vers)
	}
	u.mu.Unlock()
	if b == nil {
		u.notFoundReply(w, r)
		return
	}
	switch ext {
	case ".info":
		serveBytes(w, r, "application/json", b.Info)
	case ".mod":
		serveBytes(w, r, "text/plain; charset=utf-8", b.Mod)
	case ".zip":
		serveBytes(w, r, "application/zip", b.Zip)
	}
}

// resolveQuery maps a non-canonical .info query (a branch name or a
// commit hash prefix) to a module version. It returns nil if the query
// matches nothing or more than one pseudo-version. u.mu must be held.
func (u *Upstream) resolveQuery(modPath, query string) *Built {
	if v, ok := u.branches[modPath][query]; ok {
		return u.mods[modPath][v]
	}
	if query == "" || strings.Trim(query, "0123456789abcdef") != "" {
		return nil
	}
	var found *Built
	for v, b := range u.mods[modPath] {
		if !module.IsPseudoVersion(v) {
			continue
		}
		rev, err := module.PseudoVersionRev(v)
		if err != nil || !strings.HasPrefix(rev, query) {
			continue
		}
		if found != nil {
			return nil // ambiguous
		}
		found = b
	}
	return found
}

// serveList answers @v/list.
func (u *Upstream) serveList(w http.ResponseWriter, r *http.Request, modPath string) {
	u.mu.Lock()
	vs, known := u.mods[modPath]
	var list []string
	for v := range vs {
		if u.listPseudo || !module.IsPseudoVersion(v) {
			list = append(list, v)
		}
	}
	u.mu.Unlock()
	if !known {
		u.notFoundReply(w, r)
		return
	}
	serveBytes(w, r, "text/plain; charset=utf-8", []byte(versionList(list)))
}

// versionList sorts versions by semver and formats them one per line.
func versionList(list []string) string {
	semver.Sort(list)
	var sb strings.Builder
	for _, v := range list {
		sb.WriteString(v)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// serveLatest answers @latest.
func (u *Upstream) serveLatest(w http.ResponseWriter, r *http.Request, escPath string) {
	modPath, err := module.UnescapePath(escPath)
	if err != nil {
		u.notFoundReply(w, r)
		return
	}
	u.mu.Lock()
	var b *Built
	if u.latest {
		b = latestOf(u.mods[modPath])
	}
	u.mu.Unlock()
	if b == nil {
		u.notFoundReply(w, r)
		return
	}
	serveBytes(w, r, "application/json", b.Info)
}

// latestOf picks the highest release, else the highest pre-release, else
// the pseudo-version with the newest Time (ties broken by semver).
func latestOf(vs map[string]*Built) *Built {
	var release, pre, pseudo *Built
	for v, b := range vs {
		switch {
		case module.IsPseudoVersion(v):
			if pseudo == nil || b.Time.After(pseudo.Time) ||
				(b.Time.Equal(pseudo.Time) && semver.Compare(v, pseudo.Version) > 0) {
				pseudo = b
			}
		case semver.Prerelease(v) == "":
			if release == nil || semver.Compare(v, release.Version) > 0 {
				release = b
			}
		default:
			if pre == nil || semver.Compare(v, pre.Version) > 0 {
				pre = b
			}
		}
	}
	switch {
	case release != nil:
		return release
	case pre != nil:
		return pre
	}
	return pseudo
}

// notFoundReply writes the configured "not here" answer.
func (u *Upstream) notFoundReply(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	code := u.notFound
	u.mu.Unlock()
	body := "not found: " + r.URL.Path
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write([]byte(body))
	}
}

// serveBytes answers with data, handling HEAD, Content-Length and ranges.
func serveBytes(w http.ResponseWriter, r *http.Request, contentType string, data []byte) {
	w.Header().Set("Content-Type", contentType)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}
