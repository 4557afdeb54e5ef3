package meta

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Pin records hash as the hash of a version's file ("zip" or "go.mod") if
// none is recorded yet, and returns the hash recorded: hash itself the
// first time, the first one ever recorded after that (whichever replica
// recorded it).
func (d *DB) Pin(ctx context.Context, path, version, file, hash string) (string, error) {
	// One statement when the hash is new (RETURNING gives the row
	// inserted); a second to read the one recorded before.
	var h string
	err := d.queryRow(ctx, `INSERT INTO pins (path, version, file, hash) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING hash`,
		path, version, file, hash).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return d.PinnedHash(ctx, path, version, file)
	}
	if err != nil {
		return "", fmt.Errorf("meta: %w", err)
	}
	return h, nil
}

// PinnedHash returns the hash pinned for a version's file, or ErrNotFound.
func (d *DB) PinnedHash(ctx context.Context, path, version, file string) (string, error) {
	var h string
	err := d.queryRow(ctx, `SELECT hash FROM pins WHERE path = ? AND version = ? AND file = ?`, path, version, file).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("meta: %w", err)
	}
	return h, nil
}
