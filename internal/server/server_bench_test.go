package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/modtest"
	"github.com/agora-mirror/agora/internal/protocol"
	"github.com/agora-mirror/agora/internal/store"
)

// newBenchHandler returns a handler over a disk store that already holds
// github.com/Bench/Mark@v1.0.0, recorded in its catalog, with no upstream.
func newBenchHandler(b *testing.B) (*Handler, *modtest.Built) {
	dir := b.TempDir()
	m := modtest.MustBuild(b, modtest.Module{Path: "github.com/Bench/Mark", Version: "v1.0.0",
		Files: map[string]string{"go.mod": "module github.com/Bench/Mark\n", "a.go": "package mark\n"}})
	if err := modtest.WriteTree(dir+"/mod", m); err != nil {
		b.Fatal(err)
	}
	st, err := store.OpenDisk(dir)
	if err != nil {
		b.Fatal(err)
	}
	cat := modtest.Meta(b)
	if _, _, err := cat.AddVersion(context.Background(), meta.Version{Path: m.Path, Version: m.Version,
		ZipHash: m.ZipHash, ModHash: m.ModHash, Size: int64(len(m.Zip)), Origin: "bench", Verification: meta.Pinned}); err != nil {
		b.Fatal(err)
	}
	mi := mirror.New(mirror.Options{Store: st, Catalog: cat})
	return New(Options{Mirror: mi, Logger: slog.New(slog.DiscardHandler)}), m
}

// discard is a minimal ResponseWriter, so the benchmark measures the
// handler rather than a recorder.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}
func (d *discard) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(io.Discard, r)
}

func benchServe(b *testing.B, path string) {
	h, _ := newBenchHandler(b)
	req := httptest.NewRequest("GET", path, nil)
	// Warm the caches once.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		b.Fatalf("GET %s = %d %s", path, rec.Code, rec.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.ServeHTTP(&discard{h: make(http.Header)}, req)
	}
}

func BenchmarkServeInfoHit(b *testing.B) { benchServe(b, "/github.com/!bench/!mark/@v/v1.0.0.info") }
func BenchmarkServeModHit(b *testing.B)  { benchServe(b, "/github.com/!bench/!mark/@v/v1.0.0.mod") }
func BenchmarkServeZipHit(b *testing.B)  { benchServe(b, "/github.com/!bench/!mark/@v/v1.0.0.zip") }
func BenchmarkServeListHeld(b *testing.B) {
	benchServe(b, "/github.com/!bench/!mark/@v/list")
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.Parse("/github.com/!burnt!sushi/toml/@v/v1.4.0.zip"); err != nil {
			b.Fatal(err)
		}
	}
}
