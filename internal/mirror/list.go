package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/agora-mirror/agora/internal/upstream"
)

// listEntry is the upstreams' answer to a module's version list, as last
// fetched. It is kept in memory and in the catalog's state (so that it
// survives a restart, is shared by replicas, and can be served when the
// upstreams fail).
type listEntry struct {
	Versions []string  // tagged versions, sorted
	Pseudo   []string  // pseudo-versions the upstream listed (never served in a list; used for @latest)
	NotFound string    `json:",omitempty"` // the upstreams' "not found" answers, when they had no such module
	Fetched  time.Time // when the upstreams answered

	refreshing bool
}

// listKey returns the state key of a module's list answer.
func listKey(path string) string {
	ep, _ := module.EscapePath(path)
	return "list " + ep
}

// latestKey returns the state key of a module's last upstream @latest
// answer.
func latestKey(path string) string {
	ep, _ := module.EscapePath(path)
	return "latest " + ep
}

// parseList splits an upstream's list into tagged versions and
// pseudo-versions, as the go command reads it: the first field of each
// line, kept if it is a valid semantic version.
func parseList(data []byte, path string) (tagged, pseudo []string) {
	for line := range bytes.Lines(data) {
		f := strings.Fields(string(line))
		if len(f) == 0 || module.Check(path, f[0]) != nil || module.CanonicalVersion(f[0]) != f[0] {
			continue
		}
		if module.IsPseudoVersion(f[0]) {
			pseudo = append(pseudo, f[0])
		} else {
			tagged = append(tagged, f[0])
		}
	}
	return sortVersions(tagged), sortVersions(pseudo)
}

// fetchList asks the upstreams for path's list and records the answer.
// A "not found" answer is recorded too (as a negative entry).
func (m *Mirror) fetchList(ctx context.Context, src Source, path string) (*listEntry, error) {
	start := time.Now()
	data, err := src.List(ctx, path)
	m.obs.FetchDone(sourceKind(src, ""), "", "list", time.Since(start), err)
	e := &listEntry{Fetched: time.Now()}
	switch {
	case err == nil:
		e.Versions, e.Pseudo = parseList(data, path)
	case errors.Is(err, upstream.ErrNotFound):
		// The answers only: the error made from the entry names the
		// module itself.
		e.NotFound = err.Error()
		var nf *upstream.NotFoundError
		if errors.As(err, &nf) && len(nf.Answers) > 0 {
			e.NotFound = strings.Join(nf.Answers, "; ")
		}
	default:
		return nil, err
	}
	// Answers for modules that exist are kept in the catalog, to serve
	// when the upstreams fail; "not found" stays in memory only, so that
	// requests for made-up paths cannot fill the database.
	if e.NotFound == "" {
		if data, err := json.Marshal(e); err == nil {
			if err := m.cat.PutState(ctx, listKey(path), data); err != nil {
				m.log.Warn("saving version list", "module", path, "err", err)
			}
		}
	}
	m.remember(path, e)
	return e, nil
}

// maxLists bounds the version lists kept in memory; beyond it, entries
// are dropped (they are reloaded from the store, or refetched, on demand).
const maxLists = 100_000

// remember keeps e as path's list answer in memory, within maxLists.
func (m *Mirror) remember(path string, e *listEntry) {
	m.listMu.Lock()
	defer m.listMu.Unlock()
	if _, ok := m.lists[path]; !ok && len(m.lists) >= maxLists {
		// Drop an arbitrary tenth: cheap, and fair enough for a cache
		// whose misses cost one store read.
		n := maxLists / 10
		for k := range m.lists {
			delete(m.lists, k)
			if n--; n == 0 {
				break
			}
		}
	}
	m.lists[path] = e
}

// cachedList returns the last list answer for path, from memory or the
// catalog, or nil.
func (m *Mirror) cachedList(ctx context.Context, path string) *listEntry {
	m.listMu.Lock()
	e := m.lists[path]
	m.listMu.Unlock()
	if e != nil {
		return e
	}
	if e = m.storedList(ctx, path); e == nil {
		return nil
	}
	m.listMu.Lock()
	cur := m.lists[path]
	m.listMu.Unlock()
	if cur != nil {
		return cur
	}
	m.remember(path, e)
	return e
}

// storedList returns the list answer for path kept in the catalog (by
// this process or another replica), or nil.
func (m *Mirror) storedList(ctx context.Context, path string) *listEntry {
	data, _, err := m.cat.State(ctx, listKey(path))
	if err != nil {
		return nil
	}
	e := new(listEntry)
	if json.Unmarshal(data, e) != nil {
		return nil
	}
	return e
}

// upstreamList returns the upstreams' list answer for path: fresh from the
// cache; stale from the cache while a background refresh runs; or fetched
// now. When the fetch fails, a stale answer is returned with no error.
func (m *Mirror) upstreamList(ctx context.Context, src Source, path string) (*listEntry, error) {
	if offline(src) {
		return nil, upstream.ErrOff
	}
	e := m.cachedList(ctx, path)
	if e != nil && time.Since(e.Fetched) < m.listTTL {
		return e, nil
	}
	if e != nil {
		m.listMu.Lock()
		start := !e.refreshing
		e.refreshing = true
		m.listMu.Unlock()
		if start {
			go func() {
				// The refresh outlives the request that noticed the
				// stale entry; the fill timeout bounds it.
				ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.fills.timeout)
				defer cancel()
				if _, err := m.fetchList(ctx, src, path); err != nil {
					m.log.Warn("refreshing version list; serving the cached one", "module", path, "err", err)
					m.listMu.Lock()
					e.refreshing = false
					m.listMu.Unlock()
				}
			}()
		}
		return e, nil
	}
	var fresh *listEntry
	err := m.fill(ctx, "list "+path, func(ctx context.Context) error {
		// Another replica may have fetched it while this one waited.
		if e := m.storedList(ctx, path); e != nil && time.Since(e.Fetched) < m.listTTL {
			m.remember(path, e)
			fresh = e
			return nil
		}
		var err error
		fresh, err = m.fetchList(ctx, src, path)
		return err
	})
	if err != nil {
		return nil, err
	}
	if fresh == nil {
		// Another caller's fetch finished first; it left the entry.
		if fresh = m.cachedList(ctx, path); fresh == nil {
			return nil, errors.New("version list vanished")
		}
	}
	return fresh, nil
}

