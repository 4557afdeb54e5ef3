package mirror

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
)

// FillAhead says what the mirror fills before a client asks for it.
type FillAhead int

const (
	// AheadOff fills only what clients ask for.
	AheadOff FillAhead = iota
	// AheadMod fills, in the background, the .info and .mod of every
	// version that a go.mod filled from an upstream proxy requires: the
	// go command asks for them next as it walks the module graph, and it
	// walks it with as few requests at a time as the client has cores.
	AheadMod
	// AheadZip does what AheadMod does and also fills the zip of a
	// version in a module graph the mirror has seen (required by a go.mod
	// it filled, or whose .mod a client asked for) when a client asks for
	// its .info: go mod download and go build ask for the .info of the
	// versions they build just before their zips, and versions only looked
	// at (the upgrades go list -m -u finds) are mostly in no graph yet.
	AheadZip
)

// Bounds on filling ahead: fills at once, and versions waiting. A version
// that finds the queue full is not filled ahead (a client asking for it
// fills it as usual).
const (
	aheadWorkers = 8
	aheadQueue   = 4096
	aheadSeenMax = 100000 // versions remembered as queued before; then forgotten
)

// aheadKey marks the context of a fill ahead: it notes no use of the
// version (prune keeps what clients ask for, not what was guessed) and
// queues nothing further for zips.
type aheadKey struct{}

// aheadJob is a version to fill ahead: its .info and .mod, or its zip.
type aheadJob struct {
	path, vers string
	zip        bool
}

func (j aheadJob) file() string {
	if j.zip {
		return "zip"
	}
	return "mod"
}

// aheader runs fills ahead: at most aheadWorkers at a time, on goroutines
// that exist only while there is work.
type aheader struct {
	mode FillAhead
	ctx  context.Context // cancelled by Close
	stop context.CancelFunc

	mu      sync.Mutex
	seen    map[aheadJob]struct{}
	graph   map[useKey]struct{} // versions in a module graph seen (AheadZip)
	pending []aheadJob
	running int
	closed  bool
	wg      sync.WaitGroup
}

func newAheader(mode FillAhead) *aheader {
	ctx, stop := context.WithCancel(context.Background())
	return &aheader{mode: mode, ctx: ctx, stop: stop, seen: make(map[aheadJob]struct{}), graph: make(map[useKey]struct{})}
}

// inGraph notes that a version is in a module graph (a go.mod requires
// it, or a client asked for its .mod).
func (a *aheader) inGraph(path, vers string) {
	if a.mode < AheadZip {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.graph) >= aheadSeenMax {
		clear(a.graph)
	}
	a.graph[useKey{path, vers}] = struct{}{}
}

// add queues a job unless it was queued before, the queue is full or the
// mirror is closing.
func (a *aheader) add(m *Mirror, j aheadJob) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.seen[j]; ok || a.closed {
		return
	}
	if len(a.pending) >= aheadQueue {
		m.obs.FilledAhead(j.file(), "dropped")
		return
	}
	if len(a.seen) >= aheadSeenMax {
		clear(a.seen)
	}
	a.seen[j] = struct{}{}
	if a.running < aheadWorkers {
		a.running++
		a.wg.Add(1)
		go a.run(m, j)
		return
	}
	a.pending = append(a.pending, j)
}

// run does j, then the jobs queued meanwhile, until none is left.
func (a *aheader) run(m *Mirror, j aheadJob) {
	defer a.wg.Done()
	for {
		m.fillAhead(a.ctx, j)
		a.mu.Lock()
		if len(a.pending) == 0 || a.closed {
			a.running--
			a.mu.Unlock()
			return
		}
		j = a.pending[0]
		a.pending = a.pending[1:]
		a.mu.Unlock()
	}
}

