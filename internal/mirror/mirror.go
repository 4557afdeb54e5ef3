// Package mirror is Agora's cache of module versions: it answers the
// module proxy protocol's questions from the store, and fills the store
// from the upstream chain when it lacks an answer.
//
// Every file that enters the store has been checked first: an .info must
// name the version asked for, a .mod must be the go.mod whose hash the
// checksum database records, and a zip must be well-formed (x/mod/zip's
// rules) and hash to the database's h1: hash. Files are stored write-once,
// so a version, once held, is immutable and keeps being served when its
// upstream is gone. Concurrent requests for the same missing file cause one
// fill.
//
// Version lists are cached for a short time, refreshed in the background,
// merged with the versions held, and served stale when the upstream fails.
//
// The package knows the protocol's files but nothing of HTTP.
package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/sync/errgroup"

	"github.com/agora-mirror/agora/internal/gosum"
	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/store"
	"github.com/agora-mirror/agora/internal/sumdb"
	"github.com/agora-mirror/agora/internal/upstream"
)

// Limits on what is accepted from an upstream, those of the go command.
const (
	MaxZipSize  = 500 << 20 // modzip.MaxZipFile
	MaxModSize  = 16 << 20  // modzip.MaxGoMod
	MaxInfoSize = 1 << 20
	MaxListSize = 16 << 20
)

// ErrNotFound is matched by errors meaning the module or version is
// neither held nor available from any upstream.
var ErrNotFound = upstream.ErrNotFound

// ErrBadUpstream is matched by errors about content an upstream sent that
// failed a check (other than a checksum mismatch, which matches
// sumdb.ErrChecksumMismatch): an .info for another version, a go.mod of
// another module, a malformed zip.
var ErrBadUpstream = errors.New("invalid content from upstream")

// ErrSourceFailed is matched by errors from version control other than
// "not found" and timeouts: the repository refused the credentials, could
// not be reached, or the go command could not make the version from it.
var ErrSourceFailed = errors.New("version control failed")

// BadContentError describes content refused on ingest.
type BadContentError struct {
	Module, Version string
	File            string // "info", "mod" or "zip"
	Source          string // the upstream it came from
	Reason          string
}

func (e *BadContentError) Error() string {
	return fmt.Sprintf("%s@%s: %s from %s refused: %s", e.Module, e.Version, e.File, e.Source, e.Reason)
}

// Is reports whether target is ErrBadUpstream.
func (e *BadContentError) Is(target error) bool { return target == ErrBadUpstream }

// Verifier checks hashes against a checksum database.
type Verifier interface {
	// Private reports whether the module path is exempt from checks.
	Private(modPath string) bool
	// Verify checks the zip and go.mod hashes (either may be empty).
	Verify(ctx context.Context, path, vers, zipHash, modHash string) error
}

// Catalog records the versions held and the mirror's small mutable state
// (version lists), and keeps replicas sharing a store from filling the
// same file at once. *meta.DB implements it.
type Catalog interface {
	// AddVersion records a version whose files are all stored.
	AddVersion(ctx context.Context, v meta.Version) (meta.Version, bool, error)
	// HeldVersions returns the versions of a module held.
	HeldVersions(ctx context.Context, path string) ([]string, error)
	// State returns a state value and when it was written, or
	// meta.ErrNotFound.
	State(ctx context.Context, key string) ([]byte, time.Time, error)
	// PutState replaces a state value.
	PutState(ctx context.Context, key string, value []byte) error
	// Lock waits for the named lock, held across all replicas, and
	// returns its release.
	Lock(ctx context.Context, name string) (unlock func(), err error)
	// Touch records when versions were last requested.
	Touch(ctx context.Context, uses []meta.Use) error
	// Pin records the hash of a version's file unless one is recorded,
	// and returns the one recorded.
	Pin(ctx context.Context, path, version, file, hash string) (string, error)
}

