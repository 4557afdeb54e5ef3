package sumdb

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	xsumdb "golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agora-mirror/agora/internal/modtest"
	"github.com/agora-mirror/agora/internal/store"
	"github.com/agora-mirror/agora/internal/upstream"
)

const dbName = "sum.agora.test"

// fastUpstream makes failing requests fail at once: one attempt, no backoff.
var fastUpstream = upstream.Options{Attempts: 1, Timeout: 10 * time.Second}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func buildMod(t *testing.T, path, version, greeting string) *modtest.Built {
	t.Helper()
	return modtest.MustBuild(t, modtest.Module{
		Path:    path,
		Version: version,
		Files: map[string]string{
			"go.mod": "module " + path + "\n\ngo 1.21\n",
			"m.go":   "package m\n\nconst Greeting = \"" + greeting + "\"\n",
		},
	})
}

// localServer serves h on 127.0.0.1 until the test ends.
func localServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// requestsFor returns the database requests whose path contains s.
func requestsFor(db *modtest.SumDB, s string) []string {
	var out []string
	for _, r := range db.Requests() {
		if strings.Contains(r, s) {
			out = append(out, r)
		}
	}
	return out
}

func generateKey(t *testing.T, name string) (skey, vkey string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	return skey, vkey
}

func TestParseGOSUMDB(t *testing.T) {
	_, vkey := generateKey(t, dbName)

	t.Run("off", func(t *testing.T) {
		for _, s := range []string{"off", "  off  "} {
			if _, err := ParseGOSUMDB(s); !errors.Is(err, ErrOff) {
				t.Errorf("ParseGOSUMDB(%q) = %v, want ErrOff", s, err)
			}
		}
	})

	t.Run("known names resolve to their keys", func(t *testing.T) {
		if len(knownKeys) == 0 {
			t.Fatal("knownKeys is empty")
		}
		for name, key := range knownKeys {
			c, err := ParseGOSUMDB(name)
			if err != nil {
				t.Fatalf("ParseGOSUMDB(%q): %v", name, err)
			}
			want := Config{Name: name, Key: key}
			if c != want {
				t.Errorf("ParseGOSUMDB(%q) = %+v, want %+v", name, c, want)
			}
			if c.String() != key {
				t.Errorf("String() = %q, want %q", c.String(), key)
			}
		}
	})

	good := []struct {
		in   string
		want Config
		str  string
	}{
		{vkey, Config{Name: dbName, Key: vkey}, vkey},
		{vkey + " http://127.0.0.1:1", Config{Name: dbName, Key: vkey, URL: "http://127.0.0.1:1"}, vkey + " http://127.0.0.1:1"},
		{"  " + vkey + "\thttps://127.0.0.1:1/db/ ", Config{Name: dbName, Key: vkey, URL: "https://127.0.0.1:1/db"}, vkey + " https://127.0.0.1:1/db"},
	}
	for _, tc := range good {
		c, err := ParseGOSUMDB(tc.in)
		if err != nil {
			t.Errorf("ParseGOSUMDB(%q): %v", tc.in, err)
			continue
		}
		if c != tc.want {
			t.Errorf("ParseGOSUMDB(%q) = %+v, want %+v", tc.in, c, tc.want)
		}
		if c.String() != tc.str {
			t.Errorf("ParseGOSUMDB(%q).String() = %q, want %q", tc.in, c.String(), tc.str)
		}
	}

	_, dotdotKey := generateKey(t, "sum.agora.test/../x")
	_, dotKey := generateKey(t, "sum.agora.test/./x")
	bad := []struct{ name, in string }{
		{"empty", ""},
		{"blank", "   "},
		{"unknown bare name", dbName},
		{"bad key", dbName + "+deadbeef+AAAA"},
		{"key without hash", dbName + "+x"},
		{"URL without scheme", vkey + " 127.0.0.1:1"},
		{"URL with another scheme", vkey + " ftp://127.0.0.1:1"},
		{"URL without host", vkey + " http://"},
		{"unparsable URL", vkey + " http://[::1"},
		{"three fields", vkey + " http://127.0.0.1:1 extra"},
		{"name with ..", dotdotKey},
		{"name with .", dotKey},
	}
	for _, tc := range bad {
		c, err := ParseGOSUMDB(tc.in)
		if err == nil || errors.Is(err, ErrOff) {
			t.Errorf("%s: ParseGOSUMDB(%q) = %+v, %v; want an error", tc.name, tc.in, c, err)
		}
	}
}

