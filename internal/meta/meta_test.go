package meta_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/modtest"
)

// opener returns a new, empty database for each call, and a way to open
// a second handle on the same database (a second replica).
type opener func(t *testing.T) (dsn string)

func TestSQLite(t *testing.T) {
	testMeta(t, func(t *testing.T) string {
		return "sqlite:" + filepath.Join(t.TempDir(), "agora.db")
	})
}

// TestPostgres runs the suite against the test PostgreSQL server
// (scripts/test starts one); each subtest gets a database of its own.
func TestPostgres(t *testing.T) {
	testMeta(t, func(t *testing.T) string { return modtest.PostgresDB(t) })
}

func open(t *testing.T, dsn string) *meta.DB {
	t.Helper()
	db, err := meta.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func version(path, v string) meta.Version {
	return meta.Version{Path: path, Version: v, ZipHash: "h1:zip-" + v, ModHash: "h1:mod-" + v,
		Size: 100, Origin: "http://127.0.0.1:1/", Verification: meta.Verified}
}

// testMeta is the suite every engine must pass.
func testMeta(t *testing.T, newDB opener) {
	ctx := context.Background()

	t.Run("MigrationsRunOnceAndConcurrently", func(t *testing.T) {
		dsn := newDB(t)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				db, err := meta.Open(ctx, dsn)
				if err == nil {
					db.Close()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
			}
		}
		db := open(t, dsn)
		v, err := db.SchemaVersion(ctx)
		if err != nil || v < 1 {
			t.Fatalf("SchemaVersion = %d, %v", v, err)
		}
	})

	t.Run("NewerSchemaIsRefused", func(t *testing.T) {
		dsn := newDB(t)
		db := open(t, dsn)
		if err := db.PutState(ctx, "x", []byte("y")); err != nil {
			t.Fatal(err)
		}
		db.Close()
		raw := rawOpen(t, dsn)
		if _, err := raw.Exec(`INSERT INTO schema_migrations (version, applied) VALUES (999, 0)`); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		if db, err := meta.Open(ctx, dsn); err == nil {
			db.Close()
			t.Fatal("Open of a database with a newer schema succeeded")
		}
	})

	t.Run("AddVersionRecordsOnce", func(t *testing.T) {
		db := open(t, newDB(t))
		first, added, err := db.AddVersion(ctx, version("example.com/m", "v1.0.0"))
		if err != nil || !added {
			t.Fatalf("AddVersion = %v, %v", added, err)
		}
		again := version("example.com/m", "v1.0.0")
		again.ZipHash = "h1:other"
		rec, added, err := db.AddVersion(ctx, again)
		if err != nil || added {
			t.Fatalf("second AddVersion = %v, %v; want false, nil", added, err)
		}
		if rec != first {
			t.Errorf("second AddVersion returned %+v, want the first record %+v", rec, first)
		}
		got, err := db.Version(ctx, "example.com/m", "v1.0.0")
		if err != nil || got != first {
			t.Errorf("Version = %+v, %v; want %+v", got, err, first)
		}
		if _, err := db.Version(ctx, "example.com/m", "v2.0.0"); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("Version of a missing version: %v, want ErrNotFound", err)
		}
		vs, err := db.Versions(ctx, "example.com/m")
		if err != nil || len(vs) != 1 || vs[0] != first {
			t.Errorf("Versions = %+v, %v", vs, err)
		}
		if vs, err := db.Versions(ctx, "example.com/none"); err != nil || len(vs) != 0 {
			t.Errorf("Versions of an unknown module = %+v, %v", vs, err)
		}
	})

	t.Run("IndexPagesEveryEntryOnceWhileAdditionsArrive", func(t *testing.T) {
		dsn := newDB(t)
		// Two handles: two replicas adding at once.
		dbs := []*meta.DB{open(t, dsn), open(t, dsn)}
		const n = 120
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v := version(fmt.Sprintf("example.com/m%d", i%7), fmt.Sprintf("v1.0.%d", i))
				if _, _, err := dbs[i%2].AddVersion(ctx, v); err != nil {
					t.Errorf("AddVersion: %v", err)
				}
			}()
		}
		seen := make(map[string]int)
		var since time.Time
		var last time.Time
		deadline := time.Now().Add(time.Minute)
		for len(seen) < n && time.Now().Before(deadline) {
			page, err := dbs[0].Index(ctx, since, 9)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range page {
				if !v.Added.After(last) {
					t.Fatalf("index not strictly increasing: %s after %s", v.Added, last)
				}
				last = v.Added
				seen[v.Path+"@"+v.Version]++
			}
			if len(page) > 0 {
				// Resume just after the last entry seen.
				since = page[len(page)-1].Added.Add(time.Microsecond)
			}
		}
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("paging saw %d entries, want %d", len(seen), n)
		}
		for k, c := range seen {
			if c != 1 {
				t.Errorf("%s seen %d times", k, c)
			}
		}
		all, err := dbs[1].Index(ctx, time.Time{}, 1000)
		if err != nil || len(all) != n {
			t.Fatalf("Index(all) = %d entries, %v", len(all), err)
		}
		// since is inclusive, as the public index's.
		from, err := dbs[1].Index(ctx, all[5].Added, 2)
		if err != nil || len(from) != 2 || from[0] != all[5] || from[1] != all[6] {
			t.Errorf("Index(since=entry 5, limit 2) = %+v, %v", from, err)
		}
	})

	t.Run("ModulesArePagedAndFiltered", func(t *testing.T) {
		db := open(t, newDB(t))
		for _, pv := range [][2]string{
			{"example.com/b", "v1.0.0"}, {"example.com/a", "v1.0.0"}, {"example.com/a", "v1.1.0"},
			{"corp.example/x_y", "v0.1.0"}, {"corp.example/xzy", "v0.1.0"}, {"example.com/c", "v2.0.0"},
		} {
			if _, _, err := db.AddVersion(ctx, version(pv[0], pv[1])); err != nil {
				t.Fatal(err)
			}
		}
		mods, err := db.Modules(ctx, "", "", 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(mods) != 2 || mods[0].Path != "corp.example/x_y" || mods[1].Path != "corp.example/xzy" {
			t.Fatalf("first page = %+v", mods)
		}
		mods, err = db.Modules(ctx, "corp.example/xzy", "", 2)
		if err != nil || len(mods) != 2 || mods[0].Path != "example.com/a" || len(mods[0].Versions) != 2 || mods[1].Path != "example.com/b" {
			t.Fatalf("second page = %+v, %v", mods, err)
		}
		if mods[0].Versions[0].Version != "v1.0.0" || mods[0].Versions[1].Version != "v1.1.0" {
			t.Errorf("versions of example.com/a = %+v", mods[0].Versions)
		}
		// "_" is a literal, not LIKE's wildcard; matching ignores case.
		mods, err = db.Modules(ctx, "", "X_Y", 10)
		if err != nil || len(mods) != 1 || mods[0].Path != "corp.example/x_y" {
			t.Errorf("Modules matching X_Y = %+v, %v", mods, err)
		}
		tot, err := db.Totals(ctx)
		if err != nil || tot.Modules != 5 || tot.Versions != 6 || tot.Bytes != 600 {
			t.Errorf("Totals = %+v, %v; want 5 modules, 6 versions, 600 bytes", tot, err)
		}
		recent, err := db.Recent(ctx, 2)
		if err != nil || len(recent) != 2 || recent[0].Path != "example.com/c" || recent[1].Path != "corp.example/xzy" {
			t.Errorf("Recent(2) = %+v, %v", recent, err)
		}
	})

	t.Run("UsageAndPrune", func(t *testing.T) {
		db := open(t, newDB(t))
		for _, v := range []string{"v1.0.0", "v1.1.0", "v1.2.0"} {
			if _, _, err := db.AddVersion(ctx, version("example.com/p", v)); err != nil {
				t.Fatal(err)
			}
		}
		idx, _ := db.Index(ctx, time.Time{}, 10)
		later := time.Now().Add(time.Hour)
		if err := db.Touch(ctx, []meta.Use{{Path: "example.com/p", Version: "v1.1.0", At: later}}); err != nil {
			t.Fatal(err)
		}
		unused, err := db.Unused(ctx, later.Add(-time.Minute))
		if err != nil || len(unused) != 2 || unused[0].Version != "v1.0.0" || unused[1].Version != "v1.2.0" {
			t.Fatalf("Unused = %+v, %v; want v1.0.0 and v1.2.0 (v1.1.0 was used)", unused, err)
		}
		if err := db.MarkPruned(ctx, "example.com/p", "v1.0.0"); err != nil {
			t.Fatal(err)
		}
		vs, _ := db.Versions(ctx, "example.com/p")
		if len(vs) != 2 || vs[0].Version != "v1.1.0" {
			t.Errorf("Versions after pruning v1.0.0 = %+v", vs)
		}
		if held, err := db.HeldVersions(ctx, "example.com/p"); err != nil || !slices.Equal(held, []string{"v1.1.0", "v1.2.0"}) {
			t.Errorf("HeldVersions after pruning v1.0.0 = %v, %v; want v1.1.0 v1.2.0", held, err)
		}
		if after, _ := db.Index(ctx, time.Time{}, 10); len(after) != 3 || after[0] != idx[0] {
			t.Errorf("the index lost a pruned version's entry: %+v", after)
		}
		if tot, _ := db.Totals(ctx); tot.Modules != 1 || tot.Versions != 2 {
			t.Errorf("Totals after a prune = %+v; want 1 module, 2 versions", tot)
		}
		// Fetched again: held again, with its first index entry.
		rec, added, err := db.AddVersion(ctx, version("example.com/p", "v1.0.0"))
		if err != nil || added || rec != idx[0] {
			t.Errorf("AddVersion of a pruned version = %+v, %v, %v", rec, added, err)
		}
		if vs, _ := db.Versions(ctx, "example.com/p"); len(vs) != 3 {
			t.Errorf("Versions after re-adding = %+v", vs)
		}
		if held, _ := db.HeldVersions(ctx, "example.com/p"); !slices.Equal(held, []string{"v1.0.0", "v1.1.0", "v1.2.0"}) {
			t.Errorf("HeldVersions after re-adding = %v", held)
		}
		if held, err := db.HeldVersions(ctx, "example.com/none"); err != nil || len(held) != 0 {
			t.Errorf("HeldVersions of an unknown module = %v, %v", held, err)
		}
	})

	t.Run("Tokens", func(t *testing.T) {
		db := open(t, newDB(t))
		tok := meta.Token{Name: "ci", Hash: "abc123", Patterns: "corp.example/*"}
		if err := db.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateToken(ctx, meta.Token{Name: "ci", Hash: "other"}); !errors.Is(err, meta.ErrExist) {
			t.Errorf("second token named ci: %v, want ErrExist", err)
		}
		got, err := db.TokenByHash(ctx, "abc123")
		if err != nil || got.Name != "ci" || got.Patterns != "corp.example/*" || got.Created.IsZero() {
			t.Fatalf("TokenByHash = %+v, %v", got, err)
		}
		if err := db.RevokeToken(ctx, "ci"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.TokenByHash(ctx, "abc123"); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("TokenByHash of a revoked token: %v", err)
		}
		if err := db.RevokeToken(ctx, "ci"); !errors.Is(err, meta.ErrNotFound) {
			t.Errorf("revoking twice: %v", err)
		}
		all, err := db.Tokens(ctx)
		if err != nil || len(all) != 1 || all[0].Revoked.IsZero() {
			t.Errorf("Tokens = %+v, %v", all, err)
		}
	})

	t.Run("PinsKeepTheFirstHash", func(t *testing.T) {
		dsn := newDB(t)
		a, b := open(t, dsn), open(t, dsn)
		if _, err := a.PinnedHash(ctx, "corp.example/m", "v1.0.0", "zip"); !errors.Is(err, meta.ErrNotFound) {
			t.Fatalf("PinnedHash before any pin: %v", err)
		}
		if h, err := a.Pin(ctx, "corp.example/m", "v1.0.0", "zip", "h1:first"); err != nil || h != "h1:first" {
			t.Fatalf("first Pin = %q, %v", h, err)
		}
		if h, err := b.Pin(ctx, "corp.example/m", "v1.0.0", "zip", "h1:second"); err != nil || h != "h1:first" {
			t.Errorf("second Pin (another replica) = %q, %v; want the first hash", h, err)
		}
		if h, err := b.Pin(ctx, "corp.example/m", "v1.0.0", "go.mod", "h1:mod"); err != nil || h != "h1:mod" {
			t.Errorf("Pin of another file = %q, %v", h, err)
		}
	})

	t.Run("State", func(t *testing.T) {
		db := open(t, newDB(t))
		if _, _, err := db.State(ctx, "k"); !errors.Is(err, meta.ErrNotFound) {
			t.Fatalf("State of a missing key: %v", err)
		}
		before := time.Now().Add(-time.Second)
		if err := db.PutState(ctx, "k", []byte("one")); err != nil {
			t.Fatal(err)
		}
		if err := db.PutState(ctx, "k", []byte("two")); err != nil {
			t.Fatal(err)
		}
		v, updated, err := db.State(ctx, "k")
		if err != nil || string(v) != "two" || updated.Before(before) {
			t.Errorf("State = %q, %v, %v", v, updated, err)
		}
	})

	t.Run("SwapStateIsCompareAndSwap", func(t *testing.T) {
		dsn := newDB(t)
		db := open(t, dsn)
		if ok, err := db.SwapState(ctx, "head", nil, []byte("a")); !ok || err != nil {
			t.Fatalf("first swap = %v, %v", ok, err)
		}
		if ok, err := db.SwapState(ctx, "head", nil, []byte("b")); ok || err != nil {
			t.Fatalf("swap from empty on a set key = %v, %v; want false", ok, err)
		}
		if ok, err := db.SwapState(ctx, "head", []byte("x"), []byte("b")); ok || err != nil {
			t.Fatalf("swap from a wrong old value = %v, %v; want false", ok, err)
		}
		// Many writers from the same old value: exactly one wins.
		other := open(t, dsn)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := db
				if i%2 == 1 {
					h = other
				}
				ok, err := h.SwapState(ctx, "head", []byte("a"), fmt.Appendf(nil, "w%d", i))
				if err != nil {
					t.Error(err)
				}
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("%d concurrent swaps from the same value won, want 1", wins.Load())
		}
	})

	t.Run("LockExcludesAndIsReleasedWhenHolderDies", func(t *testing.T) {
		dsn := newDB(t)
		a, b := open(t, dsn), open(t, dsn)
		unlock, err := a.Lock(ctx, "zip example.com/m@v1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		if a.Engine() == meta.SQLite {
			unlock()
			t.Skip("SQLite serves one process: Lock does not wait")
		}
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, err = b.Lock(short, "zip example.com/m@v1.0.0")
		cancel()
		if err == nil {
			t.Fatal("second Lock of a held lock succeeded")
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("second Lock: %v", err)
		}
		// Another name is independent.
		u2, err := b.Lock(ctx, "zip example.com/m@v1.0.1")
		if err != nil {
			t.Fatal(err)
		}
		u2()
		unlock()
		u3, err := b.Lock(ctx, "zip example.com/m@v1.0.0")
		if err != nil {
			t.Fatalf("Lock after unlock: %v", err)
		}
		// The holder dies (the server loses its connection, as when
		// its process is killed): the waiter gets the lock.
		got := make(chan error, 1)
		go func() {
			u, err := a.Lock(ctx, "zip example.com/m@v1.0.0")
			if err == nil {
				u()
			}
			got <- err
		}()
		time.Sleep(100 * time.Millisecond)
		raw := rawOpen(t, dsn)
		defer raw.Close()
		var killed int
		if err := raw.QueryRow(`SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted`).Scan(&killed); err != nil || killed != 1 {
			t.Fatalf("terminating the holder's connection: %d, %v", killed, err)
		}
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("Lock after the holder closed: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the lock of a closed holder was never released")
		}
		u3() // its connection is gone: unlock must not hang or panic
	})
}

// rawOpen opens the database under meta, for tests that tamper with it.
func rawOpen(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	driver, name := "pgx", dsn
	if s, ok := cutPrefix(dsn, "sqlite:"); ok {
		driver, name = "sqlite", s
	}
	db, err := sql.Open(driver, name)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return s, false
}
