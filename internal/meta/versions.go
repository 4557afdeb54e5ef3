package meta

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// indexLock serializes additions so that the index's timestamps are
// assigned in commit order (PostgreSQL; SQLite has one connection).
const indexLock = "agora module index"

const versionCols = `path, version, zip_hash, mod_hash, size, origin, verification, added`

// AddVersion records v as held, once: if path@version is recorded
// already, the first record stays and is returned with added false.
// v.Added is ignored; the version gets the next index timestamp: now, or
// one microsecond after the latest one if the clock is behind it (so the
// index's order is the order of additions even across replicas whose
// clocks differ).
func (d *DB) AddVersion(ctx context.Context, v Version) (rec Version, added bool, err error) {
	queries := [...]string{
		`SELECT ` + versionCols + ` FROM versions WHERE path = ? AND version = ?`,
		`SELECT COALESCE(MAX(added), 0) FROM versions`,
		`INSERT INTO versions (` + versionCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
	}
	// On SQLite the statements are prepared (once, by d.stmt) before
	// the transaction takes the connection: there is only one.
	var stmts [len(queries)]*sql.Stmt
	if d.engine == SQLite {
		for i, query := range queries {
			if stmts[i], err = d.stmt(ctx, query); err != nil {
				return Version{}, false, err
			}
		}
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return Version{}, false, fmt.Errorf("meta: %w", err)
	}
	defer tx.Rollback()
	query := func(i int, args ...any) *sql.Row {
		if stmts[i] != nil {
			return tx.StmtContext(ctx, stmts[i]).QueryRowContext(ctx, args...)
		}
		return tx.QueryRowContext(ctx, d.q(queries[i]), args...)
	}
	// On PostgreSQL the advisory transaction lock makes additions
	// one at a time, and holds until commit: an addition that reads
	// the latest timestamp sees every earlier one committed. A reader
	// of the index therefore never sees a later entry before an
	// earlier one.
	if d.engine == Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockID(indexLock)); err != nil {
			return Version{}, false, fmt.Errorf("meta: %w", err)
		}
	}
	old, err := scanVersion(query(0, v.Path, v.Version))
	if err == nil {
		// Held again after a prune: held, with its first index entry.
		if _, err := tx.ExecContext(ctx, d.q(`UPDATE versions SET pruned = 0, last_used = ? WHERE path = ? AND version = ? AND pruned <> 0`),
			time.Now().UnixMicro(), v.Path, v.Version); err != nil {
			return Version{}, false, fmt.Errorf("meta: %w", err)
		}
		return old, false, tx.Commit()
	}
	if !errors.Is(err, ErrNotFound) {
		return Version{}, false, err
	}
	var last int64
	if err := query(1).Scan(&last); err != nil {
		return Version{}, false, fmt.Errorf("meta: %w", err)
	}
	ts := max(time.Now().UnixMicro(), last+1)
	if stmts[2] != nil {
		_, err = tx.StmtContext(ctx, stmts[2]).ExecContext(ctx, v.Path, v.Version, v.ZipHash, v.ModHash, v.Size, v.Origin, v.Verification, ts)
	} else {
		_, err = tx.ExecContext(ctx, d.q(queries[2]), v.Path, v.Version, v.ZipHash, v.ModHash, v.Size, v.Origin, v.Verification, ts)
	}
	if err != nil {
		return Version{}, false, fmt.Errorf("meta: recording %s@%s: %w", v.Path, v.Version, err)
	}
	if err := tx.Commit(); err != nil {
		return Version{}, false, fmt.Errorf("meta: recording %s@%s: %w", v.Path, v.Version, err)
	}
	v.Added = time.UnixMicro(ts).UTC()
	return v, true, nil
}

type scanner interface{ Scan(...any) error }

func scanVersion(row scanner) (Version, error) {
	var v Version
	var added int64
	err := row.Scan(&v.Path, &v.Version, &v.ZipHash, &v.ModHash, &v.Size, &v.Origin, &v.Verification, &added)
	if errors.Is(err, sql.ErrNoRows) {
		return Version{}, ErrNotFound
	}
	if err != nil {
		return Version{}, fmt.Errorf("meta: %w", err)
	}
	v.Added = time.UnixMicro(added).UTC()
	return v, nil
}

func scanVersions(rows *sql.Rows, err error) ([]Version, error) {
	if err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	defer rows.Close()
	var vs []Version
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	return vs, nil
}

// Version returns the record of path@version, or ErrNotFound.
func (d *DB) Version(ctx context.Context, path, version string) (Version, error) {
	return scanVersion(d.queryRow(ctx, `SELECT `+versionCols+` FROM versions WHERE path = ? AND version = ?`, path, version))
}

// Versions returns the versions of path held (not pruned), in the order
// they were added.
func (d *DB) Versions(ctx context.Context, path string) ([]Version, error) {
	return scanVersions(d.query(ctx, `SELECT `+versionCols+` FROM versions WHERE path = ? AND pruned = 0 ORDER BY added`, path))
}

