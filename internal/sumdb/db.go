package sumdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/module"
	xsumdb "golang.org/x/mod/sumdb"

	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/store"
	"github.com/agora-mirror/agora/internal/upstream"
)

// ErrChecksumMismatch is matched by a *ChecksumError.
var ErrChecksumMismatch = errors.New("checksum mismatch")

// ErrNotFound is matched by errors meaning the database has no record of
// a module version (the database itself answered "not found").
var ErrNotFound = errors.New("not in checksum database")

// ErrSecurity is matched by errors where the database's answers failed
// verification (a bad signature, an inconsistent log).
var ErrSecurity = xsumdb.ErrSecurity

// ChecksumError reports downloaded content whose hash differs from the
// checksum database's.
type ChecksumError struct {
	Module, Version string
	File            string // "zip" or "go.mod"
	Got, Want       string // the downloaded content's hash and the database's
}

func (e *ChecksumError) Error() string {
	v := e.Version
	if e.File == "go.mod" {
		v += "/go.mod"
	}
	return fmt.Sprintf("%s@%s: checksum mismatch\n\tdownloaded: %s\n\tchecksum database: %s", e.Module, v, e.Got, e.Want)
}

// Is reports whether target is ErrChecksumMismatch.
func (e *ChecksumError) Is(target error) bool { return target == ErrChecksumMismatch }

// rotateAfter bounds how many lookups one x/mod client serves: the client
// memoizes every record and tile it has seen (errors included), which suits
// a short-lived go command but not a server.
const rotateAfter = 4096

// DB is one checksum database, as a cached proxy and as a verifier.
type DB struct {
	cfg     Config
	st      store.Store
	chain   *upstream.Chain
	opts    upstream.Options
	nosum   string
	log     *slog.Logger
	timeout time.Duration

	client  atomic.Pointer[xsumdb.Client]
	lookups atomic.Int64
	// security counts the x/mod client's security errors: the client
	// reports them to ops.SecurityError but returns them with %v, so
	// lookup tells them apart by this count.
	security atomic.Int64

	remoteMu   sync.Mutex
	remote     *upstream.Proxy // where database requests go, once known
	remoteNext time.Time       // when to probe again after failing to find one

	state   State
	offline bool

	memMu sync.Mutex
	mem   map[string]memEntry // short-lived answers: latest, partial tiles

	errMu   sync.Mutex
	lastErr map[string]error // a remote path's last failure, for classifying the client's errors
}

type memEntry struct {
	data    []byte
	expires time.Time
}

// State keeps the verified tree head, shared by every replica. *meta.DB
// implements it.
type State interface {
	// State returns the value of key, or an error matching
	// meta.ErrNotFound.
	State(ctx context.Context, key string) ([]byte, time.Time, error)
	// SwapState sets key to new if its value is old (empty old: unset),
	// and reports whether it did.
	SwapState(ctx context.Context, key string, old, new []byte) (bool, error)
}

// Options configure a DB.
type Options struct {
	// State keeps the verified tree head; required.
	State State
	// Offline: never contact the database; answer from what is held
	// (imported with agora import, or cached while online).
	Offline bool
	// Chain is the upstream proxy chain: the database is reached through
	// the first of its proxies that answers /sumdb/<name>/supported, when
	// Config.URL is empty.
	Chain *upstream.Chain
	// Upstream configures requests to the database.
	Upstream upstream.Options
	// NoSum is a GOPRIVATE-style pattern list of module paths that are
	// never looked up.
	NoSum string
	// Logger receives security errors and fetch problems.
	Logger *slog.Logger
}

