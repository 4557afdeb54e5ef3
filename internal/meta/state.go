package meta

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// State returns the value of the state key and when it was last written,
// or ErrNotFound.
func (d *DB) State(ctx context.Context, key string) ([]byte, time.Time, error) {
	var value string
	var updated int64
	err := d.queryRow(ctx, `SELECT value, updated FROM state WHERE key = ?`, key).Scan(&value, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, ErrNotFound
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("meta: %w", err)
	}
	return []byte(value), time.UnixMicro(updated).UTC(), nil
}

// PutState sets the state key to value (text: JSON or a note).
func (d *DB) PutState(ctx context.Context, key string, value []byte) error {
	_, err := d.db.ExecContext(ctx, d.q(`INSERT INTO state (key, value, updated) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated`),
		key, string(value), time.Now().UnixMicro())
	if err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	return nil
}

// SwapState sets the state key to new if its value is old (nil or empty
// old: if the key has no value), and reports whether it did. It is the
// compare-and-swap that keeps the checksum database's tree head moving
// forward only, whichever replica writes it.
func (d *DB) SwapState(ctx context.Context, key string, old, new []byte) (bool, error) {
	var res sql.Result
	var err error
	now := time.Now().UnixMicro()
	if len(old) == 0 {
		res, err = d.db.ExecContext(ctx, d.q(`INSERT INTO state (key, value, updated) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING`),
			key, string(new), now)
	} else {
		res, err = d.db.ExecContext(ctx, d.q(`UPDATE state SET value = ?, updated = ? WHERE key = ? AND value = ?`),
			string(new), now, key, string(old))
	}
	if err != nil {
		return false, fmt.Errorf("meta: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("meta: %w", err)
	}
	return n == 1, nil
}