// Observer is told what the mirror does, for metrics.
type Observer interface {
	// FetchDone reports one fetch of a file ("info", "mod", "zip",
	// "list", "latest", "query") from a source ("upstream" or "vcs").
	FetchDone(source, origin, file string, d time.Duration, err error)
	// Refused reports content refused on ingest: "checksum", "changed"
	// or "invalid".
	Refused(reason string)
	// FilledAhead reports what became of a version's files ("mod": its
	// .info and .mod; "zip") queued to be filled ahead: "filled",
	// "held" (already), "failed", or "dropped" (the queue was full).
	FilledAhead(file, result string)
}

type nopObserver struct{}

func (nopObserver) FetchDone(string, string, string, time.Duration, error) {}
func (nopObserver) Refused(string)                                         {}
func (nopObserver) FilledAhead(string, string)                             {}

// Options configure a Mirror.
type Options struct {
	// Store holds the files; required.
	Store store.Store
	// Catalog records the versions held and coordinates fills; required.
	Catalog Catalog
	// Router decides where each module comes from. If nil, every module
	// comes from Chain, verified when Verifier is set.
	Router Router
	// Chain is where missing files come from when Router is nil; nil or
	// an "off" chain means nothing is ever fetched.
	Chain *upstream.Chain
	// Verifier checks hashes; nil means no checksum database (files
	// are still checked for well-formedness, and their hashes pinned).
	Verifier Verifier
	// ListTTL is how long a version list from the upstream is used
	// before it is refreshed (in the background). Zero means 1 minute.
	ListTTL time.Duration
	// FillTimeout bounds one fill. Zero means 10 minutes.
	FillTimeout time.Duration
	// MemoryCache bounds the in-memory cache of .info and .mod files,
	// in bytes. Zero means 64 MiB; negative disables it.
	MemoryCache int
	// Logger receives a line for each fill and each refused file.
	Logger *slog.Logger
	// Observer is told of fetches and refusals; nil for none.
	Observer Observer
	// Offline: answer only from what is held; never ask an upstream or
	// version control.
	Offline bool
	// FillAhead says what is filled before clients ask for it (see
	// FillAhead); the zero value fills nothing ahead.
	FillAhead FillAhead
}

// Mirror answers module proxy requests from its store and upstreams.
type Mirror struct {
	st      store.Store
	cat     Catalog
	router  Router
	verify  Verifier
	listTTL time.Duration
	log     *slog.Logger
	obs     Observer
	offline bool
	fills   flights
	small   *lru

	listMu sync.Mutex
	lists  map[string]*listEntry

	zips      *lru // paths of zips answered as hits, for HeldZip (no data)
	usedMu    sync.Mutex
	usedSet   map[useKey]struct{}
	usageFull chan struct{}

	ahead *aheader
}

// heldZipsMemory bounds the memory of the paths of held zips remembered
// for HeldZip: about 20,000 of them.
const heldZipsMemory = 8 << 20

