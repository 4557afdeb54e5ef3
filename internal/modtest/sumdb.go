package modtest

import (
	"crypto/rand"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
)

// SumDB is a test checksum database: golang.org/x/mod/sumdb.NewServer
// over sumdb.NewTestServer, signed with a key generated for this SumDB
// alone, and served by httptest on 127.0.0.1.
//
// The database answers lookups only for module versions registered with
// [SumDB.Add] or [SumDB.SetHashes]; any other lookup gets 404. Because the
// log is append-only, the hashes of a module version are fixed the first
// time a client looks it up; register (or tamper with) hashes before that.
type SumDB struct {
	// Name is the database name, for example "sum.agora.test".
	Name string
	// VerifierKey is the note verifier key ("<Name>+<hash>+<key>"),
	// suitable as GOSUMDB=<VerifierKey> or GOSUMDB="<VerifierKey> <URL>".
	VerifierKey string
	// URL is the base URL, "http://127.0.0.1:<port>". The database protocol
	// is served at its root: /latest, /lookup/..., /tile/....
	URL string

	t       testing.TB
	srv     *httptest.Server
	handler http.Handler
	once    sync.Once

	mu        sync.Mutex
	lines     map[string]string // "path@version" -> go.sum lines
	published map[string]string // lines already handed to the log
	requests  []string
}

// NewSumDB starts a checksum database called name. The name must be
// acceptable to the go command as a GOSUMDB name: host[/path] with no
// scheme, query, user info, '+' or spaces. The server is closed by
// t.Cleanup.
func NewSumDB(t testing.TB, name string) *SumDB {
	t.Helper()
	if err := checkSumDBName(name); err != nil {
		t.Fatalf("modtest.NewSumDB: %v", err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatalf("modtest.NewSumDB: generating key: %v", err)
	}
	db := &SumDB{
		Name:        name,
		VerifierKey: vkey,
		t:           t,
		lines:       make(map[string]string),
		published:   make(map[string]string),
	}
	inner := sumdb.NewServer(sumdb.NewTestServer(skey, db.gosum))
	db.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		db.mu.Lock()
		db.requests = append(db.requests, r.URL.Path)
		db.mu.Unlock()
		inner.ServeHTTP(w, r)
	})
	db.srv = newLocalServer(t, db.handler)
	db.URL = db.srv.URL
	t.Cleanup(db.Close)
	return db
}

// gosum supplies the go.sum lines for the test log. An unknown module
// version yields an error for which os.IsNotExist is true: that is the
// only kind of error the sumdb server turns into 404 (anything else is a
// 500). os.IsNotExist does not follow %w wrapping, so the error must be
// fs.ErrNotExist itself or a *fs.PathError around it.
func (db *SumDB) gosum(path, version string) ([]byte, error) {
	key := path + "@" + version
	db.mu.Lock()
	defer db.mu.Unlock()
	lines, ok := db.lines[key]
	if !ok {
		return nil, &fs.PathError{Op: "lookup", Path: key, Err: fs.ErrNotExist}
	}
	db.published[key] = lines
	return []byte(lines), nil
}

// Add registers the go.sum lines of b: "<path> <version> <ZipHash>" and
// "<path> <version>/go.mod <ModHash>".
func (db *SumDB) Add(b *Built) {
	db.SetHashes(b.Path, b.Version, b.ZipHash, b.ModHash)
}

// SetHashes registers arbitrary hashes for path@version, typically wrong
// ones for tamper tests. An empty hash leaves out its go.sum line. It must
// be called before any client has looked the version up; a later change
// cannot reach the append-only log and is reported as a test error.
func (db *SumDB) SetHashes(path, version, zipHash, modHash string) {
	key := path + "@" + version
	lines := goSumLines(path, version, zipHash, modHash)
	db.mu.Lock()
	defer db.mu.Unlock()
	if old, ok := db.published[key]; ok && old != lines {
		db.t.Errorf("modtest: SumDB.SetHashes(%s): hashes already published to the log; the change has no effect", key)
		return
	}
	db.lines[key] = lines
}

// Requests returns the URL paths requested from the database so far,
// in order, as seen by [SumDB.Handler] (so requests proxied through an
// [Upstream] appear without their /sumdb/<name> prefix).
func (db *SumDB) Requests() []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	return append([]string(nil), db.requests...)
}

// Handler returns the database's HTTP handler, which expects the protocol
// paths (/latest, /lookup/..., /tile/...) at its root. Requests through it
// are recorded in [SumDB.Requests].
func (db *SumDB) Handler() http.Handler {
	return db.handler
}

// Close stops the database's own HTTP server; [SumDB.Handler] keeps
// working. It is safe to call more than once.
func (db *SumDB) Close() {
	db.once.Do(func() {
		db.srv.CloseClientConnections()
		db.srv.Close()
	})
}

// checkSumDBName applies the go command's rules for a checksum database
// name (see dbDial in cmd/go/internal/modfetch/sumdb.go) together with
// those of the note package for key names.
func checkSumDBName(name string) error {
	if name == "" || !utf8.ValidString(name) || strings.Contains(name, "+") || strings.IndexFunc(name, unicode.IsSpace) >= 0 {
		return fmt.Errorf("invalid checksum database name %q: must be non-empty, without '+' or spaces", name)
	}
	u, err := url.Parse("https://" + name)
	if err != nil || strings.HasSuffix(name, "/") || u.Host == "" || u.RawPath != "" ||
		*u != (url.URL{Scheme: "https", Host: u.Host, Path: u.Path, RawPath: u.RawPath}) {
		return fmt.Errorf("invalid checksum database name %q: must be host[/path]", name)
	}
	return nil
}

// newLocalServer starts an httptest server that is guaranteed to listen on
// 127.0.0.1 (httptest.NewServer may fall back to [::1]).
func newLocalServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("modtest: listening on 127.0.0.1: %v", err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	srv.Start()
	return srv
}