// verifyEnv is a database reached one way or another, and a DB using it.
type verifyEnv struct {
	db *modtest.SumDB
	d  *DB
	st store.Store
}

func newDirect(t *testing.T, o Options) verifyEnv {
	db := modtest.NewSumDB(t, dbName)
	st := store.NewMemory(t.TempDir())
	o.Upstream = fastUpstream
	if o.State == nil {
		o.State = modtest.Meta(t)
	}
	d := New(Config{Name: db.Name, Key: db.VerifierKey, URL: db.URL}, st, o)
	return verifyEnv{db, d, st}
}

func newThroughProxy(t *testing.T, o Options) verifyEnv {
	db := modtest.NewSumDB(t, dbName)
	up := modtest.NewUpstream(t)
	up.ServeSumDB(db)
	chain, err := upstream.ParseChain(up.URL, fastUpstream)
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory(t.TempDir())
	o.Chain = chain
	o.Upstream = fastUpstream
	if o.State == nil {
		o.State = modtest.Meta(t)
	}
	d := New(Config{Name: db.Name, Key: db.VerifierKey}, st, o)
	return verifyEnv{db, d, st}
}

func TestVerify(t *testing.T) {
	setups := []struct {
		name string
		new  func(*testing.T, Options) verifyEnv
	}{
		{"direct", newDirect},
		{"through upstream proxy", newThroughProxy},
	}
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			env := s.new(t, Options{NoSum: "private.example.com"})
			ctx := testCtx(t)
			good := buildMod(t, "example.com/good", "v1.0.0", "good")
			other := buildMod(t, "example.com/other", "v1.0.0", "other")
			env.db.Add(good)

			if err := env.d.Verify(ctx, good.Path, good.Version, good.ZipHash, good.ModHash); err != nil {
				t.Fatalf("Verify with the database's hashes: %v", err)
			}
			if n := len(requestsFor(env.db, "/lookup/")); n != 1 {
				t.Errorf("database saw %d lookups, want 1 (the go.mod and zip lines share a record)", n)
			}

			mismatches := []struct {
				file                string
				zipHash, modHash    string
				wantGot, wantWanted string
			}{
				{"zip", other.ZipHash, good.ModHash, other.ZipHash, good.ZipHash},
				{"go.mod", good.ZipHash, other.ModHash, other.ModHash, good.ModHash},
				{"go.mod", "", other.ModHash, other.ModHash, good.ModHash},
				{"zip", other.ZipHash, "", other.ZipHash, good.ZipHash},
			}
			for _, m := range mismatches {
				err := env.d.Verify(ctx, good.Path, good.Version, m.zipHash, m.modHash)
				if !errors.Is(err, ErrChecksumMismatch) {
					t.Errorf("Verify with a wrong %s hash = %v, want ErrChecksumMismatch", m.file, err)
					continue
				}
				var ce *ChecksumError
				if !errors.As(err, &ce) {
					t.Fatalf("Verify error %T is not a *ChecksumError", err)
				}
				want := ChecksumError{Module: good.Path, Version: good.Version, File: m.file, Got: m.wantGot, Want: m.wantWanted}
				if *ce != want {
					t.Errorf("ChecksumError = %+v, want %+v", *ce, want)
				}
				if !strings.Contains(ce.Error(), m.wantGot) || !strings.Contains(ce.Error(), m.wantWanted) {
					t.Errorf("ChecksumError message %q does not name both hashes", ce.Error())
				}
			}

			// Both hashes empty: nothing to check, nothing asked.
			if err := env.d.Verify(ctx, "example.com/nothing", "v1.0.0", "", ""); err != nil {
				t.Errorf("Verify with no hashes = %v, want nil", err)
			}

			err := env.d.Verify(ctx, other.Path, other.Version, other.ZipHash, other.ModHash)
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("Verify of a module unknown to the database = %v, want ErrNotFound", err)
			}
			if errors.Is(err, ErrChecksumMismatch) || errors.Is(err, ErrSecurity) {
				t.Errorf("Verify of an unknown module = %v: must not be a mismatch or security error", err)
			}
			// "Not in the checksum database" is not "no upstream has it":
			// callers (mirror, server) treat upstream.ErrNotFound as a 404
			// that sends the go command on to its next GOPROXY entry.
			if errors.Is(err, upstream.ErrNotFound) {
				t.Errorf("Verify of a module unknown to the database matches upstream.ErrNotFound: %v", err)
			}
			if got := requestsFor(env.db, "example.com/nothing"); len(got) != 0 {
				t.Errorf("Verify with no hashes asked the database %v", got)
			}

			priv := buildMod(t, "private.example.com/secret", "v1.0.0", "secret")
			err = env.d.Verify(ctx, priv.Path, priv.Version, priv.ZipHash, priv.ModHash)
			if !errors.Is(err, ErrPrivate) {
				t.Errorf("Verify of a nosum module = %v, want ErrPrivate", err)
			}
			if got := requestsFor(env.db, "private.example.com"); len(got) != 0 {
				t.Errorf("the database was asked about a nosum module: %v", got)
			}
			if !env.d.Private("private.example.com/secret/sub") || env.d.Private("example.com/good") {
				t.Errorf("Private does not follow the nosum patterns")
			}
		})
	}
}

