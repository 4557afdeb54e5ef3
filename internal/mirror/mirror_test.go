package mirror_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/modtest"
	"github.com/agora-mirror/agora/internal/store"
	"github.com/agora-mirror/agora/internal/sumdb"
	"github.com/agora-mirror/agora/internal/upstream"
)

const (
	dbName  = "sum.agora.test"
	private = "private.example.com"
	pseudo1 = "v0.0.0-20240305060708-abcdef123456"
	pseudo2 = "v0.0.0-20240401000000-123456abcdef"
)

// fastUpstream fails at once: one attempt per request.
var fastUpstream = upstream.Options{Attempts: 1, Timeout: 10 * time.Second}

// env is a Mirror over a store, filled from a test upstream and checked
// against a test checksum database.
type env struct {
	t     *testing.T
	up    *modtest.Upstream
	db    *modtest.SumDB
	st    store.Store
	md    *meta.DB
	chain *upstream.Chain
	vf    *sumdb.DB
	m     *mirror.Mirror
}

func newEnv(t *testing.T, st store.Store, opts mirror.Options) *env {
	t.Helper()
	e := &env{t: t, up: modtest.NewUpstream(t), db: modtest.NewSumDB(t, dbName), st: st, md: modtest.Meta(t)}
	if e.st == nil {
		e.st = store.NewMemory(t.TempDir())
	}
	var err error
	e.chain, err = upstream.ParseChain(e.up.URL, fastUpstream)
	if err != nil {
		t.Fatal(err)
	}
	e.vf = sumdb.New(sumdb.Config{Name: e.db.Name, Key: e.db.VerifierKey, URL: e.db.URL}, e.st,
		sumdb.Options{State: e.md, NoSum: private, Upstream: fastUpstream})
	opts.Store, opts.Catalog, opts.Chain, opts.Verifier = e.st, e.md, e.chain, e.vf
	e.m = mirror.New(opts)
	return e
}

// mirrorOn returns another Mirror over e's store and checksum database,
// fetching from chain.
func (e *env) mirrorOn(chain *upstream.Chain, opts mirror.Options) *mirror.Mirror {
	opts.Store, opts.Catalog, opts.Chain, opts.Verifier = e.st, e.md, chain, e.vf
	return mirror.New(opts)
}

// publish makes b available upstream and records it in the database.
func (e *env) publish(bs ...*modtest.Built) {
	for _, b := range bs {
		e.up.Add(b)
		if !strings.HasPrefix(b.Path, private) {
			e.db.Add(b)
		}
	}
}

// stored returns the names the store holds for path's versions.
func (e *env) stored(path string) []string {
	e.t.Helper()
	ep, err := module.EscapePath(path)
	if err != nil {
		e.t.Fatal(err)
	}
	names, err := e.st.List(context.Background(), "mod/"+ep+"/@v")
	if err != nil {
		e.t.Fatal(err)
	}
	return names
}