// close stops queued jobs, cancels running ones and waits for them, or
// for ctx.
func (a *aheader) close(ctx context.Context) error {
	a.mu.Lock()
	a.closed = true
	a.pending = nil
	a.mu.Unlock()
	a.stop()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// requirementsAhead queues the .info and .mod of the versions a go.mod
// just filled from an upstream proxy (src) requires. A go.mod from version
// control (a private module, or one the proxies did not have) queues
// nothing: what it requires may be private too.
func (m *Mirror) requirementsAhead(rt Route, src string, modData []byte) {
	if m.ahead.mode < AheadMod || !fromProxy(rt) || src == directOrigin {
		return
	}
	f, err := modfile.ParseLax("go.mod", modData, nil)
	if err != nil {
		return // checked already; a go.mod the parser refuses requires nothing it can name
	}
	for _, r := range f.Require {
		p, v := r.Mod.Path, r.Mod.Version
		if module.Check(p, v) != nil || module.CanonicalVersion(v) != v ||
			(m.verify != nil && m.verify.Private(p)) {
			continue // not fetchable as written, or a path kept from the checksum database (GONOSUMDB)
		}
		m.ahead.inGraph(p, v)
		m.ahead.add(m, aheadJob{path: p, vers: v})
	}
}

// zipAhead queues the zip of a version in a module graph seen, whose
// .info a client asked for.
func (m *Mirror) zipAhead(ctx context.Context, path, vers string) {
	if m.ahead.mode < AheadZip || !m.mayFetch(ctx) {
		return
	}
	m.ahead.mu.Lock()
	_, ok := m.ahead.graph[useKey{path, vers}]
	m.ahead.mu.Unlock()
	if ok {
		m.ahead.add(m, aheadJob{path: path, vers: vers, zip: true})
	}
}

// fromProxy reports whether a route fetches from upstream proxies (a chain
// ending in ",direct" included, whose fallback a fill ahead does not use),
// the only routes filled ahead: versions from version control cost a clone
// each, and private ones are fetched when asked for only.
func fromProxy(rt Route) bool {
	switch s := rt.Source.(type) {
	case ChainSource:
		return !offline(s)
	case FallbackSource:
		return fromProxy(Route{Source: s.Primary})
	}
	return false
}

// errNoFallbackAhead is the error of a fill ahead that the upstream
// proxies could not answer and that a client's request would have taken
// to the fallback (version control): a fill ahead never goes there. A
// client that joined such a fill fills again (fillFor).
var errNoFallbackAhead = errors.New("not fetched from version control when filling ahead")

// fillFor is fill for a request: when it joined a fill ahead that stopped
// short of the fallback, it fills again, now with it.
func (m *Mirror) fillFor(ctx context.Context, key string, fn func(context.Context) error) error {
	err := m.fill(ctx, key, fn)
	if errors.Is(err, errNoFallbackAhead) && ctx.Value(aheadKey{}) == nil {
		err = m.fill(ctx, key, fn)
	}
	return err
}

// fillAhead fills one job's files unless they are held. Failures are
// logged at debug level only: a client asking for the version fills it
// again, and sees the error then.
func (m *Mirror) fillAhead(ctx context.Context, j aheadJob) {
	rt, err := m.route(j.path, j.vers)
	if err != nil || !fromProxy(rt) {
		return
	}
	// The requests' own paths, under aheadKey: no use noted, nothing
	// further queued for zips.
	ctx = context.WithValue(ctx, aheadKey{}, true)
	var held bool
	if j.zip {
		var obj interface{ Close() error }
		obj, held, err = m.Zip(ctx, j.path, j.vers)
		if err == nil {
			obj.Close()
		}
	} else {
		_, held, err = m.Mod(ctx, j.path, j.vers) // fills .info and .mod together
	}
	switch {
	case errors.Is(err, context.Canceled):
	case err != nil:
		m.obs.FilledAhead(j.file(), "failed")
		m.log.Debug("filling ahead", "module", j.path, "version", j.vers, "zip", j.zip, "err", err)
	case held:
		m.obs.FilledAhead(j.file(), "held")
	default:
		m.obs.FilledAhead(j.file(), "filled")
	}
}

// Close stops filling ahead and waits, until ctx is done, for every fill
// under way to end (a fill whose callers are all gone is cancelled, and
// ends soon). Call it when no request is being served any more.
func (m *Mirror) Close(ctx context.Context) error {
	if err := m.ahead.close(ctx); err != nil {
		return err
	}
	return m.fills.wait(ctx)
}