func TestVerifyOnlyGoModLine(t *testing.T) {
	env := newDirect(t, Options{})
	b := buildMod(t, "example.com/modonly", "v1.0.0", "x")
	env.db.SetHashes(b.Path, b.Version, "", b.ModHash)
	ctx := testCtx(t)
	if err := env.d.Verify(ctx, b.Path, b.Version, "", b.ModHash); err != nil {
		t.Fatalf("Verify of the go.mod alone: %v", err)
	}
	err := env.d.Verify(ctx, b.Path, b.Version, b.ZipHash, b.ModHash)
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrChecksumMismatch) {
		t.Errorf("Verify of a zip the record has no line for = %v, want ErrNotFound", err)
	}
}

func TestTreeHeadPersists(t *testing.T) {
	ctx := testCtx(t)
	skey, vkey := generateKey(t, dbName)
	a := buildMod(t, "example.com/a", "v1.0.0", "a")
	b := buildMod(t, "example.com/b", "v1.0.0", "b")
	gosumOf := func(mods ...*modtest.Built) func(string, string) ([]byte, error) {
		return func(path, vers string) ([]byte, error) {
			for _, m := range mods {
				if m.Path == path && m.Version == vers {
					return []byte(m.GoSum()), nil
				}
			}
			return nil, &fs.PathError{Op: "lookup", Path: path + "@" + vers, Err: fs.ErrNotExist}
		}
	}
	// Two logs signed with one key: the first records a, the second b.
	// Whoever has seen one and is then shown the other sees a fork.
	logA := localServer(t, xsumdb.NewServer(xsumdb.NewTestServer(skey, gosumOf(a, b))))
	logB := localServer(t, xsumdb.NewServer(xsumdb.NewTestServer(skey, gosumOf(a, b))))

	st := store.NewMemory(t.TempDir())
	md := modtest.Meta(t)
	cfgA := Config{Name: dbName, Key: vkey, URL: logA.URL}
	first := New(cfgA, st, Options{State: md, Upstream: fastUpstream})
	if err := first.Verify(ctx, a.Path, a.Version, a.ZipHash, a.ModHash); err != nil {
		t.Fatalf("Verify against the first log: %v", err)
	}
	latest, _, err := md.State(ctx, "sumdb "+dbName+" latest")
	if err != nil {
		t.Fatalf("the verified tree head is not in the metadata database: %v", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(latest, note.VerifierList(verifier))
	if err != nil {
		t.Fatalf("stored tree head is not a note signed by the database: %v", err)
	}
	tree, err := tlog.ParseTree([]byte(n.Text))
	if err != nil || tree.N != 1 {
		t.Fatalf("stored tree head = %+v, %v; want a tree of 1 record", tree, err)
	}

	// A restart with the same store, in front of the same log: still fine.
	again := New(cfgA, st, Options{State: md, Upstream: fastUpstream})
	if err := again.Verify(ctx, a.Path, a.Version, a.ZipHash, a.ModHash); err != nil {
		t.Fatalf("Verify after a restart against the same log: %v", err)
	}

	// A restart in front of the forked log, which recorded b first.
	forked := New(Config{Name: dbName, Key: vkey, URL: logB.URL}, st, Options{State: md, Upstream: fastUpstream})
	err = forked.Verify(ctx, b.Path, b.Version, b.ZipHash, b.ModHash)
	if err == nil {
		t.Fatal("Verify against a forked log succeeded; want a security error")
	}
	if !errors.Is(err, ErrSecurity) {
		t.Errorf("Verify against a forked log = %q; want errors.Is(err, ErrSecurity)", err)
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrChecksumMismatch) {
		t.Errorf("a fork must not be reported as not found or a mismatch: %v", err)
	}
	if after, _, _ := md.State(ctx, "sumdb "+dbName+" latest"); string(after) != string(latest) {
		t.Errorf("the forked log's tree head replaced the verified one")
	}
}

func TestTransientFailureNotRemembered(t *testing.T) {
	ctx := testCtx(t)
	db := modtest.NewSumDB(t, dbName)
	b := buildMod(t, "example.com/flaky", "v1.0.0", "flaky")
	c := buildMod(t, "example.com/later", "v1.0.0", "later")
	db.Add(b)
	db.Add(c)
	var down atomic.Bool
	srv := localServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			return
		}
		db.Handler().ServeHTTP(w, r)
	}))
	d := New(Config{Name: db.Name, Key: db.VerifierKey, URL: srv.URL}, store.NewMemory(t.TempDir()), Options{State: modtest.Meta(t), Upstream: fastUpstream})

	for round := range 2 {
		down.Store(true)
		err := d.Verify(ctx, b.Path, b.Version, b.ZipHash, b.ModHash)
		if err == nil {
			t.Fatalf("round %d: Verify while the database answers 500 succeeded", round)
		}
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrChecksumMismatch) || errors.Is(err, ErrSecurity) {
			t.Errorf("round %d: a 500 was reported as %v", round, err)
		}
		if !strings.Contains(err.Error(), dbName) {
			t.Errorf("round %d: error %q does not name the database", round, err)
		}
		down.Store(false)
		if err := d.Verify(ctx, b.Path, b.Version, b.ZipHash, b.ModHash); err != nil {
			t.Fatalf("round %d: Verify after the database came back: %v", round, err)
		}
		// The tree has grown on the second round: the new client must
		// also accept a newer tree head.
		b = c
	}
}

