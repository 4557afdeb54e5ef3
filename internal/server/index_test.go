package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/modtest"
)

// newIndexHandler returns a handler whose catalog holds n versions of
// example.com/m0..m4, and those versions in the order added.
func newIndexHandler(t testing.TB, n int) (*Handler, []meta.Version) {
	md := modtest.Meta(t)
	var added []meta.Version
	for i := range n {
		v, _, err := md.AddVersion(context.Background(), meta.Version{Path: fmt.Sprintf("example.com/m%d", i%5),
			Version: fmt.Sprintf("v1.0.%d", i), ZipHash: "h1:z", ModHash: "h1:m", Origin: "test", Verification: meta.Verified})
		if err != nil {
			t.Fatal(err)
		}
		added = append(added, v)
	}
	return New(Options{Catalog: md}), added
}

func serveGet(h http.Handler, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	return w
}

func TestIndex(t *testing.T) {
	h, added := newIndexHandler(t, 12)
	lines := func(body string) []indexEntry {
		var out []indexEntry
		sc := bufio.NewScanner(strings.NewReader(body))
		for sc.Scan() {
			var e indexEntry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			out = append(out, e)
		}
		return out
	}
	w := serveGet(h, "/index")
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("/index: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	all := lines(w.Body.String())
	if len(all) != len(added) {
		t.Fatalf("/index has %d lines, want %d", len(all), len(added))
	}
	for i, e := range all {
		if e.Path != added[i].Path || e.Version != added[i].Version || !e.Timestamp.Equal(added[i].Added) {
			t.Errorf("line %d = %+v, want %+v", i, e, added[i])
		}
	}
	since := added[4].Added.Format(time.RFC3339Nano)
	page := lines(serveGet(h, "/index?limit=3&since="+url.QueryEscape(since)).Body.String())
	if len(page) != 3 || page[0].Version != added[4].Version || page[2].Version != added[6].Version {
		t.Errorf("/index?since=entry 4&limit=3 = %+v", page)
	}
	// A limit above the cap is capped, not refused.
	if w := serveGet(h, "/index?limit=100000"); w.Code != http.StatusOK || len(lines(w.Body.String())) != len(added) {
		t.Errorf("/index?limit=100000: %d", w.Code)
	}
	for _, q := range []string{"since=yesterday", "since=2026-13-01T00:00:00Z", "limit=0", "limit=-1", "limit=ten", "limit=1e3"} {
		if w := serveGet(h, "/index?"+q); w.Code != http.StatusBadRequest {
			t.Errorf("/index?%s: %d, want 400", q, w.Code)
		}
	}
}

func TestCatalog(t *testing.T) {
	h, _ := newIndexHandler(t, 12)
	var page catalogPage
	get := func(q string) {
		t.Helper()
		page = catalogPage{}
		w := serveGet(h, "/catalog?"+q)
		if w.Code != http.StatusOK {
			t.Fatalf("/catalog?%s: %d %s", q, w.Code, w.Body)
		}
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
	}
	get("limit=2")
	if len(page.Modules) != 2 || page.Modules[0].Path != "example.com/m0" || page.Next != "example.com/m1" {
		t.Fatalf("first page = %+v", page)
	}
	if n := len(page.Modules[0].Versions); n != 3 {
		t.Errorf("example.com/m0 has %d versions, want 3", n)
	}
	get("limit=2&after=" + page.Next)
	if len(page.Modules) != 2 || page.Modules[0].Path != "example.com/m2" || page.Next != "example.com/m3" {
		t.Fatalf("second page = %+v", page)
	}
	get("after=example.com/m3")
	if len(page.Modules) != 1 || page.Next != "" {
		t.Fatalf("last page = %+v", page)
	}
	get("q=M4")
	if len(page.Modules) != 1 || page.Modules[0].Path != "example.com/m4" {
		t.Errorf("q=M4 = %+v", page)
	}
	get("q=nothing")
	if page.Modules == nil || len(page.Modules) != 0 {
		t.Errorf("no match = %+v, want an empty list", page)
	}
	if w := serveGet(h, "/catalog?limit=x"); w.Code != http.StatusBadRequest {
		t.Errorf("/catalog?limit=x: %d, want 400", w.Code)
	}
}

// FuzzIndexQuery: any query string gets 200 or 400 from /index and
// /catalog, never a server error.
func FuzzIndexQuery(f *testing.F) {
	for _, s := range []string{"", "since=2026-01-02T15:04:05Z", "limit=5", "since=2026-01-02T15:04:05.123456789+02:00&limit=2000",
		"limit=99999999999999999999", "since=%00", "q=%25_&after=z", "limit=-0"} {
		f.Add(s)
	}
	h, _ := newIndexHandler(f, 3)
	f.Fuzz(func(t *testing.T, q string) {
		for _, p := range []string{"/index", "/catalog"} {
			r, err := http.NewRequest(http.MethodGet, "http://agora.test"+p, nil)
			if err != nil {
				t.Fatal(err)
			}
			r.URL.RawQuery = q
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
				t.Fatalf("%s?%s: %d %s", p, q, w.Code, w.Body)
			}
		}
	})
}
