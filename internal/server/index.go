package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/agora-mirror/agora/internal/meta"
)

// Catalog answers the module index and the catalog. *meta.DB implements
// it.
type Catalog interface {
	// Index returns up to limit versions added at or after since, in
	// the order they were added.
	Index(ctx context.Context, since time.Time, limit int) ([]meta.Version, error)
	// Modules returns up to limit modules whose paths sort after
	// after, containing match when it is not empty, in path order.
	Modules(ctx context.Context, after, match string, limit int) ([]meta.Module, error)
}

// Limits of the index and the catalog pages.
const (
	IndexLimit          = 2000 // the default and the most entries in one /index page
	CatalogLimit        = 1000 // the most modules in one /catalog page
	CatalogDefaultLimit = 100
)

// indexEntry is a line of /index, in the public module index's format.
type indexEntry struct {
	Path      string
	Version   string
	Timestamp time.Time
}

// limitParam reads the limit query parameter: def when absent, at most
// max, an error text when it is not a positive number.
func limitParam(r *http.Request, def, max int) (int, string) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, ""
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, "limit must be a positive number, got " + strconv.Quote(s)
	}
	return min(n, max), ""
}

// serveIndex answers /index?since=RFC3339&limit=N: newline-delimited JSON
// of the versions that entered the mirror at or after since (inclusive,
// as the public index's), oldest first. Timestamps are unique, so a
// client resumes by passing the last Timestamp it saw and skipping that
// one entry (or passing it plus a microsecond).
func (h *Handler) serveIndex(w *recorder, r *http.Request) {
	w.endpoint = "index"
	var since time.Time
	if s := r.URL.Query().Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			errorText(w, http.StatusBadRequest, "since must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got "+strconv.Quote(s))
			return
		}
		since = t
	}
	limit, bad := limitParam(r, IndexLimit, IndexLimit)
	if bad != "" {
		errorText(w, http.StatusBadRequest, bad)
		return
	}
	vs, err := h.cat.Index(r.Context(), since, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// Modules the client may not read are left out (so a page may be
	// shorter than limit: resume from the last Timestamp all the same).
	may := h.access.Filter(r)
	var buf []byte
	for _, v := range vs {
		if !may(v.Path) {
			continue
		}
		line, err := json.Marshal(indexEntry{Path: v.Path, Version: v.Version, Timestamp: v.Added})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		buf = append(append(buf, line...), '\n')
	}
	writeJSON(w, r, buf)
}

// catalogVersion is a version in a /catalog answer.
type catalogVersion struct {
	Version      string
	Time         time.Time // when it entered the mirror
	ZipHash      string
	ModHash      string
	Size         int64
	Origin       string
	Verification string
}

type catalogModule struct {
	Path     string
	Versions []catalogVersion
}

// catalogPage is a /catalog answer.
type catalogPage struct {
	Modules []catalogModule
	// Next is the after parameter of the next page; empty on the last.
	Next string `json:",omitempty"`
}

// serveCatalog answers /catalog?after=PATH&q=TEXT&limit=N: a page of the
// modules held, in path order, with their versions.
func (h *Handler) serveCatalog(w *recorder, r *http.Request) {
	w.endpoint = "catalog"
	q := r.URL.Query()
	limit, bad := limitParam(r, CatalogDefaultLimit, CatalogLimit)
	if bad != "" {
		errorText(w, http.StatusBadRequest, bad)
		return
	}
	// Modules the client may not read are skipped, and never named
	// (not even as the next page's cursor): read on until the page is
	// full of readable ones or the catalog ends.
	may := h.access.Filter(r)
	var mods []meta.Module
	after, more := q.Get("after"), true
	for rounds := 0; more && len(mods) <= limit && rounds < 100; rounds++ {
		batch, err := h.cat.Modules(r.Context(), after, q.Get("q"), limit+1)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		more = len(batch) == limit+1
		for _, m := range batch {
			if may(m.Path) {
				mods = append(mods, m)
			}
		}
		if len(batch) > 0 {
			after = batch[len(batch)-1].Path
		}
	}
	page := catalogPage{Modules: []catalogModule{}}
	if len(mods) > limit {
		mods = mods[:limit]
		page.Next = mods[limit-1].Path
	} else if more && len(mods) > 0 {
		page.Next = mods[len(mods)-1].Path
	}
	for _, m := range mods {
		cm := catalogModule{Path: m.Path}
		for _, v := range m.Versions {
			cm.Versions = append(cm.Versions, catalogVersion{Version: v.Version, Time: v.Added, ZipHash: v.ZipHash,
				ModHash: v.ModHash, Size: v.Size, Origin: v.Origin, Verification: v.Verification})
		}
		page.Modules = append(page.Modules, cm)
	}
	data, err := json.MarshalIndent(page, "", "  ")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, r, append(data, '\n'))
}

func writeJSON(w http.ResponseWriter, r *http.Request, data []byte) {
	writeBody(w, r, http.StatusOK, ctypeJSONUTF8, cacheNone, data)
}