// HeldVersions returns the versions of path held (not pruned), in
// version string order: Versions without the records, for version lists.
func (d *DB) HeldVersions(ctx context.Context, path string) ([]string, error) {
	rows, err := d.query(ctx, `SELECT version FROM versions WHERE path = ? AND pruned = 0 ORDER BY version`, path)
	if err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	defer rows.Close()
	var vs []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("meta: %w", err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	return vs, nil
}

// Use is a version requested at a time.
type Use struct {
	Path, Version string
	At            time.Time
}

// Touch records when versions were last requested.
func (d *DB) Touch(ctx context.Context, uses []Use) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, d.q(`UPDATE versions SET last_used = ? WHERE path = ? AND version = ? AND last_used < ?`))
	if err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	defer stmt.Close()
	for _, u := range uses {
		at := u.At.UnixMicro()
		if _, err := stmt.ExecContext(ctx, at, u.Path, u.Version, at); err != nil {
			return fmt.Errorf("meta: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	return nil
}

// Unused returns the versions held that were neither added nor requested
// since before, oldest first.
func (d *DB) Unused(ctx context.Context, before time.Time) ([]Version, error) {
	b := before.UnixMicro()
	return scanVersions(d.query(ctx, `SELECT `+versionCols+` FROM versions
		WHERE pruned = 0 AND added < ? AND last_used < ? ORDER BY added`, b, b))
}

// MarkPruned records that a version's files were removed: it is no longer
// held (lists and the catalog leave it out) but keeps its index entry.
func (d *DB) MarkPruned(ctx context.Context, path, version string) error {
	_, err := d.db.ExecContext(ctx, d.q(`UPDATE versions SET pruned = ? WHERE path = ? AND version = ?`), time.Now().UnixMicro(), path, version)
	if err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	return nil
}

// Indexer is what reads the module index: DB.Index, or an interface of a
// caller's that DB satisfies.
type Indexer interface {
	Index(ctx context.Context, since time.Time, limit int) ([]Version, error)
}

// EachIndexed calls fn for every version added at or after since, oldest
// first, reading the index a page at a time (index timestamps are unique,
// so a page ends where the next begins).
func EachIndexed(ctx context.Context, idx Indexer, since time.Time, fn func(Version) error) error {
	const page = 2000
	for {
		vs, err := idx.Index(ctx, since, page)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if err := fn(v); err != nil {
				return err
			}
		}
		if len(vs) < page {
			return nil
		}
		since = vs[len(vs)-1].Added.Add(time.Microsecond)
	}
}

// Index returns up to limit versions added at or after since, oldest
// first.
func (d *DB) Index(ctx context.Context, since time.Time, limit int) ([]Version, error) {
	return scanVersions(d.query(ctx, `SELECT `+versionCols+` FROM versions WHERE added >= ? ORDER BY added LIMIT ?`, since.UnixMicro(), limit))
}

// Module is a module in the catalog: its path and the versions held.
type Module struct {
	Path     string
	Versions []Version // in the order they were added
}

// Modules returns up to limit modules whose paths sort after after, in
// path order, with their versions; if match is not empty, only paths
// containing it (case-insensitively) are listed.
func (d *DB) Modules(ctx context.Context, after, match string, limit int) ([]Module, error) {
	cond, args := `path > ? AND pruned = 0`, []any{after}
	if match != "" {
		cond += ` AND LOWER(path) LIKE ? ESCAPE '\'`
		args = append(args, "%"+likeEscape(strings.ToLower(match))+"%")
	}
	args = append(args, limit)
	vs, err := scanVersions(d.query(ctx, `SELECT `+versionCols+` FROM versions WHERE pruned = 0 AND path IN (
		SELECT DISTINCT path FROM versions WHERE `+cond+` ORDER BY path LIMIT ?
	) ORDER BY path, added`, args...))
	if err != nil {
		return nil, err
	}
	var mods []Module
	for _, v := range vs {
		if n := len(mods); n == 0 || mods[n-1].Path != v.Path {
			mods = append(mods, Module{Path: v.Path})
		}
		mods[len(mods)-1].Versions = append(mods[len(mods)-1].Versions, v)
	}
	return mods, nil
}

// likeEscape escapes LIKE's wildcards in s.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Totals are the sizes of what is held (not pruned).
type Totals struct {
	Modules, Versions, Bytes int64
}

// Totals returns the number of modules and versions held and the bytes of
// their zips.
func (d *DB) Totals(ctx context.Context) (Totals, error) {
	var t Totals
	err := d.queryRow(ctx, `SELECT COUNT(DISTINCT path), COUNT(*), COALESCE(SUM(size), 0) FROM versions WHERE pruned = 0`).Scan(&t.Modules, &t.Versions, &t.Bytes)
	if err != nil {
		return Totals{}, fmt.Errorf("meta: %w", err)
	}
	return t, nil
}

// Recent returns the n versions added last, newest first (pruned ones
// included: it is the index's history).
func (d *DB) Recent(ctx context.Context, n int) ([]Version, error) {
	return scanVersions(d.query(ctx, `SELECT `+versionCols+` FROM versions ORDER BY added DESC LIMIT ?`, n))
}
