package meta

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrExist is returned when creating a token whose name is taken.
var ErrExist = errors.New("meta: already exists")

// Token is a client access token as stored: its SHA-256 hash, never the
// token itself.
type Token struct {
	Name     string
	Hash     string // hex SHA-256 of the token
	Patterns string // module path patterns (GOPRIVATE syntax) it may read
	Created  time.Time
	Revoked  time.Time // zero if in force
}

// CreateToken records a token.
func (d *DB) CreateToken(ctx context.Context, t Token) error {
	// One statement, so that of two replicas creating the same name one
	// gets ErrExist rather than a constraint error.
	res, err := d.db.ExecContext(ctx, d.q(`INSERT INTO tokens (name, hash, patterns, created) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`),
		t.Name, t.Hash, t.Patterns, time.Now().UnixMicro())
	if err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("meta: %w", err)
	} else if n == 0 {
		return fmt.Errorf("token %q: %w", t.Name, ErrExist)
	}
	return nil
}

// RevokeToken revokes the named token; ErrNotFound if there is none in
// force.
func (d *DB) RevokeToken(ctx context.Context, name string) error {
	res, err := d.db.ExecContext(ctx, d.q(`UPDATE tokens SET revoked = ? WHERE name = ? AND revoked = 0`), time.Now().UnixMicro(), name)
	if err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("token %q: %w", name, ErrNotFound)
	}
	return nil
}

func scanToken(row scanner) (Token, error) {
	var t Token
	var created, revoked int64
	err := row.Scan(&t.Name, &t.Hash, &t.Patterns, &created, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, ErrNotFound
	}
	if err != nil {
		return Token{}, fmt.Errorf("meta: %w", err)
	}
	t.Created = time.UnixMicro(created).UTC()
	if revoked != 0 {
		t.Revoked = time.UnixMicro(revoked).UTC()
	}
	return t, nil
}

// TokenByHash returns the token in force with the given hash, or
// ErrNotFound.
func (d *DB) TokenByHash(ctx context.Context, hash string) (Token, error) {
	return scanToken(d.queryRow(ctx, `SELECT name, hash, patterns, created, revoked FROM tokens WHERE hash = ? AND revoked = 0`, hash))
}

// Tokens returns every token, revoked ones included, by name.
func (d *DB) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := d.query(ctx, `SELECT name, hash, patterns, created, revoked FROM tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	defer rows.Close()
	var ts []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, rows.Err()
}