func TestContextCancelled(t *testing.T) {
	db := modtest.NewSumDB(t, dbName)
	b := buildMod(t, "example.com/ctx", "v1.0.0", "ctx")
	db.Add(b)
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	srv := localServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/lookup/") {
			select {
			case arrived <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		db.Handler().ServeHTTP(w, r)
	}))
	defer close(release)
	d := New(Config{Name: db.Name, Key: db.VerifierKey, URL: srv.URL}, store.NewMemory(t.TempDir()), Options{State: modtest.Meta(t), Upstream: fastUpstream})

	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() { errc <- d.Verify(ctx, b.Path, b.Version, b.ZipHash, b.ModHash) }()
	select {
	case <-arrived:
	case err := <-errc:
		t.Fatalf("Verify returned %v before the database answered", err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Verify whose context was cancelled while waiting = %v, want context.Canceled", err)
	}
}

// handlerEnv is a Handler in front of a test database reached directly.
type handlerEnv struct {
	db *modtest.SumDB
	d  *DB
	h  http.Handler
	st store.Store
}

func newHandlerEnv(t *testing.T, st store.Store, db *modtest.SumDB) handlerEnv {
	d := New(Config{Name: db.Name, Key: db.VerifierKey, URL: db.URL}, st, Options{State: modtest.Meta(t), NoSum: "private.example.com", Upstream: fastUpstream})
	return handlerEnv{db, d, NewHandler(d), st}
}