// New returns the DB for cfg, keeping its cache in st and its verified
// tree head in o.State.
func New(cfg Config, st store.Store, o Options) *DB {
	if o.State == nil {
		panic("sumdb: Options.State is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Chain == nil {
		o.Chain = &upstream.Chain{}
	}
	timeout := o.Upstream.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	d := &DB{
		cfg:     cfg,
		st:      st,
		state:   o.State,
		offline: o.Offline,
		chain:   o.Chain,
		opts:    o.Upstream,
		nosum:   o.NoSum,
		log:     o.Logger.With("sumdb", cfg.Name),
		timeout: timeout,
		mem:     make(map[string]memEntry),
		lastErr: make(map[string]error),
	}
	d.client.Store(d.newClient())
	return d
}

// Name returns the database's name.
func (d *DB) Name() string { return d.cfg.Name }

// Config returns the database's configuration.
func (d *DB) Config() Config { return d.cfg }

// Private reports whether modPath matches the nosum patterns.
func (d *DB) Private(modPath string) bool {
	return module.MatchPrefixPatterns(d.nosum, modPath)
}

func (d *DB) newClient() *xsumdb.Client {
	c := xsumdb.NewClient(&ops{d})
	c.SetGONOSUMDB(d.nosum)
	return c
}

// lookup returns the go.sum lines for path@vers (vers may end in
// "/go.mod"), verified against the database's signed log.
func (d *DB) lookup(ctx context.Context, path, vers string) ([]string, error) {
	if d.Private(path) {
		return nil, fmt.Errorf("%s: %w", path, ErrPrivate)
	}
	if n := d.lookups.Add(1); n%rotateAfter == 0 {
		d.client.Store(d.newClient())
	}
	c := d.client.Load()
	security := d.security.Load()
	type result struct {
		lines []string
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		lines, err := c.Lookup(path, vers)
		ch <- result{lines, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if r.err == nil {
		return r.lines, nil
	}
	// The x/mod client remembers failures forever; start a fresh one
	// so that a transient failure is retried by the next request.
	d.client.CompareAndSwap(c, d.newClient())
	if d.security.Load() != security {
		return nil, fmt.Errorf("checksum database %s: %w: %v", d.cfg.Name, ErrSecurity, r.err)
	}
	epath, _ := module.EscapePath(path)
	evers, _ := module.EscapeVersion(strings.TrimSuffix(vers, "/go.mod"))
	if rerr := d.takeRemoteErr("/lookup/" + epath + "@" + evers); rerr != nil {
		if errors.Is(rerr, upstream.ErrNotFound) {
			// Not %w: the database's "not found" must not read as the
			// module being missing from the upstreams.
			return nil, fmt.Errorf("%s@%s: %w: %v", path, vers, ErrNotFound, rerr)
		}
		return nil, fmt.Errorf("checksum database %s: %w", d.cfg.Name, rerr)
	}
	return nil, fmt.Errorf("checksum database %s: %w", d.cfg.Name, r.err)
}

// ErrPrivate is returned for lookups of module paths matching the nosum
// patterns.
var ErrPrivate = errors.New("private module: not looked up in the checksum database")

// Verify checks the hashes of a downloaded module version against the
// database. Either hash may be empty to skip it. It returns a
// *ChecksumError on a mismatch.
func (d *DB) Verify(ctx context.Context, path, vers, zipHash, modHash string) error {
	check := func(v, file, got string) error {
		if got == "" {
			return nil
		}
		lines, err := d.lookup(ctx, path, v)
		if err != nil {
			return err
		}
		want := ""
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) == 3 && f[0] == path && f[1] == v {
				want = f[2]
				if want == got {
					return nil
				}
			}
		}
		if want == "" {
			return fmt.Errorf("%s@%s: %w (no %s hash in its record)", path, v, ErrNotFound, file)
		}
		return &ChecksumError{Module: path, Version: vers, File: file, Got: got, Want: want}
	}
	if err := check(vers+"/go.mod", "go.mod", modHash); err != nil {
		return err
	}
	return check(vers, "zip", zipHash)
}

func (d *DB) setRemoteErr(path string, err error) {
	d.errMu.Lock()
	if len(d.lastErr) > 1024 {
		clear(d.lastErr)
	}
	d.lastErr[path] = err
	d.errMu.Unlock()
}

func (d *DB) takeRemoteErr(path string) error {
	d.errMu.Lock()
	defer d.errMu.Unlock()
	err := d.lastErr[path]
	delete(d.lastErr, path)
	return err
}

// remoteProxy returns where database requests are sent: the configured
// URL, else the first upstream proxy that supports the database, else
// https://<name>.
func (d *DB) remoteProxy(ctx context.Context) (*upstream.Proxy, error) {
	d.remoteMu.Lock()
	defer d.remoteMu.Unlock()
	if d.remote != nil && (d.cfg.URL != "" || time.Now().Before(d.remoteNext)) {
		return d.remote, nil
	}
	if d.cfg.URL != "" {
		p, err := upstream.NewProxy(d.cfg.URL, d.opts)
		if err != nil {
			return nil, err
		}
		d.remote = p
		return p, nil
	}
	for _, p := range d.chain.Proxies() {
		sp, err := upstream.NewProxy(p.URL("sumdb/"+d.cfg.Name), d.opts)
		if err != nil {
			continue
		}
		if _, err := sp.FetchBytes(ctx, "supported", 1<<10); err == nil {
			d.remote, d.remoteNext = sp, time.Now().Add(time.Hour)
			return sp, nil
		}
	}
	p, err := upstream.NewProxy("https://"+d.cfg.Name, d.opts)
	if err != nil {
		return nil, err
	}
	// Probe the proxies again soon: one may have been briefly down.
	d.remote, d.remoteNext = p, time.Now().Add(time.Minute)
	return p, nil
}

// readRemote fetches a database path ("/lookup/...", "/tile/...", "/latest").
func (d *DB) readRemote(ctx context.Context, path string) ([]byte, error) {
	if d.offline {
		return nil, fmt.Errorf("checksum database %s%s: not held here, and Agora is offline: %w", d.cfg.Name, path, upstream.ErrOff)
	}
	p, err := d.remoteProxy(ctx)
	if err != nil {
		return nil, err
	}
	return p.FetchBytes(ctx, path, 16<<20)
}

// ops gives the x/mod client its I/O: the store for configuration and
// cache, upstream requests for the rest.
type ops struct{ d *DB }

func (o *ops) ReadRemote(path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*o.d.timeout)
	defer cancel()
	data, err := o.d.readRemote(ctx, path)
	if err != nil {
		o.d.setRemoteErr(path, err)
	}
	return data, err
}

