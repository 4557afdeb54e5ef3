// Package meta keeps Agora's metadata in SQL: every module version held,
// with its hashes, origin, verification status and the time it entered the
// mirror (which orders the module index); small mutable state such as
// cached version lists and the checksum database's verified tree head; and
// the locks that stop two replicas from filling the same file at once.
//
// One schema serves two engines: SQLite (pure Go, no cgo) for a single
// Agora process, the default, and PostgreSQL for several replicas sharing
// one database. Migrations are numbered and run on Open, under a lock, so
// replicas starting together apply each migration once.
//
// File contents never live here: they are in the store (package store).
package meta

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"modernc.org/sqlite"               // registers "sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrNotFound is returned when a version or a state key is not recorded.
var ErrNotFound = errors.New("meta: not found")

// ErrBadDSN is returned by Open for a database address it cannot use.
var ErrBadDSN = errors.New("meta: unsupported database address")

// Verification statuses of a Version.
const (
	// Verified: the hashes were checked against the checksum database.
	Verified = "sumdb"
	// Pinned: the module is exempt from the checksum database (private,
	// or GONOSUMDB); its hashes are those of its first fetch, and later
	// fetches must match them.
	Pinned = "pinned"
)

// Version is a module version held by the mirror.
type Version struct {
	Path, Version string
	ZipHash       string // h1: hash of the zip
	ModHash       string // h1: hash of the go.mod
	Size          int64  // zip size in bytes
	Origin        string // where the zip came from: an upstream URL, or "vcs"
	Verification  string // Verified or Pinned
	// Added is when the version entered the mirror: unique and
	// increasing across the mirror (all replicas), at microsecond
	// precision, so that the module index can be paged by it.
	Added time.Time
}

// Engine names a SQL engine.
type Engine string

// The engines meta supports.
const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// DB is the metadata database.
type DB struct {
	db     *sql.DB
	locks  *sql.DB // PostgreSQL: connections holding advisory locks
	engine Engine
	stmts  sync.Map // query (with ? placeholders) -> *sql.Stmt
}

