package modtest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/agora-mirror/agora/internal/meta"
)

// Meta opens a new metadata database (SQLite, in a temporary directory),
// closed when the test ends.
func Meta(t testing.TB) *meta.DB {
	t.Helper()
	db, err := meta.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "agora.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
