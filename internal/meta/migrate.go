package meta

import (
	"context"
	"fmt"
	"time"
)

// migrations are the schema's versions, applied in order; a migration,
// once released, is never edited: changes are new entries. The SQL is
// common to SQLite and PostgreSQL.
var migrations = []string{
	// 1: versions held, and small mutable state.
	`CREATE TABLE versions (
		path         TEXT NOT NULL,
		version      TEXT NOT NULL,
		zip_hash     TEXT NOT NULL,
		mod_hash     TEXT NOT NULL,
		size         BIGINT NOT NULL,
		origin       TEXT NOT NULL,
		verification TEXT NOT NULL,
		added        BIGINT NOT NULL UNIQUE, -- microseconds since 1970, the index's order
		PRIMARY KEY (path, version)
	);
	CREATE TABLE state (
		key     TEXT PRIMARY KEY,
		value   TEXT NOT NULL,
		updated BIGINT NOT NULL
	);`,
	// 2: when each version was last requested (for prune), and versions
	// pruned: their files are gone, their index entry stays.
	`ALTER TABLE versions ADD COLUMN last_used BIGINT NOT NULL DEFAULT 0;
	ALTER TABLE versions ADD COLUMN pruned BIGINT NOT NULL DEFAULT 0;`,
	// 3: client access tokens, stored as SHA-256 hashes.
	`CREATE TABLE tokens (
		name     TEXT PRIMARY KEY,
		hash     TEXT NOT NULL UNIQUE,
		patterns TEXT NOT NULL,
		created  BIGINT NOT NULL,
		revoked  BIGINT NOT NULL DEFAULT 0
	);`,
	// 4: hashes pinned at first fetch, for versions no checksum database
	// vouches for.
	`CREATE TABLE pins (
		path    TEXT NOT NULL,
		version TEXT NOT NULL,
		file    TEXT NOT NULL,
		hash    TEXT NOT NULL,
		PRIMARY KEY (path, version, file)
	);`,
}

// migrationLock serializes migrations between replicas (PostgreSQL).
const migrationLock = "agora schema migrations"

// migrate applies the migrations the database lacks, each in its own
// transaction, recording each in schema_migrations.
func (d *DB) migrate(ctx context.Context) error {
	unlock, err := d.Lock(ctx, migrationLock)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := d.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		applied BIGINT NOT NULL
	)`); err != nil {
		return fmt.Errorf("meta: creating schema_migrations: %w", err)
	}
	var have int
	if err := d.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("meta: reading schema version: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("meta: the database's schema is version %d, newer than this Agora knows (%d): run a newer Agora", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		if err := d.apply(ctx, v); err != nil {
			return fmt.Errorf("meta: migration %d: %w", v, err)
		}
	}
	return nil
}

// apply runs migration v in a transaction, unless another process applied
// it first. (SQLite's transactions here take the write lock at BEGIN, so
// the check and the change are atomic; PostgreSQL's are under the
// migration lock.)
func (d *DB) apply(ctx context.Context, v int) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return err
	}
	if have >= v {
		return nil
	}
	if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, d.q(`INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`), v, time.Now().UnixMicro()); err != nil {
		return err
	}
	return tx.Commit()
}

// SchemaVersion returns the schema version of the database.
func (d *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := d.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("meta: %w", err)
	}
	return v, nil
}