// Open opens the database at dsn and brings its schema up to date.
// dsn is "sqlite:PATH" (a file, created if needed) or a PostgreSQL URL
// ("postgres://user@host:port/db?sslmode=disable"; the password may
// also come from PGPASSWORD or a PGPASSFILE, as libpq reads them).
func Open(ctx context.Context, dsn string) (*DB, error) {
	d := new(DB)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		d.engine = Postgres
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("meta: %w", err)
		}
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
		db.SetConnMaxIdleTime(5 * time.Minute)
		locks, err := sql.Open("pgx", dsn)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("meta: %w", err)
		}
		// One connection per fill in progress; bounded so that a
		// burst of fills cannot exhaust the server's connections
		// (further fills wait for one).
		locks.SetMaxOpenConns(maxLockConns)
		locks.SetMaxIdleConns(4)
		d.db, d.locks = db, locks
	case strings.HasPrefix(dsn, "sqlite:"):
		d.engine = SQLite
		name := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
		if name == "" {
			return nil, fmt.Errorf("%w: %q has no file name", ErrBadDSN, dsn)
		}
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return nil, fmt.Errorf("meta: %w", err)
		}
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)") // first: it applies to the others
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		// Up to 16 MiB of pages in SQLite's own cache (the default is 2
		// MiB): a catalog of a million versions keeps the upper levels of
		// its indexes there instead of reading them back from the OS.
		q.Add("_pragma", "cache_size(-16384)")
		q.Add("_txlock", "immediate")
		db, err := sql.Open("sqlite", "file:"+name+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("meta: %w", err)
		}
		// One connection: SQLite has one writer at a time anyway, and
		// a single connection serializes the index's timestamps.
		db.SetMaxOpenConns(1)
		d.db = db
	default:
		return nil, fmt.Errorf("%w: %q (want sqlite:PATH or postgres://...)", ErrBadDSN, redact(dsn))
	}
	if err := d.migrateRetry(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// migrateRetry runs migrate, retrying while another process holds
// SQLite's lock in a way its busy timeout does not cover (a switch to WAL
// mode by a process opening the same file at the same moment).
func (d *DB) migrateRetry(ctx context.Context) error {
	for try := 0; ; try++ {
		err := d.migrate(ctx)
		var se *sqlite.Error
		if err == nil || try == 50 || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// maxLockConns bounds the connections one process holds for fill locks.
const maxLockConns = 64

// redact hides a password in a database URL.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	return u.Redacted()
}

// Engine returns the engine in use.
func (d *DB) Engine() Engine { return d.engine }

// Close closes the database.
func (d *DB) Close() error {
	if d.locks != nil {
		d.locks.Close()
	}
	d.stmts.Range(func(_, s any) bool {
		s.(*sql.Stmt).Close()
		return true
	})
	return d.db.Close()
}

// queryRow runs a query expected to return at most one row. On SQLite its
// statement is prepared once (stmt); PostgreSQL's driver caches statements
// itself, in the way its connection settings allow (pgx prepares nothing
// when a connection pooler rules it out).
func (d *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if d.engine == SQLite {
		if s, err := d.stmt(ctx, query); err == nil {
			return s.QueryRowContext(ctx, args...)
		}
	}
	return d.db.QueryRowContext(ctx, d.q(query), args...)
}

// query runs a query that returns rows, prepared once on SQLite like
// queryRow's.
func (d *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if d.engine == SQLite {
		if s, err := d.stmt(ctx, query); err == nil {
			return s.QueryContext(ctx, args...)
		}
	}
	return d.db.QueryContext(ctx, d.q(query), args...)
}

// stmt returns the prepared statement for query (written with ?
// placeholders, as for q), preparing it the first time. On SQLite, every
// fill's statements and every read are prepared once: SQLite would
// otherwise parse each again on every call, a good part of a fill's CPU
// time and a fifth of a listing's. The queries are fixed strings, so the
// statements are few.
func (d *DB) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := d.stmts.Load(query); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := d.db.PrepareContext(ctx, d.q(query))
	if err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	if old, loaded := d.stmts.LoadOrStore(query, s); loaded {
		s.Close()
		return old.(*sql.Stmt), nil
	}
	return s, nil
}

// Ping checks that the database answers.
func (d *DB) Ping(ctx context.Context) error {
	if err := d.db.PingContext(ctx); err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	return nil
}

// q adapts a query written with ? placeholders to the engine.
func (d *DB) q(query string) string {
	if d.engine != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// lockID maps a lock name to a PostgreSQL advisory lock key. Two names
// with the same key only serialize each other, which is harmless.
func lockID(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// Lock takes the named lock, waiting until it is free or ctx is done, and
// returns the function that releases it. With PostgreSQL it is a session
// advisory lock, held by a dedicated connection: if this process dies, the
// server drops the connection and the lock with it, so another replica
// can take over. With SQLite (one process) it always succeeds at once:
// the caller's own in-process coordination is all there is to do.
func (d *DB) Lock(ctx context.Context, name string) (unlock func(), err error) {
	if d.engine != Postgres {
		return func() {}, nil
	}
	conn, err := d.locks.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("meta: lock %q: %w", name, err)
	}
	id := lockID(name)
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", id); err != nil {
		// The lock may or may not have been granted as the wait was
		// cancelled: discard the connection, which releases it.
		discard(conn)
		return nil, fmt.Errorf("meta: lock %q: %w", name, err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", id); err != nil {
			discard(conn)
			return
		}
		conn.Close()
	}, nil
}

// discard closes conn's connection for good instead of returning it to
// the pool.
func discard(conn *sql.Conn) {
	conn.Raw(func(any) error { return errBadConn })
	conn.Close()
}

var errBadConn = driver.ErrBadConn