func serve(h http.Handler, method, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func TestHandler(t *testing.T) {
	db := modtest.NewSumDB(t, dbName)
	b := buildMod(t, "example.com/Hello", "v1.0.0", "hello")
	db.Add(b)
	st := store.NewMemory(t.TempDir())
	env := newHandlerEnv(t, st, db)
	prefix := "/sumdb/" + dbName
	lookupPath := prefix + "/lookup/example.com/!hello@v1.0.0"

	t.Run("supported", func(t *testing.T) {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			w := serve(env.h, method, prefix+"/supported")
			if w.Code != http.StatusOK || w.Body.Len() != 0 {
				t.Errorf("%s supported = %d %q, want 200 and no body", method, w.Code, w.Body)
			}
		}
		if n := len(db.Requests()); n != 0 {
			t.Errorf("supported asked the database %d times", n)
		}
	})

	t.Run("unknown database", func(t *testing.T) {
		for _, p := range []string{"/sumdb/sum.other.test/supported", "/sumdb/" + dbName, "/sumdb/sum.agora.test.evil/supported", "/sumdb/"} {
			if w := serve(env.h, http.MethodGet, p); w.Code != http.StatusNotFound {
				t.Errorf("GET %s = %d, want 404", p, w.Code)
			}
		}
		if w := serve(env.h, http.MethodGet, prefix+"/nonsense"); w.Code != http.StatusNotFound {
			t.Errorf("GET an unknown endpoint = %d, want 404", w.Code)
		}
	})

	t.Run("lookup", func(t *testing.T) {
		w := serve(env.h, http.MethodGet, lookupPath)
		if w.Code != http.StatusOK {
			t.Fatalf("lookup = %d %s", w.Code, w.Body)
		}
		body := w.Body.Bytes()
		_, text, treeMsg, err := tlog.ParseRecord(body)
		if err != nil {
			t.Fatalf("lookup body is not a record: %v\n%s", err, body)
		}
		if string(text) != b.GoSum() {
			t.Errorf("record text = %q, want %q", text, b.GoSum())
		}
		if len(treeMsg) == 0 {
			t.Errorf("record carries no signed tree head")
		}
		if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("lookup Cache-Control = %q, want immutable", cc)
		}

		n := len(db.Requests())
		w = serve(env.h, http.MethodGet, lookupPath)
		if w.Code != http.StatusOK || !slices.Equal(w.Body.Bytes(), body) {
			t.Errorf("second lookup = %d, body differs: %v", w.Code, !slices.Equal(w.Body.Bytes(), body))
		}
		if got := db.Requests()[n:]; len(got) != 0 {
			t.Errorf("second lookup asked the database: %v", got)
		}

		w = serve(env.h, http.MethodHead, lookupPath)
		if w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("HEAD lookup = %d, %d body bytes, Content-Length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
		}
	})

	t.Run("lookup after restart is served from the store", func(t *testing.T) {
		n := len(db.Requests())
		restarted := newHandlerEnv(t, st, db)
		w := serve(restarted.h, http.MethodGet, lookupPath)
		if w.Code != http.StatusOK {
			t.Fatalf("lookup after restart = %d %s", w.Code, w.Body)
		}
		if got := db.Requests()[n:]; len(got) != 0 {
			t.Errorf("lookup after a restart asked the database: %v", got)
		}
	})

	t.Run("lookup of a nosum module", func(t *testing.T) {
		w := serve(env.h, http.MethodGet, prefix+"/lookup/private.example.com/secret@v1.0.0")
		if w.Code != http.StatusForbidden {
			t.Errorf("lookup of a nosum module = %d, want 403", w.Code)
		}
		if got := requestsFor(db, "private.example.com"); len(got) != 0 {
			t.Errorf("the database was asked about a nosum module: %v", got)
		}
	})

	t.Run("lookup of an unknown module", func(t *testing.T) {
		w := serve(env.h, http.MethodGet, prefix+"/lookup/example.com/unknown@v1.0.0")
		if w.Code != http.StatusNotFound {
			t.Errorf("lookup of an unknown module = %d %s, want 404", w.Code, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("error Content-Type = %q", ct)
		}
	})

	t.Run("invalid lookups", func(t *testing.T) {
		n := len(db.Requests())
		for _, p := range []string{
			"example.com/hello",              // no @
			"example.com/Hello@v1.0.0",       // upper case not escaped
			"example.com/!hello@V1.0.0",      // upper case in version
			"example.com/!hello@v1.0.0!",     // bad version escaping
			"example.com/!hello@notaversion", // not semver
			"example.com/!hello@",            // no version
			"@v1.0.0",                        // no path
			"example.com/../x@v1.0.0",        // dot-dot
			"example.com/m/v2@v1.0.0",        // wrong major
		} {
			w := serve(env.h, http.MethodGet, prefix+"/lookup/"+p)
			if w.Code != http.StatusBadRequest {
				t.Errorf("lookup %q = %d, want 400", p, w.Code)
			}
		}
		if got := db.Requests()[n:]; len(got) != 0 {
			t.Errorf("invalid lookups reached the database: %v", got)
		}
	})

	var size int64
	t.Run("latest", func(t *testing.T) {
		w := serve(env.h, http.MethodGet, prefix+"/latest")
		if w.Code != http.StatusOK {
			t.Fatalf("latest = %d %s", w.Code, w.Body)
		}
		v, err := note.NewVerifier(db.VerifierKey)
		if err != nil {
			t.Fatal(err)
		}
		n, err := note.Open(w.Body.Bytes(), note.VerifierList(v))
		if err != nil {
			t.Fatalf("latest is not a note signed by the database: %v", err)
		}
		tree, err := tlog.ParseTree([]byte(n.Text))
		if err != nil {
			t.Fatal(err)
		}
		if tree.N < 1 {
			t.Fatalf("latest tree has %d records, want at least the one looked up", tree.N)
		}
		size = tree.N
		if hw := serve(env.h, http.MethodHead, prefix+"/latest"); hw.Code != http.StatusOK || hw.Body.Len() != 0 {
			t.Errorf("HEAD latest = %d with %d body bytes", hw.Code, hw.Body.Len())
		}
	})

	t.Run("tiles", func(t *testing.T) {
		if size == 0 {
			t.Skip("no tree size")
		}
		tile := tlog.Tile{H: 8, L: 0, N: 0, W: int(size)}.Path()
		n := len(db.Requests())
		w := serve(env.h, http.MethodGet, prefix+"/"+tile)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", tile, w.Code, w.Body)
		}
		if w.Body.Len() != 32*int(size) {
			t.Errorf("GET %s: %d bytes, want %d", tile, w.Body.Len(), 32*size)
		}
		if got := db.Requests()[n:]; len(got) != 0 {
			t.Errorf("a tile verified by the lookup was fetched again: %v", got)
		}
		if hw := serve(env.h, http.MethodHead, prefix+"/"+tile); hw.Code != http.StatusOK || hw.Body.Len() != 0 {
			t.Errorf("HEAD %s = %d with %d body bytes", tile, hw.Code, hw.Body.Len())
		}
		for _, p := range []string{"tile/8/0/../../x", "tile/x", "tile/8/0/000.p/0", "tile/8/0/000.p/256", "tile/8/0/-1"} {
			if w := serve(env.h, http.MethodGet, prefix+"/"+p); w.Code != http.StatusBadRequest {
				t.Errorf("GET %s = %d, want 400", p, w.Code)
			}
		}
	})
}