func (e *env) count(path, vers, ext string) int {
	ep, _ := module.EscapePath(path)
	ev, _ := module.EscapeVersion(vers)
	return e.up.Count("/" + ep + "/@v/" + ev + ext)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func build(t *testing.T, path, vers string, files ...string) *modtest.Built {
	t.Helper()
	m := modtest.Module{Path: path, Version: vers, Files: map[string]string{
		"go.mod": "module " + path + "\n\ngo 1.21\n",
		"m.go":   "package m\n\nconst V = \"" + vers + "\"\n",
	}}
	for i := 0; i+1 < len(files); i += 2 {
		m.Files[files[i]] = files[i+1]
	}
	return modtest.MustBuild(t, m)
}

func readAll(t *testing.T, obj store.Object) []byte {
	t.Helper()
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func parseInfo(t *testing.T, data []byte) (string, time.Time) {
	t.Helper()
	var inf struct {
		Version string
		Time    time.Time
	}
	if err := json.Unmarshal(data, &inf); err != nil {
		t.Fatalf("bad .info %q: %v", data, err)
	}
	return inf.Version, inf.Time
}

// countingStore counts Open calls.
type countingStore struct {
	store.Store
	opens atomic.Int32
}

func (c *countingStore) Open(ctx context.Context, key string) (store.Object, error) {
	c.opens.Add(1)
	return c.Store.Open(ctx, key)
}

// TestFastPathsAskBeforeUse: Cached and HeldZip ask allow before they
// open anything or record a use, so a request refused there (a protected
// module without a token, left to the handler) keeps no version from
// prune; the control, allowed, records the use.
func TestFastPathsAskBeforeUse(t *testing.T) {
	d, err := store.OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &countingStore{Store: d}
	e := newEnv(t, st, mirror.Options{})
	ctx := ctxFor(t)
	b := build(t, "example.com/Hello", "v1.0.0")
	e.publish(b)
	if _, _, err := e.m.Info(ctx, b.Path, b.Version); err != nil {
		t.Fatal(err)
	}
	obj, _, err := e.m.Zip(ctx, b.Path, b.Version)
	if err != nil {
		t.Fatal(err)
	}
	obj.Close()
	if err := e.m.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	const info, zip = "/example.com/!hello/@v/v1.0.0.info", "/example.com/!hello/@v/v1.0.0.zip"
	var asked []string
	refuse := func(p string) bool { asked = append(asked, p); return false }
	opens := st.opens.Load()
	if _, ok := e.m.Cached(info, refuse); ok {
		t.Error("Cached answered a refused module")
	}
	if _, ok := e.m.HeldZip(ctx, zip, refuse); ok {
		t.Error("HeldZip answered a refused module")
	}
	if !slices.Equal(asked, []string{b.Path, b.Path}) {
		t.Errorf("allow was asked %q, want the module path twice", asked)
	}
	if n := st.opens.Load() - opens; n != 0 {
		t.Errorf("a refused HeldZip opened %d objects", n)
	}
	if u := e.m.Used(); len(u) != 0 {
		t.Errorf("refused requests recorded uses: %v", u)
	}
	allow := func(string) bool { return true }
	if _, ok := e.m.Cached(info, allow); !ok {
		t.Error("Cached refused an allowed module")
	}
	if held, ok := e.m.HeldZip(ctx, zip, allow); !ok {
		t.Error("HeldZip refused an allowed module")
	} else {
		held.Close()
	}
	if u := e.m.Used(); !slices.Equal(u, []string{b.Path + "@" + b.Version}) {
		t.Errorf("allowed requests recorded %v, want the version", u)
	}
}

func TestFillOnceThenHit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		disk  bool
		cache int
	}{{"memory store", false, 0}, {"memory store, no memory cache", false, -1}, {"disk store", true, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			var st store.Store
			if tc.disk {
				d, err := store.OpenDisk(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				st = d
			}
			e := newEnv(t, st, mirror.Options{MemoryCache: tc.cache})
			ctx := ctxFor(t)
			b := build(t, "example.com/Hello", "v1.0.0")
			e.publish(b)

			data, hit, err := e.m.Info(ctx, b.Path, b.Version)
			if err != nil || hit {
				t.Fatalf("first Info = hit %v, %v; want a miss that fills", hit, err)
			}
			if v, tm := parseInfo(t, data); v != b.Version || !tm.Equal(b.Time) {
				t.Errorf("Info = %s %v, want %s %v", v, tm, b.Version, b.Time)
			}
			if e.count(b.Path, b.Version, ".info") != 1 || e.count(b.Path, b.Version, ".mod") != 1 {
				t.Errorf("filling Info asked .info %d times and .mod %d times, want once each",
					e.count(b.Path, b.Version, ".info"), e.count(b.Path, b.Version, ".mod"))
			}
			data2, hit, err := e.m.Info(ctx, b.Path, b.Version)
			if err != nil || !hit || !bytes.Equal(data2, data) {
				t.Errorf("second Info = hit %v, %v, same bytes %v; want an identical hit", hit, err, bytes.Equal(data2, data))
			}

			mod, hit, err := e.m.Mod(ctx, b.Path, b.Version)
			if err != nil || !hit || !bytes.Equal(mod, b.Mod) {
				t.Errorf("Mod after Info = %q, hit %v, %v; want the built go.mod as a hit", mod, hit, err)
			}
			if e.count(b.Path, b.Version, ".info") != 1 || e.count(b.Path, b.Version, ".mod") != 1 {
				t.Errorf("hits asked the upstream again")
			}

			obj, hit, err := e.m.Zip(ctx, b.Path, b.Version)
			if err != nil || hit {
				t.Fatalf("first Zip = hit %v, %v; want a miss that fills", hit, err)
			}
			if got := readAll(t, obj); !bytes.Equal(got, b.Zip) {
				t.Errorf("Zip differs from the built zip")
			}
			// A zip filled into a local file is held for the hot path
			// at once, not only after its first hit.
			if held, ok := e.m.HeldZip(ctx, "/example.com/!hello/@v/v1.0.0.zip", func(string) bool { return true }); ok != tc.disk {
				t.Errorf("HeldZip after the fill = %v, want %v (a local file: %v)", ok, tc.disk, tc.disk)
			} else if ok {
				held.Close()
			}
			obj, hit, err = e.m.Zip(ctx, b.Path, b.Version)
			if err != nil || !hit {
				t.Fatalf("second Zip = hit %v, %v; want a hit", hit, err)
			}
			if obj.Size() != int64(len(b.Zip)) {
				t.Errorf("held zip Size() = %d, want %d", obj.Size(), len(b.Zip))
			}
			if got := readAll(t, obj); !bytes.Equal(got, b.Zip) {
				t.Errorf("held Zip differs from the built zip")
			}
			if n := e.count(b.Path, b.Version, ".zip"); n != 1 {
				t.Errorf("zip asked from the upstream %d times, want 1", n)
			}
			want := []string{"v1.0.0.info", "v1.0.0.mod", "v1.0.0.zip"}
			if got := e.stored(b.Path); !slices.Equal(got, want) {
				t.Errorf("store holds %v, want %v", got, want)
			}
			if n := e.m.FillsInProgress(); n != 0 {
				t.Errorf("FillsInProgress = %d after all fills returned", n)
			}

			// Hot .info files are answered from memory when the cache is on:
			// even with the stored copy gone, no fill happens.
			if err := e.st.Delete(ctx, "mod/example.com/!hello/@v/v1.0.0.info"); err != nil {
				t.Fatal(err)
			}
			data3, hit, err := e.m.Info(ctx, b.Path, b.Version)
			if err != nil || !bytes.Equal(data3, data) {
				t.Fatalf("Info after the stored copy was deleted = %q, %v", data3, err)
			}
			if cached := tc.cache >= 0; hit != cached {
				t.Errorf("Info with the stored copy deleted: hit = %v, want %v (memory cache on: %v)", hit, cached, cached)
			}
		})
	}
}

// An .info is stored re-encoded: the version and its time (in UTC), and
// nothing else the upstream said.
func TestInfoReencoded(t *testing.T) {
	e := newEnv(t, nil, mirror.Options{})
	b := build(t, "example.com/origin", "v1.0.0")
	served := *b
	served.Info = []byte(`{"Version":"v1.0.0","Time":"2024-01-02T04:04:05+01:00","Origin":{"VCS":"git","URL":"https://evil.example"},"Extra":1}`)
	e.db.Add(b)
	e.up.Add(&served)
	data, _, err := e.m.Info(ctxFor(t), b.Path, b.Version)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Version":"v1.0.0","Time":"2024-01-02T03:04:05Z"}` + "\n"
	if string(data) != want {
		t.Errorf("Info = %q, want %q", data, want)
	}
}