// LatestKey returns the state key of the verified tree head of the
// database named name.
func LatestKey(name string) string { return "sumdb " + name + " latest" }

func (o *ops) latestKey() string { return LatestKey(o.d.cfg.Name) }

func (o *ops) ReadConfig(file string) ([]byte, error) {
	if file == "key" {
		return []byte(o.d.cfg.Key), nil
	}
	if file != o.d.cfg.Name+"/latest" {
		return nil, fmt.Errorf("unknown config file %q", file)
	}
	data, _, err := o.d.state.State(context.Background(), o.latestKey())
	if errors.Is(err, meta.ErrNotFound) {
		return nil, nil // start from an empty tree
	}
	return data, err
}

// WriteConfig moves the verified tree head from old to new, atomically
// across replicas: if another one moved it first, the client is told of
// the conflict and reads it again.
func (o *ops) WriteConfig(file string, old, new []byte) error {
	if file != o.d.cfg.Name+"/latest" {
		return fmt.Errorf("unknown config file %q", file)
	}
	ok, err := o.d.state.SwapState(context.Background(), o.latestKey(), old, new)
	if err != nil {
		return err
	}
	if !ok {
		return xsumdb.ErrWriteConflict
	}
	return nil
}

// CacheKey is the store key of a checksum database file held verified:
// file is "<name>/lookup/..." or "<name>/tile/..." as the x/mod client
// names it.
func CacheKey(file string) string { return "sumdb/" + file }

func (o *ops) ReadCache(file string) ([]byte, error) {
	return o.d.st.Get(context.Background(), CacheKey(file))
}

func (o *ops) WriteCache(file string, data []byte) {
	err := o.d.st.Put(context.Background(), CacheKey(file), data)
	if err != nil && !errors.Is(err, store.ErrExist) {
		o.d.log.Warn("caching checksum database file", "file", file, "err", err)
	}
}

func (o *ops) Log(msg string) { o.d.log.Info(msg) }

func (o *ops) SecurityError(msg string) {
	o.d.security.Add(1)
	o.d.log.Error("SECURITY ERROR from checksum database", "msg", msg)
}
