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
	// One statement: the update on conflict changes nothing, and makes
	// RETURNING give the row recorded, new or old.
	s, err := d.stmt(ctx, `INSERT INTO pins (path, version, file, hash) VALUES (?, ?, ?, ?)
		ON CONFLICT (path, version, file) DO UPDATE SET hash = pins.hash RETURNING hash`)
	if err != nil {
		return "", err
	}
	var h string
	if err := s.QueryRowContext(ctx, path, version, file, hash).Scan(&h); err != nil {
		return "", fmt.Errorf("meta: %w", err)
	}
	return h, nil
}

// PinnedHash returns the hash pinned for a version's file, or ErrNotFound.
func (d *DB) PinnedHash(ctx context.Context, path, version, file string) (string, error) {
	s, err := d.stmt(ctx, `SELECT hash FROM pins WHERE path = ? AND version = ? AND file = ?`)
	if err != nil {
		return "", err
	}
	var h string
	err = s.QueryRowContext(ctx, path, version, file).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("meta: %w", err)
	}
	return h, nil
}