// A fill slower than FillTimeout is abandoned, upstream request included.
func TestFillTimeout(t *testing.T) {
	e := newEnv(t, nil, mirror.Options{FillTimeout: 200 * time.Millisecond})
	b := build(t, "example.com/glacial", "v1.0.0")
	e.publish(b)
	_, cancelled, _ := blockingZip(t, e, b)
	_, _, err := e.m.Zip(ctxFor(t), b.Path, b.Version)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Zip slower than the fill timeout = %v, want context.DeadlineExceeded", err)
	}
	wait(t, cancelled, "the upstream request to be cancelled at the fill timeout")
	if got := e.stored(b.Path); slices.Contains(got, "v1.0.0.zip") {
		t.Errorf("a timed-out fill stored a zip")
	}
}

func TestZipFillsInfoAndMod(t *testing.T) {
	e := newEnv(t, nil, mirror.Options{})
	ctx := ctxFor(t)
	b := build(t, "example.com/zipfirst", "v1.2.3")
	e.publish(b)
	obj, hit, err := e.m.Zip(ctx, b.Path, b.Version)
	if err != nil || hit {
		t.Fatalf("Zip = hit %v, %v", hit, err)
	}
	obj.Close()
	want := []string{"v1.2.3.info", "v1.2.3.mod", "v1.2.3.zip"}
	if got := e.stored(b.Path); !slices.Equal(got, want) {
		t.Errorf("after Zip the store holds %v, want %v", got, want)
	}
	e.up.Reset()
	if _, hit, err := e.m.Info(ctx, b.Path, b.Version); err != nil || !hit {
		t.Errorf("Info after Zip = hit %v, %v; want a hit", hit, err)
	}
	if _, hit, err := e.m.Mod(ctx, b.Path, b.Version); err != nil || !hit {
		t.Errorf("Mod after Zip = hit %v, %v; want a hit", hit, err)
	}
	if r := e.up.Requests(); len(r) != 0 {
		t.Errorf("upstream asked %v after everything was held", r)
	}
}

// TestZipIsRecordedInCatalog: a filled zip enters the catalog with its
// hashes, size, origin and verification; a version with only .info and
// .mod held does not.
func TestZipIsRecordedInCatalog(t *testing.T) {
	e := newEnv(t, nil, mirror.Options{})
	ctx := ctxFor(t)
	pub := build(t, "example.com/recorded", "v1.0.0")
	priv := build(t, private+"/recorded", "v1.0.0")
	metaOnly := build(t, "example.com/metaonly", "v1.0.0")
	e.publish(pub, priv, metaOnly)
	for _, b := range []*modtest.Built{pub, priv} {
		obj, _, err := e.m.Zip(ctx, b.Path, b.Version)
		if err != nil {
			t.Fatal(err)
		}
		obj.Close()
	}
	if _, _, err := e.m.Mod(ctx, metaOnly.Path, metaOnly.Version); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		b    *modtest.Built
		veri string
	}{{pub, meta.Verified}, {priv, meta.Pinned}} {
		rec, err := e.md.Version(ctx, tc.b.Path, tc.b.Version)
		if err != nil {
			t.Fatalf("%s: %v", tc.b.Path, err)
		}
		if rec.ZipHash != tc.b.ZipHash || rec.ModHash != tc.b.ModHash || rec.Size != int64(len(tc.b.Zip)) ||
			rec.Verification != tc.veri || !strings.HasPrefix(rec.Origin, e.up.URL) || rec.Added.IsZero() {
			t.Errorf("%s: recorded %+v; want hashes %s %s, size %d, verification %s, origin %s",
				tc.b.Path, rec, tc.b.ZipHash, tc.b.ModHash, len(tc.b.Zip), tc.veri, e.up.URL)
		}
	}
	if _, err := e.md.Version(ctx, metaOnly.Path, metaOnly.Version); !errors.Is(err, meta.ErrNotFound) {
		t.Errorf("a version without its zip is recorded: %v", err)
	}
}