// README: "Checksum database lookups and full tiles are immutable; latest and
// partial tiles are cached briefly."
func TestHandlerCacheControl(t *testing.T) {
	db := modtest.NewSumDB(t, dbName)
	b := buildMod(t, "example.com/cc", "v1.0.0", "cc")
	db.Add(b)
	env := newHandlerEnv(t, store.NewMemory(t.TempDir()), db)
	prefix := "/sumdb/" + dbName
	if w := serve(env.h, http.MethodGet, prefix+"/lookup/example.com/cc@v1.0.0"); w.Code != http.StatusOK {
		t.Fatalf("lookup = %d %s", w.Code, w.Body)
	}
	partial := prefix + "/" + tlog.Tile{H: 8, L: 0, N: 0, W: 1}.Path()
	cases := []struct {
		path, want string
	}{
		{prefix + "/latest", cacheBriefly},
		{partial, cacheBriefly},
		{prefix + "/lookup/example.com/cc@v1.0.0", cacheForever},
	}
	for _, tc := range cases {
		w := serve(env.h, http.MethodGet, tc.path)
		if w.Code != http.StatusOK {
			t.Errorf("GET %s = %d", tc.path, w.Code)
			continue
		}
		if got := w.Header().Get("Cache-Control"); got != tc.want {
			t.Errorf("GET %s: Cache-Control = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// A tile nobody has verified yet is passed through from the database.
func TestHandlerTileFromDatabase(t *testing.T) {
	db := modtest.NewSumDB(t, dbName)
	b := buildMod(t, "example.com/tile", "v1.0.0", "tile")
	db.Add(b)
	// Grow the database's log without going through the handler's DB.
	other := New(Config{Name: db.Name, Key: db.VerifierKey, URL: db.URL}, store.NewMemory(t.TempDir()), Options{State: modtest.Meta(t), Upstream: fastUpstream})
	if err := other.Verify(testCtx(t), b.Path, b.Version, b.ZipHash, b.ModHash); err != nil {
		t.Fatal(err)
	}
	env := newHandlerEnv(t, store.NewMemory(t.TempDir()), db)
	tile := "/sumdb/" + dbName + "/" + tlog.Tile{H: 8, L: 0, N: 0, W: 1}.Path()
	n := len(db.Requests())
	w := serve(env.h, http.MethodGet, tile)
	if w.Code != http.StatusOK || w.Body.Len() != 32 {
		t.Fatalf("GET %s = %d with %d bytes, want 200 with 32", tile, w.Code, w.Body.Len())
	}
	if got := db.Requests()[n:]; len(got) != 1 {
		t.Errorf("database requests for an unseen tile = %v, want exactly one", got)
	}
}

// A full tile is immutable: once passed through it is kept (unverified, in
// the raw cache) and served again without asking the database.
func TestHandlerFullTileCached(t *testing.T) {
	db := modtest.NewSumDB(t, dbName)
	// Fill the first tile of the log: 256 records, looked up in-process.
	for i := range 256 {
		path := "example.com/m" + strconv.Itoa(i)
		db.SetHashes(path, "v1.0.0", "h1:zip"+strconv.Itoa(i)+"=", "h1:mod"+strconv.Itoa(i)+"=")
		w := serve(db.Handler(), http.MethodGet, "/lookup/"+path+"@v1.0.0")
		if w.Code != http.StatusOK {
			t.Fatalf("filling the log: lookup %s = %d", path, w.Code)
		}
	}
	st := store.NewMemory(t.TempDir())
	env := newHandlerEnv(t, st, db)
	full := tlog.Tile{H: 8, L: 0, N: 0, W: 256}.Path()
	n := len(db.Requests())
	w := serve(env.h, http.MethodGet, "/sumdb/"+dbName+"/"+full)
	if w.Code != http.StatusOK || w.Body.Len() != 32*256 {
		t.Fatalf("GET %s = %d with %d bytes, want 200 with %d", full, w.Code, w.Body.Len(), 32*256)
	}
	if cc := w.Header().Get("Cache-Control"); cc != cacheForever {
		t.Errorf("full tile Cache-Control = %q, want %q", cc, cacheForever)
	}
	if got := db.Requests()[n:]; len(got) != 1 {
		t.Errorf("database requests for the full tile = %v, want one", got)
	}
	if _, err := st.Get(testCtx(t), "sumdb-raw/"+dbName+"/"+full); err != nil {
		t.Errorf("full tile not kept in the raw cache: %v", err)
	}
	again := newHandlerEnv(t, st, db) // after a restart too
	n = len(db.Requests())
	w2 := serve(again.h, http.MethodGet, "/sumdb/"+dbName+"/"+full)
	if w2.Code != http.StatusOK || !slices.Equal(w2.Body.Bytes(), w.Body.Bytes()) {
		t.Errorf("second GET %s = %d, same body: %v", full, w2.Code, slices.Equal(w2.Body.Bytes(), w.Body.Bytes()))
	}
	if got := db.Requests()[n:]; len(got) != 0 {
		t.Errorf("a cached full tile was fetched again: %v", got)
	}
}
