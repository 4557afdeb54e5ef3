package sumdb

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	pathpkg "path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agora-mirror/agora/internal/store"
	"github.com/agora-mirror/agora/internal/upstream"
)

// Cache lifetimes of the mutable answers.
const (
	latestTTL  = 10 * time.Second
	partialTTL = 30 * time.Second
)

// Cache-Control values.
const (
	cacheForever = "public, max-age=31536000, immutable"
	cacheBriefly = "public, max-age=10"
)

// Handler serves /sumdb/<name>/... for a set of databases.
type Handler struct {
	dbs map[string]*DB
}

// NewHandler returns a handler for the given databases.
func NewHandler(dbs ...*DB) *Handler {
	h := &Handler{dbs: make(map[string]*DB)}
	for _, d := range dbs {
		h.dbs[d.cfg.Name] = d
	}
	return h
}

// ServeHTTP answers a request whose path begins with "/sumdb/".
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, _ := strings.CutPrefix(r.URL.Path, "/sumdb/")
	var d *DB
	// Database names may contain slashes: take the longest match.
	for name, db := range h.dbs {
		if strings.HasPrefix(rest, name+"/") && (d == nil || len(name) > len(d.cfg.Name)) {
			d = db
		}
	}
	if d == nil {
		plain(w, http.StatusNotFound, "unknown checksum database: Agora proxies only "+h.names()+"\n")
		return
	}
	d.serve(w, r, rest[len(d.cfg.Name):])
}

func (h *Handler) names() string {
	var names []string
	for n := range h.dbs {
		names = append(names, n)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write([]byte(msg))
}

func reply(w http.ResponseWriter, r *http.Request, ctype, cache string, data []byte) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", cache)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(data)
	}
}

func (d *DB) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrPrivate):
		plain(w, http.StatusForbidden, err.Error()+"\n")
	case errors.Is(err, ErrNotFound), errors.Is(err, upstream.ErrNotFound):
		plain(w, http.StatusNotFound, err.Error()+"\n")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, upstream.ErrTimeout):
		plain(w, http.StatusGatewayTimeout, err.Error()+"\n")
	default:
		plain(w, http.StatusBadGateway, err.Error()+"\n")
	}
}

// serve answers path (beginning with "/") for this database.
func (d *DB) serve(w http.ResponseWriter, r *http.Request, path string) {
	ctx := r.Context()
	switch {
	case path == "/supported":
		reply(w, r, "text/plain; charset=utf-8", cacheBriefly, nil)
	case path == "/latest":
		data, err := d.latest(ctx)
		if err != nil {
			d.fail(w, err)
			return
		}
		reply(w, r, "text/plain; charset=utf-8", cacheBriefly, data)
	case strings.HasPrefix(path, "/lookup/"):
		d.serveLookup(w, r, strings.TrimPrefix(path, "/lookup/"))
	case strings.HasPrefix(path, "/tile/"):
		d.serveTile(w, r, strings.TrimPrefix(path, "/"))
	default:
		plain(w, http.StatusNotFound, "unknown checksum database endpoint\n")
	}
}

func (d *DB) serveLookup(w http.ResponseWriter, r *http.Request, modver string) {
	epath, evers, ok := strings.Cut(modver, "@")
	if !ok {
		plain(w, http.StatusBadRequest, "invalid lookup: want module@version\n")
		return
	}
	path, err := module.UnescapePath(epath)
	if err == nil {
		var vers string
		vers, err = module.UnescapeVersion(evers)
		if err == nil {
			err = module.Check(path, vers)
		}
		if err == nil {
			if d.Private(path) {
				plain(w, http.StatusForbidden, path+": "+ErrPrivate.Error()+"\n")
				return
			}
			key := CacheKey(d.cfg.Name + "/lookup/" + epath + "@" + evers)
			if d.offline {
				// Held records were verified when they entered the
				// cache (looked up online, or imported).
				data, err := d.st.Get(r.Context(), key)
				if err != nil {
					d.fail(w, fmt.Errorf("%s@%s: %w: not held here, and Agora is offline", path, vers, ErrNotFound))
					return
				}
				reply(w, r, "text/plain; charset=utf-8", cacheForever, data)
				return
			}
			if _, err := d.lookup(r.Context(), path, vers); err != nil {
				d.fail(w, err)
				return
			}
			// The record is now in the cache, verified.
			data, err := d.st.Get(r.Context(), key)
			if err != nil {
				d.fail(w, err)
				return
			}
			reply(w, r, "text/plain; charset=utf-8", cacheForever, data)
			return
		}
	}
	plain(w, http.StatusBadRequest, "invalid lookup: "+err.Error()+"\n")
}