// zipOf builds a zip file by hand, entry by entry.
func zipOf(t *testing.T, entries ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i+1 < len(entries); i += 2 {
		w, err := zw.Create(entries[i])
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(entries[i+1]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRefusals(t *testing.T) {
	const (
		pub  = "example.com/refused"
		priv = private + "/refused"
	)
	type call int
	const (
		callInfo call = iota
		callMod
		callZip
	)
	cases := []struct {
		name   string
		path   string
		tamper func(t *testing.T, b *modtest.Built) // changes what the upstream serves
		call   call
		want   error
		stored []string // what may be held afterwards
	}{
		{
			name: "info for another version", path: pub, call: callInfo, want: mirror.ErrBadUpstream,
			tamper: func(t *testing.T, b *modtest.Built) { b.Info = build(t, pub, "v1.0.1").Info },
		},
		{
			name: "info for another version, asked through Mod", path: pub, call: callMod, want: mirror.ErrBadUpstream,
			tamper: func(t *testing.T, b *modtest.Built) { b.Info = []byte(`{"Version":"v1.0.1"}`) },
		},
		{
			name: "info not JSON", path: pub, call: callInfo, want: mirror.ErrBadUpstream,
			tamper: func(t *testing.T, b *modtest.Built) { b.Info = []byte("<html>hello</html>") },
		},
		{
			name: "tampered go.mod", path: pub, call: callMod, want: sumdb.ErrChecksumMismatch,
			tamper: func(t *testing.T, b *modtest.Built) { b.Mod = append(b.Mod, "require evil.example.com v1.0.0\n"...) },
		},
		{
			name: "tampered go.mod, asked through Zip", path: pub, call: callZip, want: sumdb.ErrChecksumMismatch,
			tamper: func(t *testing.T, b *modtest.Built) { b.Mod = append(b.Mod, "// changed\n"...) },
		},
		{
			name: "tampered zip", path: pub, call: callZip, want: sumdb.ErrChecksumMismatch,
			tamper: func(t *testing.T, b *modtest.Built) {
				b.Zip = build(t, pub, "v1.0.0", "evil.go", "package m\n\nfunc init() { panic(1) }\n").Zip
			},
			stored: []string{"v1.0.0.info", "v1.0.0.mod"},
		},
		{
			name: "zip with a file outside the module", path: pub, call: callZip, want: mirror.ErrBadUpstream,
			tamper: func(t *testing.T, b *modtest.Built) {
				b.Zip = zipOf(t, pub+"@v1.0.0/go.mod", string(b.Mod), "example.com/other@v1.0.0/x.go", "package x\n")
			},
			stored: []string{"v1.0.0.info", "v1.0.0.mod"},
		},
		{
			name: "zip with duplicate names", path: pub, call: callZip, want: mirror.ErrBadUpstream,
			tamper: func(t *testing.T, b *modtest.Built) {
				b.Zip = zipOf(t, pub+"@v1.0.0/go.mod", string(b.Mod), pub+"@v1.0.0/a.go", "package m\n", pub+"@v1.0.0/a.go", "package m\n")
			},
			stored: []string{"v1.0.0.info", "v1.0.0.mod"},
		},
		{
			name: "not a zip", path: pub, call: callZip, want: mirror.ErrBadUpstream,
			tamper: func(t *testing.T, b *modtest.Built) { b.Zip = []byte("PK but not really") },
			stored: []string{"v1.0.0.info", "v1.0.0.mod"},
		},
		{
			name: "private: zip with a file outside the module", path: priv, call: callZip, want: mirror.ErrBadUpstream,
			tamper: func(t *testing.T, b *modtest.Built) {
				b.Zip = zipOf(t, priv+"@v1.0.0/go.mod", string(b.Mod), "example.com/other@v1.0.0/x.go", "package x\n")
			},
			stored: []string{"v1.0.0.info", "v1.0.0.mod"},
		},
		{
			name: "private: zip with duplicate names", path: priv, call: callZip, want: mirror.ErrBadUpstream,
			tamper: func(t *testing.T, b *modtest.Built) {
				b.Zip = zipOf(t, priv+"@v1.0.0/a.go", "package m\n", priv+"@v1.0.0/a.go", "package m\n")
			},
			stored: []string{"v1.0.0.info", "v1.0.0.mod"},
		},
		{
			name: "private: go.mod declares another module", path: priv, call: callMod, want: mirror.ErrBadUpstream,
			tamper: func(t *testing.T, b *modtest.Built) { b.Mod = []byte("module example.com/impostor\n") },
		},
		{
			name: "private: go.mod declares no module", path: priv, call: callInfo, want: mirror.ErrBadUpstream,
			tamper: func(t *testing.T, b *modtest.Built) { b.Mod = []byte("go 1.21\n") },
		},
		{
			name: "private: zip's go.mod differs from the .mod", path: priv, call: callZip, want: mirror.ErrBadUpstream,
			tamper: func(t *testing.T, b *modtest.Built) { b.Mod = []byte("module " + priv + "\n") },
			stored: []string{"v1.0.0.info", "v1.0.0.mod"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, mirror.Options{})
			ctx := ctxFor(t)
			good := build(t, tc.path, "v1.0.0")
			if !strings.HasPrefix(tc.path, private) {
				e.db.Add(good)
			}
			served := *good
			tc.tamper(t, &served)
			e.up.Add(&served)

			var err error
			switch tc.call {
			case callInfo:
				_, _, err = e.m.Info(ctx, tc.path, "v1.0.0")
			case callMod:
				_, _, err = e.m.Mod(ctx, tc.path, "v1.0.0")
			case callZip:
				var obj store.Object
				obj, _, err = e.m.Zip(ctx, tc.path, "v1.0.0")
				if obj != nil {
					obj.Close()
				}
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if errors.Is(err, mirror.ErrNotFound) {
				t.Errorf("a refusal must not look like not found: %v", err)
			}
			var bce *mirror.BadContentError
			if errors.Is(tc.want, mirror.ErrBadUpstream) {
				if !errors.As(err, &bce) {
					t.Fatalf("err %T is not a *BadContentError", err)
				}
				if bce.Module != tc.path || bce.Version != "v1.0.0" || bce.Source != e.up.URL || bce.Reason == "" {
					t.Errorf("BadContentError = %+v: want module, version, the upstream and a reason", *bce)
				}
			}
			if got := e.stored(tc.path); !slices.Equal(got, tc.stored) {
				t.Errorf("store holds %v after the refusal, want %v", got, tc.stored)
			}
			if ents, _ := os.ReadDir(e.st.TempDir()); len(ents) != 0 {
				t.Errorf("temporary files left behind: %v", ents)
			}
			// The refusal is not remembered: the upstream fixes it, and
			// the next request is filled. (A private module's wrong but
			// plausible go.mod, once held, stays: nothing can tell.)
			if tc.path == priv && tc.stored != nil {
				return
			}
			e.up.Add(good)
			if _, _, err := e.m.Zip(ctx, tc.path, "v1.0.0"); err != nil {
				t.Errorf("Zip after the upstream was fixed: %v", err)
			}
		})
	}
}

func TestUpstreamErrors(t *testing.T) {
	e := newEnv(t, nil, mirror.Options{})
	ctx := ctxFor(t)
	b := build(t, "example.com/broken", "v1.0.0")
	e.publish(b)
	fail := func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }

	e.up.Handle("/example.com/broken/@v/v1.0.0.info", fail)
	_, _, err := e.m.Info(ctx, b.Path, b.Version)
	var ue *upstream.Error
	if err == nil || errors.Is(err, mirror.ErrNotFound) || !errors.As(err, &ue) || ue.Status != http.StatusInternalServerError {
		t.Errorf("Info from an upstream answering 500 = %v; want an *upstream.Error with status 500, not ErrNotFound", err)
	}
	e.up.Handle("/example.com/broken/@v/v1.0.0.info", nil)

	e.up.Handle("/example.com/broken/@v/v1.0.0.zip", fail)
	_, _, err = e.m.Zip(ctx, b.Path, b.Version)
	if err == nil || errors.Is(err, mirror.ErrNotFound) || !errors.As(err, &ue) || ue.Status != http.StatusInternalServerError {
		t.Errorf("Zip from an upstream answering 500 = %v; want an *upstream.Error with status 500", err)
	}
	if got := e.stored(b.Path); slices.Contains(got, "v1.0.0.zip") {
		t.Errorf("a zip was stored from a failed request: %v", got)
	}
	e.up.Handle("/example.com/broken/@v/v1.0.0.zip", nil)
	if _, _, err := e.m.Zip(ctx, b.Path, b.Version); err != nil {
		t.Errorf("Zip after the upstream recovered: %v", err)
	}

	for _, tc := range []struct{ name, path, vers string }{
		{"unknown module", "example.com/nowhere", "v1.0.0"},
		{"unknown version", b.Path, "v9.9.9"},
	} {
		_, _, err := e.m.Info(ctx, tc.path, tc.vers)
		if !errors.Is(err, upstream.ErrNotFound) {
			t.Errorf("%s: Info = %v, want upstream.ErrNotFound", tc.name, err)
		}
		_, _, err = e.m.Mod(ctx, tc.path, tc.vers)
		if !errors.Is(err, upstream.ErrNotFound) {
			t.Errorf("%s: Mod = %v, want upstream.ErrNotFound", tc.name, err)
		}
		_, _, err = e.m.Zip(ctx, tc.path, tc.vers)
		if !errors.Is(err, upstream.ErrNotFound) {
			t.Errorf("%s: Zip = %v, want upstream.ErrNotFound", tc.name, err)
		}
		if got := e.stored(tc.path); len(got) != 0 && tc.path != b.Path {
			t.Errorf("%s: store holds %v", tc.name, got)
		}
	}
}

// A version the upstream has but the checksum database does not know is
// refused, and the refusal is not "not found": that would send the go
// command on to its next GOPROXY entry (README: "the checksum database ...
// has no record: 502").
func TestNotInChecksumDatabase(t *testing.T) {
	e := newEnv(t, nil, mirror.Options{})
	ctx := ctxFor(t)
	b := build(t, "example.com/unsummed", "v1.0.0")
	e.up.Add(b) // not in the database
	_, _, err := e.m.Info(ctx, b.Path, b.Version)
	if !errors.Is(err, sumdb.ErrNotFound) {
		t.Fatalf("Info of a version the database does not know = %v, want sumdb.ErrNotFound", err)
	}
	if got := e.stored(b.Path); len(got) != 0 {
		t.Errorf("store holds %v", got)
	}
	if errors.Is(err, mirror.ErrNotFound) {
		t.Errorf("Info of a version the database does not know matches mirror.ErrNotFound (upstream.ErrNotFound): %v", err)
	}
}

func TestConcurrentFillsCollapse(t *testing.T) {
	e := newEnv(t, nil, mirror.Options{})
	ctx := ctxFor(t)
	b := build(t, "example.com/popular", "v1.0.0")
	e.publish(b)
	e.up.Handle("/example.com/popular/@v/v1.0.0.zip", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond) // let the callers pile up
		w.Write(b.Zip)
	})
	const n = 30
	start := make(chan struct{})
	results := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			obj, _, err := e.m.Zip(ctx, b.Path, b.Version)
			if err != nil {
				errs[i] = err
				return
			}
			defer obj.Close()
			results[i], errs[i] = io.ReadAll(obj)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("caller %d: %v", i, errs[i])
		} else if !bytes.Equal(results[i], b.Zip) {
			t.Errorf("caller %d got different bytes", i)
		}
	}
	for _, ext := range []string{".zip", ".info", ".mod"} {
		if c := e.count(b.Path, b.Version, ext); c != 1 {
			t.Errorf("%d upstream requests for %s, want 1", c, ext)
		}
	}
}

