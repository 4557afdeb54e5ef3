package mirror_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/modtest"
	"github.com/agora-mirror/agora/internal/store"
	"github.com/agora-mirror/agora/internal/upstream"
)

// BenchmarkFill measures one version's cold fill as the go command asks
// for it: its .mod, its .info, then its zip, each a miss, from a test
// upstream on 127.0.0.1 into a disk store and a SQLite catalog, with no
// checksum database (hashes pinned), as bench/coldfill runs Agora. The
// store is under AGORA_BENCH_DIR when set (to compare file systems), else
// in the test's temporary directory.
func BenchmarkFill(b *testing.B) {
	up := modtest.NewUpstream(b)
	rnd := rand.New(rand.NewPCG(1, 2))
	var paths []string
	for i := range b.N {
		p := fmt.Sprintf("example.com/fill/m%06d", i)
		// A file of source-like text that compresses about as a real one.
		var src strings.Builder
		src.WriteString("package m\n\n")
		for src.Len() < 16<<10 {
			fmt.Fprintf(&src, "var v%d = %q\n", rnd.IntN(1e6), strings.Repeat("x", rnd.IntN(40)))
		}
		up.Add(modtest.MustBuild(b, modtest.Module{Path: p, Version: "v1.0.0", Files: map[string]string{
			"go.mod": "module " + p + "\n\ngo 1.21\n",
			"m.go":   src.String(),
		}}))
		paths = append(paths, p)
	}
	dir := b.TempDir()
	if d := os.Getenv("AGORA_BENCH_DIR"); d != "" {
		var err error
		if dir, err = os.MkdirTemp(d, "fill-*"); err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
	}
	st, err := store.OpenDisk(dir)
	if err != nil {
		b.Fatal(err)
	}
	chain, err := upstream.ParseChain(up.URL, fastUpstream)
	if err != nil {
		b.Fatal(err)
	}
	m := mirror.New(mirror.Options{Store: st, Catalog: modtest.Meta(b), Chain: chain})
	defer m.Close(context.Background())
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		p := paths[i]
		if _, _, err := m.Mod(ctx, p, "v1.0.0"); err != nil {
			b.Fatal(err)
		}
		if _, _, err := m.Info(ctx, p, "v1.0.0"); err != nil {
			b.Fatal(err)
		}
		obj, _, err := m.Zip(ctx, p, "v1.0.0")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, obj); err != nil {
			b.Fatal(err)
		}
		obj.Close()
	}
}