// serveTile answers a tile: from the verified cache, the raw cache of full
// tiles, a short-lived memory cache of partial tiles, or the database.
func (d *DB) serveTile(w http.ResponseWriter, r *http.Request, path string) {
	t, err := tlog.ParseTilePath(path)
	if err != nil || store.CheckKey(path) != nil {
		plain(w, http.StatusBadRequest, "invalid tile path\n")
		return
	}
	ctx := r.Context()
	full := t.W == 1<<t.H
	cache := cacheBriefly
	if full {
		cache = cacheForever
	}
	verified := CacheKey(d.cfg.Name + "/" + path)
	if data, err := d.st.Get(ctx, verified); err == nil {
		reply(w, r, "application/octet-stream", cache, data)
		return
	}
	raw := "sumdb-raw/" + d.cfg.Name + "/" + path
	if full {
		if data, err := d.st.Get(ctx, raw); err == nil {
			reply(w, r, "application/octet-stream", cache, data)
			return
		}
	} else if data, ok := d.memGet(path); ok {
		reply(w, r, "application/octet-stream", cache, data)
		return
	}
	if d.offline {
		if data, ok := d.heldWiderTile(ctx, path); ok {
			reply(w, r, "application/octet-stream", cache, data)
			return
		}
	}
	data, err := d.readRemote(ctx, "/"+path)
	if err != nil {
		d.fail(w, err)
		return
	}
	if full {
		if err := d.st.Put(ctx, raw, data); err != nil && !errors.Is(err, store.ErrExist) {
			d.log.Warn("caching tile", "tile", path, "err", err)
		}
	} else {
		d.memPut(path, data, partialTTL)
	}
	reply(w, r, "application/octet-stream", cache, data)
}

// latest returns the database's latest signed tree head, cached briefly;
// when the database cannot be reached it returns the last one seen.
func (d *DB) latest(ctx context.Context) ([]byte, error) {
	if d.offline {
		data, _, err := d.state.State(ctx, LatestKey(d.cfg.Name))
		if err != nil {
			return nil, fmt.Errorf("checksum database %s: %w: no tree head held, and Agora is offline", d.cfg.Name, ErrNotFound)
		}
		return data, nil
	}
	if data, ok := d.memGet("latest"); ok {
		return data, nil
	}
	data, err := d.readRemote(ctx, "/latest")
	if err != nil {
		d.memMu.Lock()
		e, ok := d.mem["latest"]
		d.memMu.Unlock()
		if ok {
			return e.data, nil
		}
		return nil, err
	}
	d.memPut("latest", data, latestTTL)
	return data, nil
}

func (d *DB) memGet(key string) ([]byte, bool) {
	d.memMu.Lock()
	defer d.memMu.Unlock()
	e, ok := d.mem[key]
	if !ok || time.Now().After(e.expires) {
		return nil, false
	}
	return e.data, true
}

func (d *DB) memPut(key string, data []byte, ttl time.Duration) {
	d.memMu.Lock()
	defer d.memMu.Unlock()
	if len(d.mem) > 4096 {
		for k, e := range d.mem {
			if time.Now().After(e.expires) {
				delete(d.mem, k)
			}
		}
	}
	d.mem[key] = memEntry{data: data, expires: time.Now().Add(ttl)}
}

// TileFromWider returns the partial hash tile at path ("tile/H/L/N.p/W"),
// cut from a wider copy of the same tile that have finds: the log only
// grows, so a tile's first W hashes never change, and a narrower tile is a
// prefix of a wider one. It lets an offline mirror answer for a tree size
// it holds no tile of exactly.
func TileFromWider(path string, have func(path string) ([]byte, bool)) ([]byte, bool) {
	t, err := tlog.ParseTilePath(path)
	if err != nil || t.L < 0 || t.W >= 1<<t.H {
		return nil, false
	}
	for w := 1 << t.H; w > t.W; w-- {
		wider := t
		wider.W = w
		if data, ok := have(wider.Path()); ok && len(data) >= t.W*tlog.HashSize {
			return data[:t.W*tlog.HashSize], true
		}
	}
	return nil, false
}

// heldWiderTile answers a partial tile from a wider one held: the full
// tile, or a partial one of a width the store lists (so a miss costs a few
// store requests, not one per possible width).
func (d *DB) heldWiderTile(ctx context.Context, tilePath string) ([]byte, bool) {
	t, err := tlog.ParseTilePath(tilePath)
	if err != nil || t.L < 0 || t.W >= 1<<t.H {
		return nil, false
	}
	full := t
	full.W = 1 << t.H
	candidates := map[string]bool{full.Path(): true}
	dir := pathpkg.Dir(tilePath) // tile/H/L/NNN.p
	for _, prefix := range []string{"sumdb/", "sumdb-raw/"} {
		names, _ := d.st.List(ctx, prefix+d.cfg.Name+"/"+dir)
		for _, n := range names {
			if w, err := strconv.Atoi(n); err == nil && w > t.W {
				candidates[dir+"/"+n] = true
			}
		}
	}
	return TileFromWider(tilePath, func(p string) ([]byte, bool) {
		if !candidates[p] {
			return nil, false
		}
		return Held(ctx, d.st, d.cfg.Name, p)
	})
}

// Held returns a file of the checksum database named name ("lookup/..." or
// "tile/...") from the cache in st: the verified records and tiles, else
// the full tiles passed through unverified.
func Held(ctx context.Context, st store.Store, name, path string) ([]byte, bool) {
	if data, err := st.Get(ctx, CacheKey(name+"/"+path)); err == nil {
		return data, true
	}
	if data, err := st.Get(ctx, "sumdb-raw/"+name+"/"+path); err == nil {
		return data, true
	}
	return nil, false
}