// held returns the versions held (recorded in the catalog), tagged and
// pseudo.
func (m *Mirror) held(ctx context.Context, path string) (tagged, pseudo []string, err error) {
	vs, err := m.cat.HeldVersions(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	for _, v := range vs {
		if module.IsPseudoVersion(v) {
			pseudo = append(pseudo, v)
		} else {
			tagged = append(tagged, v)
		}
	}
	return tagged, pseudo, nil
}

// versions is the merged answer for a module: the upstreams' list and
// what is held.
type versions struct {
	tagged, pseudo []string
	// known reports that the module exists: an upstream listed it, or
	// a version of it is held.
	known bool
}

// versions merges the upstreams' list with what is held. It fails only
// when the upstreams fail (or have no such module) and nothing is held.
func (m *Mirror) versions(ctx context.Context, path string) (versions, error) {
	var v versions
	rt, err := m.route(path, "")
	if err != nil {
		return v, err
	}
	tagged, pseudo, err := m.held(ctx, path)
	if err != nil {
		return v, err
	}
	var e *listEntry
	uerr := m.notHeld(path + "/@v/list")
	if m.mayFetch(ctx) {
		e, uerr = m.upstreamList(ctx, rt.Source, path)
	}
	if e != nil && e.NotFound != "" && len(tagged)+len(pseudo) == 0 {
		uerr = &upstream.NotFoundError{Path: path, Answers: []string{e.NotFound}}
	}
	if e != nil && e.NotFound == "" {
		tagged = append(tagged, e.Versions...)
		pseudo = append(pseudo, e.Pseudo...)
		v.known = true
	}
	if len(tagged)+len(pseudo) > 0 {
		v.known = true
	}
	if !v.known && uerr != nil {
		return v, uerr
	}
	// Versions an operator's rules deny are not offered.
	allowed := func(vers string) bool { _, err := m.route(path, vers); return err == nil }
	v.tagged = slices.DeleteFunc(sortVersions(tagged), func(s string) bool { return !allowed(s) })
	v.pseudo = slices.DeleteFunc(sortVersions(pseudo), func(s string) bool { return !allowed(s) })
	return v, nil
}

// List returns the module's version list: tagged versions only, one per
// line, sorted.
func (m *Mirror) List(ctx context.Context, path string) ([]byte, error) {
	v, err := m.versions(ctx, path)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, s := range v.tagged {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// Latest answers $module/@latest: the latest tagged version as the go
// command would choose it from the list; else the upstreams' @latest;
// else the newest pseudo-version known.
func (m *Mirror) Latest(ctx context.Context, path string) ([]byte, error) {
	v, err := m.versions(ctx, path)
	if err != nil {
		return nil, err
	}
	if best := latestTagged(v.tagged); best != "" {
		data, _, err := m.Info(ctx, path, best)
		return data, err
	}
	rt, err := m.route(path, "")
	if err != nil {
		return nil, err
	}
	if !offline(rt.Source) && m.mayFetch(ctx) {
		start := time.Now()
		data, src, err := rt.Source.Latest(ctx, path)
		m.obs.FetchDone(sourceKind(rt.Source, src), src, "latest", time.Since(start), err)
		if err == nil {
			inf, out, perr := parseInfo(data, path)
			if perr == nil {
				if _, err := m.route(path, inf.Version); err == nil {
					// Kept, to answer when the upstreams fail.
					if err := m.cat.PutState(ctx, latestKey(path), out); err != nil {
						m.log.Warn("saving @latest", "module", path, "err", err)
					}
					return out, nil
				}
			} else {
				m.log.Warn("refused upstream @latest", "module", path, "source", src, "err", perr)
			}
		} else if !errors.Is(err, upstream.ErrNotFound) {
			if out, _, serr := m.cat.State(ctx, latestKey(path)); serr == nil {
				m.log.Warn("asking for @latest; serving the last answer", "module", path, "err", err)
				return out, nil
			}
			if len(v.pseudo) == 0 {
				return nil, err
			}
		}
	}
	if n := len(v.pseudo); n > 0 {
		data, _, err := m.Info(ctx, path, v.pseudo[n-1])
		return data, err
	}
	return nil, &upstream.NotFoundError{Path: path + "@latest", Answers: []string{"no versions"}}
}

// latestTagged returns the version the go command would take as latest
// from a sorted list: the highest release, else the highest pre-release;
// +incompatible versions only when there is nothing else.
func latestTagged(sorted []string) string {
	pick := func(ok func(string) bool) string {
		for i := len(sorted) - 1; i >= 0; i-- {
			if ok(sorted[i]) {
				return sorted[i]
			}
		}
		return ""
	}
	compatible := func(v string) bool { return !strings.HasSuffix(v, "+incompatible") }
	if v := pick(func(v string) bool { return compatible(v) && semver.Prerelease(v) == "" }); v != "" {
		return v
	}
	if v := pick(compatible); v != "" {
		return v
	}
	if v := pick(func(v string) bool { return semver.Prerelease(v) == "" }); v != "" {
		return v
	}
	return pick(func(string) bool { return true })
}