// New returns a Mirror.
func New(o Options) *Mirror {
	if o.Store == nil || o.Catalog == nil {
		panic("mirror: Options.Store and Options.Catalog are required")
	}
	if o.Chain == nil {
		o.Chain = &upstream.Chain{}
	}
	if o.Router == nil {
		o.Router = &PolicyRouter{Default: ChainSource{o.Chain}, Verify: o.Verifier != nil}
	}
	if o.ListTTL <= 0 {
		o.ListTTL = time.Minute
	}
	if o.FillTimeout <= 0 {
		o.FillTimeout = 10 * time.Minute
	}
	if o.MemoryCache == 0 {
		o.MemoryCache = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	return &Mirror{
		st:        o.Store,
		cat:       o.Catalog,
		router:    o.Router,
		verify:    o.Verifier,
		listTTL:   o.ListTTL,
		log:       o.Logger,
		obs:       o.Observer,
		offline:   o.Offline,
		fills:     flights{timeout: o.FillTimeout},
		small:     newLRU(o.MemoryCache),
		zips:      newLRU(heldZipsMemory),
		lists:     make(map[string]*listEntry),
		usedSet:   make(map[useKey]struct{}),
		usageFull: make(chan struct{}, 1),
		ahead:     newAheader(o.FillAhead),
	}
}

// FillsInProgress returns the number of fills running now.
func (m *Mirror) FillsInProgress() int { return m.fills.inFlight() }

// escaped returns the case-encoded forms of a validated path and version.
func escaped(path, vers string) (string, string) {
	ep, _ := module.EscapePath(path)
	ev, _ := module.EscapeVersion(vers)
	return ep, ev
}

// FileKey returns the store key of a version's file; ext is ".info",
// ".mod" or ".zip". Keys follow the GOPROXY layout, so a store directory
// can itself serve as a GOPROXY=file:// tree.
func FileKey(path, vers, ext string) string {
	ep, ev := escaped(path, vers)
	return "mod/" + ep + "/@v/" + ev + ext
}

// remotePath returns the upstream path of a version's file.
func remotePath(path, vers, ext string) string {
	ep, ev := escaped(path, vers)
	return ep + "/@v/" + ev + ext
}

// Info returns the .info file of a canonical version.
func (m *Mirror) Info(ctx context.Context, path, vers string) ([]byte, bool, error) {
	return m.smallFile(ctx, path, vers, ".info")
}

// Mod returns the .mod file of a canonical version.
func (m *Mirror) Mod(ctx context.Context, path, vers string) ([]byte, bool, error) {
	return m.smallFile(ctx, path, vers, ".mod")
}

// smallFile returns a held .info or .mod, filling both if needed. The bool
// reports a cache hit.
func (m *Mirror) smallFile(ctx context.Context, path, vers, ext string) ([]byte, bool, error) {
	if _, err := m.route(path, vers); err != nil {
		return nil, false, err
	}
	m.noteUse(ctx, path, vers)
	data, hit, err := m.heldOrFilled(ctx, path, vers, ext)
	switch {
	case err != nil || ctx.Value(aheadKey{}) != nil:
	case ext == ".mod":
		m.ahead.inGraph(path, vers)
	case ext == ".info":
		m.zipAhead(ctx, path, vers)
	}
	return data, hit, err
}

// heldOrFilled is smallFile without noting the use.
func (m *Mirror) heldOrFilled(ctx context.Context, path, vers, ext string) ([]byte, bool, error) {
	key := FileKey(path, vers, ext)
	if data, ok := m.small.get(key); ok {
		return data, true, nil
	}
	data, err := m.st.Get(ctx, key)
	if err == nil {
		m.small.add(key, data, path, vers)
		return data, true, nil
	}
	if !errors.Is(err, store.ErrNotExist) {
		return nil, false, err
	}
	if !m.mayFetch(ctx) {
		return nil, false, m.notHeld(path + "@" + vers + ext)
	}
	if err := m.fillFor(ctx, "meta "+path+"@"+vers, func(ctx context.Context) error {
		return m.fillMeta(ctx, path, vers)
	}); err != nil {
		return nil, false, err
	}
	data, err = m.st.Get(ctx, key)
	if err == nil {
		m.small.add(key, data, path, vers)
	}
	return data, false, err
}

// Cached returns an .info or .mod file from the in-memory cache by its
// escaped GOPROXY path ("/<escaped module>/@v/<escaped version>.info", as
// in a request URL); ok is false when it is not cached, or allow refuses
// the module path it belongs to (asked before its use is recorded). Only
// files answered before, for validated canonical requests, are cached, so
// a path that is found needs no further parsing: it is the fast path for
// the hottest requests.
func (m *Mirror) Cached(urlPath string, allow func(modPath string) bool) (data []byte, ok bool) {
	it := m.small.item("mod" + urlPath)
	if it == nil || !allow(it.path) {
		return nil, false
	}
	m.used(it.path, it.vers)
	return it.data, true
}

// HeldZip opens a zip answered before (a hit, or a fill) from a local file (the
// disk store), by its escaped GOPROXY path ("/<escaped module>/@v/<escaped version>.zip", as in a request URL);
// ok is false when the path was not answered before, the zip is no
// longer held, or allow refuses the module path it belongs to (asked
// before the zip is opened or its use recorded). Like Cached, it needs
// no parsing: it is the fast path for zips held.
func (m *Mirror) HeldZip(ctx context.Context, urlPath string, allow func(modPath string) bool) (obj store.Object, ok bool) {
	key := "mod" + urlPath
	it := m.zips.item(key)
	if it == nil || !allow(it.path) {
		return nil, false
	}
	obj, err := m.st.Open(ctx, key)
	if err != nil { // pruned or quarantined since
		m.zips.remove(key)
		return nil, false
	}
	m.used(it.path, it.vers)
	return obj, true
}

// Zip opens the zip of a canonical version, filling it if needed. The
// bool reports a cache hit.
func (m *Mirror) Zip(ctx context.Context, path, vers string) (store.Object, bool, error) {
	if _, err := m.route(path, vers); err != nil {
		return nil, false, err
	}
	m.noteUse(ctx, path, vers)
	key := FileKey(path, vers, ".zip")
	obj, err := m.st.Open(ctx, key)
	if err == nil {
		m.rememberZip(key, obj, path, vers)
		return obj, true, nil
	}
	if !errors.Is(err, store.ErrNotExist) {
		return nil, false, err
	}
	if !m.mayFetch(ctx) {
		return nil, false, m.notHeld(path + "@" + vers + ".zip")
	}
	// A zip is held only with its .info and .mod: get them first (and
	// outside the zip's fill, so that a fill holds one lock at a time).
	mod, _, err := m.Mod(ctx, path, vers)
	if err != nil {
		return nil, false, err
	}
	if _, _, err := m.Info(ctx, path, vers); err != nil {
		return nil, false, err
	}
	if err := m.fillFor(ctx, "zip "+path+"@"+vers, func(ctx context.Context) error {
		return m.fillZip(ctx, path, vers, mod)
	}); err != nil {
		return nil, false, err
	}
	obj, err = m.st.Open(ctx, key)
	if err == nil {
		m.rememberZip(key, obj, path, vers)
	}
	return obj, false, err
}

// rememberZip notes a zip answered from a local file, for HeldZip: only
// files it can send without a store request.
func (m *Mirror) rememberZip(key string, obj store.Object, path, vers string) {
	if _, local := obj.(interface{ OSFile() *os.File }); local {
		m.zips.add(key, nil, path, vers)
	}
}

// ErrCannotSign is returned by ZipURL when the store cannot sign URLs.
var ErrCannotSign = errors.New("the store cannot sign URLs (zip redirects need object storage)")

// signer is implemented by stores that give direct, expiring URLs to
// their objects (store.Blob).
type signer interface {
	SignedURL(ctx context.Context, key string, expiry time.Duration) (string, error)
	// Exists reports whether key holds an object, without reading it.
	Exists(ctx context.Context, key string) (bool, error)
}

// CanSignURLs reports whether the store gives direct URLs to objects.
func (m *Mirror) CanSignURLs() bool {
	_, ok := m.st.(signer)
	return ok
}

// ZipURL fills the zip of a canonical version if needed, like Zip, and
// returns a URL from which clients can download it directly from the
// object store until expiry. The bool reports a cache hit.
func (m *Mirror) ZipURL(ctx context.Context, path, vers string, expiry time.Duration) (string, bool, error) {
	s, ok := m.st.(signer)
	if !ok {
		return "", false, ErrCannotSign
	}
	if _, err := m.route(path, vers); err != nil {
		return "", false, err
	}
	key := FileKey(path, vers, ".zip")
	hit, err := s.Exists(ctx, key)
	if err != nil {
		return "", false, err
	}
	if hit {
		m.used(path, vers)
	} else {
		obj, _, err := m.Zip(ctx, path, vers)
		if err != nil {
			return "", false, err
		}
		obj.Close()
	}
	u, err := s.SignedURL(ctx, key, expiry)
	return u, hit, err
}

// fill runs fn once for all concurrent callers with the same key: once
// in this process (flights), and once across replicas (the catalog's
// lock, held while fn runs; fn must first check whether another replica
// did the work while this one waited).
func (m *Mirror) fill(ctx context.Context, key string, fn func(context.Context) error) error {
	return m.fills.do(ctx, key, func(ctx context.Context) (err error) {
		// A trace of each fill (a no-op unless the program installs an
		// OpenTelemetry tracer provider): the wait for the cross-replica
		// lock, then the fetch, checks and store as child spans.
		kind, what, _ := strings.Cut(key, " ")
		ctx, span := tracer.Start(ctx, "agora.fill "+kind, trace.WithAttributes(attribute.String("agora.fill.target", what)))
		defer func() { endSpan(span, err) }()
		lctx, lspan := tracer.Start(ctx, "agora.lock")
		unlock, err := m.cat.Lock(lctx, key)
		lspan.End()
		if err != nil {
			return err
		}
		defer unlock()
		return fn(ctx)
	})
}

// tracer traces fills.
var tracer = otel.Tracer("github.com/agora-mirror/agora/internal/mirror")

// step runs one stage of a fill in its own span.
func step(ctx context.Context, name string, fn func(context.Context) error) (err error) {
	ctx, span := tracer.Start(ctx, name)
	defer func() { endSpan(span, err) }()
	return fn(ctx)
}

// endSpan ends a span, marking it failed if err is not nil.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// info is the JSON of an .info file.
type info struct {
	Version string
	Time    *time.Time `json:",omitempty"`
}

// parseInfo checks an .info answer and returns it re-encoded with only the
// fields Agora vouches for.
func parseInfo(data []byte, path string) (info, []byte, error) {
	var inf info
	if err := json.Unmarshal(data, &inf); err != nil {
		return info{}, nil, fmt.Errorf("not a JSON version info: %v", err)
	}
	if inf.Version == "" {
		return info{}, nil, errors.New("no Version field")
	}
	if err := module.Check(path, inf.Version); err != nil {
		return info{}, nil, err
	}
	if module.CanonicalVersion(inf.Version) != inf.Version {
		return info{}, nil, fmt.Errorf("version %q is not canonical", inf.Version)
	}
	if inf.Time != nil {
		t := inf.Time.UTC()
		inf.Time = &t
	}
	out, err := json.Marshal(inf)
	if err != nil {
		return info{}, nil, err
	}
	return inf, append(out, '\n'), nil
}

// route returns the route for path at vers, or the denial.
func (m *Mirror) route(path, vers string) (Route, error) {
	r := m.router.Route(path, vers)
	if r.Denied != nil {
		return r, r.Denied
	}
	// Paths the checksum database must not hear of are not verified
	// against it, whatever the route says.
	r.Verify = r.Verify && m.verify != nil && !m.verify.Private(path)
	return r, nil
}

// fillMeta fetches, checks and stores the .info and .mod of path@vers.
func (m *Mirror) fillMeta(ctx context.Context, path, vers string) error {
	// A fill that ended just before this one started (here or on
	// another replica) may have stored both.
	if m.stored(ctx, FileKey(path, vers, ".info")) && m.stored(ctx, FileKey(path, vers, ".mod")) {
		return nil
	}
	rt, err := m.route(path, vers)
	if err != nil {
		return err
	}
	var infoData, modData []byte
	var infoSrc, modSrc string
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		infoData, infoSrc, err = m.fetchBytes(gctx, rt.Source, path, vers, ".info", MaxInfoSize)
		return err
	})
	g.Go(func() error {
		var err error
		modData, modSrc, err = m.fetchBytes(gctx, rt.Source, path, vers, ".mod", MaxModSize)
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	inf, infoOut, err := parseInfo(infoData, path)
	if err == nil && inf.Version != vers {
		err = fmt.Errorf("info is for version %s", inf.Version)
	}
	if err != nil {
		return m.refused(&BadContentError{Module: path, Version: vers, File: "info", Source: infoSrc, Reason: err.Error()})
	}
	if err := m.checkMod(ctx, rt, path, vers, modData, modSrc); err != nil {
		return err
	}
	m.requirementsAhead(rt, modSrc, modData)
	// Both at once: each write waits for its own sync to disk.
	wg, wctx := errgroup.WithContext(ctx)
	wg.Go(func() error { return m.put(wctx, FileKey(path, vers, ".mod"), modData) })
	wg.Go(func() error { return m.put(wctx, FileKey(path, vers, ".info"), infoOut) })
	if err := wg.Wait(); err != nil {
		return err
	}
	m.log.Info("filled", "module", path, "version", vers, "files", "info,mod", "source", modSrc)
	return nil
}

// stored reports whether the store has the object at key, opening it
// without reading it.
func (m *Mirror) stored(ctx context.Context, key string) bool {
	obj, err := m.st.Open(ctx, key)
	if err != nil {
		return false
	}
	obj.Close()
	return true
}

// put stores an immutable file; finding it already stored (by a
// concurrent fill elsewhere) is success.
func (m *Mirror) put(ctx context.Context, key string, data []byte) error {
	if err := m.st.Put(ctx, key, data); err != nil && !errors.Is(err, store.ErrExist) {
		return err
	}
	return nil
}

func (m *Mirror) refused(err error) error {
	reason := "invalid"
	switch {
	case errors.Is(err, sumdb.ErrChecksumMismatch):
		reason = "checksum"
	case errors.Is(err, ErrChanged):
		reason = "changed"
	}
	m.obs.Refused(reason)
	m.log.Warn("refused upstream content", "reason", reason, "err", err)
	return err
}

// checkMod checks a go.mod against the checksum database or, for modules
// exempt from it, checks that it declares the module it claims to be.
func (m *Mirror) checkMod(ctx context.Context, rt Route, path, vers string, data []byte, src string) error {
	h, err := gosum.ModHash(data)
	if err != nil {
		return err
	}
	if !rt.Verify {
		if mp := modfile.ModulePath(data); mp != path {
			return m.refused(&BadContentError{Module: path, Version: vers, File: "mod", Source: src,
				Reason: fmt.Sprintf("go.mod declares module %q", mp)})
		}
		return m.pin(ctx, path, vers, "go.mod", h, src)
	}
	if err := m.verify.Verify(ctx, path, vers, "", h); err != nil {
		if errors.Is(err, sumdb.ErrChecksumMismatch) {
			return m.refused(fmt.Errorf("%w (go.mod from %s)", err, src))
		}
		return err
	}
	return nil
}

// fillZip fetches, checks and stores the zip of path@vers, then records
// the version in the catalog. Its .info and .mod (modData) must be held
// already.
func (m *Mirror) fillZip(ctx context.Context, path, vers string, modData []byte) error {
	if m.stored(ctx, FileKey(path, vers, ".zip")) {
		return nil // stored by a fill that ended just before
	}
	rt, err := m.route(path, vers)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(m.st.TempDir(), "zip-*")
	if err != nil {
		return fmt.Errorf("creating temporary file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	defer f.Close()
	start := time.Now()
	var src string
	err = step(ctx, "agora.fetch", func(ctx context.Context) error {
		var err error
		src, err = rt.Source.Fetch(ctx, path, vers, ".zip", MaxZipSize, func(r io.Reader) error {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			if err := f.Truncate(0); err != nil {
				return err
			}
			_, err := io.Copy(f, r)
			return err
		})
		return err
	})
	m.obs.FetchDone(sourceKind(rt.Source, src), src, "zip", time.Since(start), err)
	if err != nil {
		return err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	modH, err := gosum.ModHash(modData)
	if err != nil {
		return err
	}
	var zipHash string
	if err := step(ctx, "agora.check", func(ctx context.Context) error {
		var err error
		zipHash, err = m.checkZip(ctx, rt, path, vers, tmp, src, modData)
		return err
	}); err != nil {
		return err
	}
	if err := step(ctx, "agora.store", func(ctx context.Context) error {
		if err := m.st.PutFile(ctx, FileKey(path, vers, ".zip"), tmp); err != nil && !errors.Is(err, store.ErrExist) {
			return err
		}
		return nil
	}); err != nil {
		return err
	}
	// The version is complete: it enters the catalog, and the index.
	// (A crash between the two writes leaves a zip served but not yet
	// listed; see ARCHITECTURE.md.)
	verification := meta.Pinned
	if rt.Verify {
		verification = meta.Verified
	}
	rec := meta.Version{Path: path, Version: vers, ZipHash: zipHash, ModHash: modH, Size: size,
		Origin: src, Verification: verification}
	if _, _, err := m.cat.AddVersion(ctx, rec); err != nil {
		return err
	}
	m.log.Info("filled", "module", path, "version", vers, "files", "zip", "source", src)
	return nil
}

// checkZip checks a downloaded zip: well-formed by the go command's rules,
// regular files only, and with the checksum database's hash (or, for
// modules exempt from the database, with the go.mod held, mod).
func (m *Mirror) checkZip(ctx context.Context, rt Route, path, vers, name, src string, mod []byte) (string, error) {
	// No checksum database vouches for the zip: at least its go.mod must
	// be the .mod file held for the version.
	var held []byte
	if !rt.Verify {
		held = mod
	}
	h, _, err := CheckFiles(path, vers, nil, held, name)
	if err != nil {
		var bc *BadContentError
		if errors.As(err, &bc) {
			bc.Source = src
		}
		return "", m.refused(err)
	}
	if rt.Verify {
		if err := m.verify.Verify(ctx, path, vers, h, ""); err != nil {
			if errors.Is(err, sumdb.ErrChecksumMismatch) {
				return "", m.refused(fmt.Errorf("%w (zip from %s)", err, src))
			}
			return "", err
		}
		return h, nil
	}
	return h, m.pin(ctx, path, vers, "zip", h, src)
}

// Query resolves a version query (branch, commit prefix, "v1.2") through
// the upstreams and returns the resolved version's .info. Answers are
// not stored: they change as branches move.
func (m *Mirror) Query(ctx context.Context, path, query string) ([]byte, error) {
	rt, err := m.route(path, "")
	if err != nil {
		return nil, err
	}
	if !m.mayFetch(ctx) {
		return nil, m.notHeld(path + "@" + query)
	}
	start := time.Now()
	data, src, err := rt.Source.Query(ctx, path, query)
	m.obs.FetchDone(sourceKind(rt.Source, src), src, "query", time.Since(start), err)
	if err != nil {
		return nil, err
	}
	inf, out, err := parseInfo(data, path)
	if err != nil {
		return nil, m.refused(&BadContentError{Module: path, Version: query, File: "info", Source: src, Reason: err.Error()})
	}
	if _, err := m.route(path, inf.Version); err != nil {
		return nil, err
	}
	return out, nil
}

// sortVersions sorts versions by semver precedence, dropping duplicates.
func sortVersions(vs []string) []string {
	slices.SortFunc(vs, func(a, b string) int {
		if c := semver.Compare(a, b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(vs)
}