// blockingZip makes the upstream's zip of b wait: it reports each request
// on arrived, then serves the zip once release is called, or reports on
// cancelled if the request's context ends first.
func blockingZip(t *testing.T, e *env, b *modtest.Built) (arrived, cancelled chan struct{}, release func()) {
	arrived, cancelled = make(chan struct{}, 10), make(chan struct{}, 10)
	released := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(released) }) }
	t.Cleanup(release)
	ep, _ := module.EscapePath(b.Path)
	e.up.Handle("/"+ep+"/@v/"+b.Version+".zip", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-released:
			w.Write(b.Zip)
		case <-r.Context().Done():
			cancelled <- struct{}{}
		}
	})
	return arrived, cancelled, release
}

// wait waits for a signal on c, failing the test after a generous bound.
func wait(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("gave up waiting: %s", what)
	}
}

func TestCancelOnlyCaller(t *testing.T) {
	e := newEnv(t, nil, mirror.Options{})
	b := build(t, "example.com/slow", "v1.0.0")
	e.publish(b)
	arrived, cancelled, _ := blockingZip(t, e, b)

	ctx, cancel := context.WithCancel(ctxFor(t))
	errc := make(chan error, 1)
	go func() {
		_, _, err := e.m.Zip(ctx, b.Path, b.Version)
		errc <- err
	}()
	wait(t, arrived, "the zip request to reach the upstream")
	cancel()
	if err := <-errc; err != context.Canceled {
		t.Errorf("Zip whose context was cancelled = %v, want exactly ctx.Err() (%v)", err, context.Canceled)
	}
	wait(t, cancelled, "the upstream request to be cancelled after its only caller left")
	if got := e.stored(b.Path); slices.Contains(got, "v1.0.0.zip") {
		t.Errorf("a cancelled fill stored a zip: %v", got)
	}
	for i := 0; e.m.FillsInProgress() != 0; i++ {
		if i > 1000 {
			t.Fatal("the cancelled fill never ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.up.Handle("/example.com/slow/@v/v1.0.0.zip", nil)
	if _, _, err := e.m.Zip(ctxFor(t), b.Path, b.Version); err != nil {
		t.Errorf("Zip after a cancelled fill: %v", err)
	}
}

func TestCancelOneOfTwoCallers(t *testing.T) {
	e := newEnv(t, nil, mirror.Options{})
	b := build(t, "example.com/shared", "v1.0.0")
	e.publish(b)
	arrived, cancelled, release := blockingZip(t, e, b)

	type result struct {
		data []byte
		err  error
	}
	zip := func(ctx context.Context, out chan<- result) {
		obj, _, err := e.m.Zip(ctx, b.Path, b.Version)
		if err != nil {
			out <- result{nil, err}
			return
		}
		defer obj.Close()
		data, err := io.ReadAll(obj)
		out <- result{data, err}
	}
	patient := make(chan result, 1)
	go zip(ctxFor(t), patient)
	wait(t, arrived, "the zip request to reach the upstream")

	ctx, cancel := context.WithCancel(ctxFor(t))
	impatient := make(chan result, 1)
	go zip(ctx, impatient)
	for i := 0; e.m.ZipWaiters(b.Path, b.Version) != 2; i++ {
		if i > 1000 {
			t.Fatal("the second caller never joined the fill")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if r := <-impatient; r.err != context.Canceled {
		t.Errorf("the caller that left got %v, want context.Canceled", r.err)
	}
	if n := e.m.ZipWaiters(b.Path, b.Version); n != 1 {
		t.Errorf("%d waiters after one left, want 1", n)
	}
	select {
	case <-cancelled:
		t.Fatal("the upstream request was cancelled while a caller still waited")
	default:
	}
	release()
	r := <-patient
	if r.err != nil || !bytes.Equal(r.data, b.Zip) {
		t.Errorf("the caller that stayed got %v (bytes equal: %v), want the zip", r.err, bytes.Equal(r.data, b.Zip))
	}
	if c := e.count(b.Path, b.Version, ".zip"); c != 1 {
		t.Errorf("%d upstream zip requests, want 1", c)
	}
}

func listOf(vs ...string) string {
	if len(vs) == 0 {
		return ""
	}
	return strings.Join(vs, "\n") + "\n"
}

func TestList(t *testing.T) {
	const path = "example.com/listed"
	t.Run("merges held and upstream versions, sorted, without pseudo-versions", func(t *testing.T) {
		e := newEnv(t, nil, mirror.Options{})
		ctx := ctxFor(t)
		var mods []*modtest.Built
		for _, v := range []string{"v1.0.0", "v1.10.0", "v1.2.0", "v1.9.0-rc.1", "v1.2.0-alpha", pseudo1, pseudo2} {
			mods = append(mods, build(t, path, v))
		}
		e.publish(mods...)
		e.up.SetListPseudo(true)
		// Hold v1.0.0 and a pseudo-version, then the upstream forgets v1.0.0.
		for _, v := range []string{"v1.0.0", pseudo2} {
			if _, _, err := e.m.Zip(ctx, path, v); err != nil {
				t.Fatal(err)
			}
		}
		e.up.Remove(path, "v1.0.0")
		data, err := e.m.List(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		want := listOf("v1.0.0", "v1.2.0-alpha", "v1.2.0", "v1.9.0-rc.1", "v1.10.0")
		if string(data) != want {
			t.Errorf("List =\n%s\nwant\n%s", data, want)
		}
		data, err = e.m.List(ctx, path)
		if err != nil || string(data) != want {
			t.Errorf("second List = %q, %v", data, err)
		}
		if c := e.up.Count("/" + path + "/@v/list"); c != 1 {
			t.Errorf("two Lists within the TTL asked the upstream %d times, want 1", c)
		}
		if e.m.ListRefreshing(path) {
			t.Errorf("a List within the TTL started a background refresh")
		}
	})

	t.Run("stale list served at once and refreshed in the background", func(t *testing.T) {
		e := newEnv(t, nil, mirror.Options{ListTTL: time.Millisecond})
		ctx := ctxFor(t)
		e.publish(build(t, path, "v1.0.0"))
		if data, err := e.m.List(ctx, path); err != nil || string(data) != listOf("v1.0.0") {
			t.Fatalf("List = %q, %v", data, err)
		}
		e.publish(build(t, path, "v1.1.0"))
		time.Sleep(2 * time.Millisecond) // let the TTL pass
		data, err := e.m.List(ctx, path)
		if err != nil || string(data) != listOf("v1.0.0") {
			t.Errorf("List after the TTL = %q, %v; want the stale answer", data, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			data, err := e.m.List(ctx, path)
			if err == nil && string(data) == listOf("v1.0.0", "v1.1.0") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the background refresh never showed v1.1.0; List = %q, %v", data, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if c := e.up.Count("/" + path + "/@v/list"); c < 2 {
			t.Errorf("upstream list asked %d times, want a refresh", c)
		}
	})

	t.Run("upstream down: cached list and held versions", func(t *testing.T) {
		e := newEnv(t, nil, mirror.Options{ListTTL: time.Millisecond})
		ctx := ctxFor(t)
		e.publish(build(t, path, "v1.0.0"), build(t, path, "v1.1.0"), build(t, "example.com/heldonly", "v0.1.0"))
		if _, err := e.m.List(ctx, path); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.m.Zip(ctx, "example.com/heldonly", "v0.1.0"); err != nil {
			t.Fatal(err)
		}
		e.up.Close()
		time.Sleep(2 * time.Millisecond)
		for i := range 3 {
			data, err := e.m.List(ctx, path)
			if err != nil || string(data) != listOf("v1.0.0", "v1.1.0") {
				t.Errorf("List %d with the upstream down = %q, %v; want the cached list", i, data, err)
			}
		}
		data, err := e.m.List(ctx, "example.com/heldonly")
		if err != nil || string(data) != listOf("v0.1.0") {
			t.Errorf("List of a held module never listed, upstream down = %q, %v; want the held version", data, err)
		}
		if _, err := e.m.List(ctx, "example.com/never"); err == nil {
			t.Errorf("List of an unknown module with the upstream down succeeded")
		}
	})

	t.Run("not found, remembered for the TTL", func(t *testing.T) {
		e := newEnv(t, nil, mirror.Options{})
		for i := range 2 {
			_, err := e.m.List(ctxFor(t), "example.com/nonexistent")
			if !errors.Is(err, mirror.ErrNotFound) {
				t.Errorf("List %d of an unknown module = %v, want ErrNotFound", i, err)
			}
		}
		if c := e.up.Count("/example.com/nonexistent/@v/list"); c != 1 {
			t.Errorf("two Lists of an unknown module within the TTL asked the upstream %d times, want 1", c)
		}
	})

	t.Run("survives a restart with the upstream down", func(t *testing.T) {
		dir := t.TempDir()
		st, err := store.OpenDisk(dir)
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, st, mirror.Options{})
		ctx := ctxFor(t)
		e.publish(build(t, path, "v1.0.0"), build(t, path, "v2.0.0+incompatible"))
		want := listOf("v1.0.0", "v2.0.0+incompatible")
		if data, err := e.m.List(ctx, path); err != nil || string(data) != want {
			t.Fatalf("List = %q, %v", data, err)
		}
		e.up.Close()
		st2, err := store.OpenDisk(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, ttl := range []time.Duration{0, time.Nanosecond} {
			chain, err := upstream.ParseChain(e.up.URL, fastUpstream)
			if err != nil {
				t.Fatal(err)
			}
			m2 := mirror.New(mirror.Options{Store: st2, Catalog: e.md, Chain: chain, Verifier: e.vf, ListTTL: ttl})
			data, err := m2.List(ctx, path)
			if err != nil || string(data) != want {
				t.Errorf("List after a restart (ttl %v) with the upstream down = %q, %v; want %q", ttl, data, err, want)
			}
		}
	})
}

func TestLatest(t *testing.T) {
	const path = "example.com/latest"
	cases := []struct {
		name       string
		versions   []string
		listPseudo bool
		latest     bool
		want       string // "" means ErrNotFound
	}{
		{"highest release", []string{"v1.0.0", "v1.2.0", "v1.10.0"}, false, false, "v1.10.0"},
		{"release over a newer pre-release", []string{"v1.0.0", "v1.1.0-beta"}, false, false, "v1.0.0"},
		{"highest pre-release when no release", []string{"v1.1.0-alpha", "v1.1.0-beta", "v1.0.0-rc.1"}, false, false, "v1.1.0-beta"},
		{"release over a pseudo-version", []string{"v1.0.0", pseudo2}, true, true, "v1.0.0"},
		{"upstream @latest when nothing is tagged", []string{pseudo1}, false, true, pseudo1},
		{"newest listed pseudo-version without @latest", []string{pseudo1, pseudo2}, true, false, pseudo2},
		{"no versions anywhere", []string{pseudo1}, false, false, ""},
		{"unknown module", nil, false, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, mirror.Options{})
			ctx := ctxFor(t)
			for _, v := range tc.versions {
				e.publish(build(t, path, v))
			}
			e.up.SetListPseudo(tc.listPseudo)
			e.up.SetLatest(tc.latest)
			data, err := e.m.Latest(ctx, path)
			if tc.want == "" {
				if !errors.Is(err, mirror.ErrNotFound) {
					t.Errorf("Latest = %q, %v; want ErrNotFound", data, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Latest: %v", err)
			}
			if v, _ := parseInfo(t, data); v != tc.want {
				t.Errorf("Latest = %s, want %s", v, tc.want)
			}
		})
	}
}

// TestLatestFromUpstreamSurvivesItsFailure: an upstream @latest answer
// (a module with no tags) is kept, and served when the upstream fails.
func TestLatestFromUpstreamSurvivesItsFailure(t *testing.T) {
	const path = "example.com/untagged"
	e := newEnv(t, nil, mirror.Options{ListTTL: time.Nanosecond})
	ctx := ctxFor(t)
	e.publish(build(t, path, pseudo1))
	e.up.SetLatest(true)
	first, err := e.m.Latest(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	e.up.Handle("/"+path+"/@latest", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	again, err := e.m.Latest(ctx, path)
	if err != nil || string(again) != string(first) {
		t.Errorf("Latest with the upstream failing = %q, %v; want the last answer %q", again, err, first)
	}
}

func TestQuery(t *testing.T) {
	const path = "example.com/query"
	e := newEnv(t, nil, mirror.Options{})
	ctx := ctxFor(t)
	e.publish(build(t, path, pseudo1), build(t, path, "v1.0.0"))
	e.up.SetBranch(path, "main", pseudo1)

	data, err := e.m.Query(ctx, path, "main")
	if err != nil {
		t.Fatalf("Query(main): %v", err)
	}
	if v, _ := parseInfo(t, data); v != pseudo1 {
		t.Errorf("Query(main) = %s, want %s", v, pseudo1)
	}
	if got := e.stored(path); len(got) != 0 {
		t.Errorf("a query answer was stored: %v", got)
	}

	for _, tc := range []struct{ name, body string }{
		{"non-canonical version", `{"Version":"v1.0"}`},
		{"version of another major", `{"Version":"v2.0.0"}`},
		{"no version", `{"Time":"2024-01-02T03:04:05Z"}`},
		{"not JSON", `<html></html>`},
	} {
		e.up.Handle("/"+path+"/@v/dev.info", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tc.body) })
		_, err := e.m.Query(ctx, path, "dev")
		if !errors.Is(err, mirror.ErrBadUpstream) {
			t.Errorf("%s: Query = %v, want ErrBadUpstream", tc.name, err)
		}
	}
	if _, err := e.m.Query(ctx, path, "nosuchbranch"); !errors.Is(err, mirror.ErrNotFound) {
		t.Errorf("Query of an unknown branch = %v, want ErrNotFound", err)
	}
}

func TestChainOff(t *testing.T) {
	e := newEnv(t, nil, mirror.Options{})
	ctx := ctxFor(t)
	const path = "example.com/offline"
	b := build(t, path, "v1.0.0")
	e.publish(b, build(t, path, "v1.1.0"))
	if _, _, err := e.m.Zip(ctx, path, "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.m.Info(ctx, path, "v1.1.0"); err != nil { // .info and .mod only
		t.Fatal(err)
	}
	off, err := upstream.ParseChain("off", fastUpstream)
	if err != nil {
		t.Fatal(err)
	}
	e.up.Reset()
	m := e.mirrorOn(off, mirror.Options{})

	if data, hit, err := m.Info(ctx, path, "v1.0.0"); err != nil || !hit {
		t.Errorf("held Info with fetching off = %q, hit %v, %v", data, hit, err)
	}
	if data, hit, err := m.Mod(ctx, path, "v1.0.0"); err != nil || !hit || !bytes.Equal(data, b.Mod) {
		t.Errorf("held Mod with fetching off = %q, hit %v, %v", data, hit, err)
	}
	if obj, hit, err := m.Zip(ctx, path, "v1.0.0"); err != nil || !hit {
		t.Errorf("held Zip with fetching off: hit %v, %v", hit, err)
	} else if !bytes.Equal(readAll(t, obj), b.Zip) {
		t.Errorf("held Zip with fetching off differs")
	}
	if data, err := m.List(ctx, path); err != nil || string(data) != listOf("v1.0.0") {
		t.Errorf("List with fetching off = %q, %v; want the held version", data, err)
	}
	if data, err := m.Latest(ctx, path); err != nil {
		t.Errorf("Latest with fetching off: %v", err)
	} else if v, _ := parseInfo(t, data); v != "v1.0.0" {
		t.Errorf("Latest with fetching off = %s, want v1.0.0", v)
	}

	_, _, err = m.Zip(ctx, path, "v1.1.0")
	if !errors.Is(err, upstream.ErrNotFound) {
		t.Errorf("Zip of a version whose zip is not held, fetching off = %v, want ErrNotFound", err)
	}
	_, _, err = m.Info(ctx, path, "v1.2.0")
	if !errors.Is(err, upstream.ErrNotFound) {
		t.Errorf("Info of a version not held, fetching off = %v, want ErrNotFound", err)
	}
	if _, err := m.List(ctx, "example.com/elsewhere"); !errors.Is(err, upstream.ErrNotFound) {
		t.Errorf("List of a module not held, fetching off = %v, want ErrNotFound", err)
	}
	if _, err := m.Latest(ctx, "example.com/elsewhere"); !errors.Is(err, upstream.ErrNotFound) {
		t.Errorf("Latest of a module not held, fetching off = %v, want ErrNotFound", err)
	}
	if _, err := m.Query(ctx, path, "main"); !errors.Is(err, upstream.ErrNotFound) {
		t.Errorf("Query with fetching off = %v, want ErrNotFound", err)
	}
	if r := e.up.Requests(); len(r) != 0 {
		t.Errorf("a Mirror with fetching off asked the upstream: %v", r)
	}
}

// With no Verifier every module is checked as a private one: its go.mod
// must name it, and nothing asks a checksum database.
func TestNoVerifier(t *testing.T) {
	e := newEnv(t, nil, mirror.Options{})
	ctx := ctxFor(t)
	m := mirror.New(mirror.Options{Store: e.st, Catalog: e.md, Chain: e.chain})
	good := build(t, "example.com/unverified", "v1.0.0")
	e.up.Add(good)
	if _, _, err := m.Zip(ctx, good.Path, good.Version); err != nil {
		t.Errorf("Zip without a checksum database: %v", err)
	}
	bad := *build(t, "example.com/impostor", "v1.0.0")
	bad.Mod = []byte("module example.com/other\n")
	e.up.Add(&bad)
	if _, _, err := m.Mod(ctx, bad.Path, bad.Version); !errors.Is(err, mirror.ErrBadUpstream) {
		t.Errorf("Mod naming another module, no checksum database = %v, want ErrBadUpstream", err)
	}
	if r := e.db.Requests(); len(r) != 0 {
		t.Errorf("the checksum database was asked: %v", r)
	}
}
