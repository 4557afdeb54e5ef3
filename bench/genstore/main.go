// Command genstore generates a synthetic Agora store: a directory of module
// versions in the GOPROXY file-tree layout that Agora's disk store uses,
//
//	<dir>/mod/<escaped module>/@v/<escaped version>.info
//	<dir>/mod/<escaped module>/@v/<escaped version>.mod
//	<dir>/mod/<escaped module>/@v/<escaped version>.zip
//	<dir>/mod/<escaped module>/@v/list
//
// so that "agora serve --upstream off --sumdb off --data-dir <dir>" serves
// every generated version without any network, for load, soak and
// throughput tests. The same tree also works as GOPROXY=file://<dir>/mod.
//
// Usage:
//
//	go run ./bench/genstore -dir D -modules 1000 -versions 3 -zipsize 16384 [-big 1:34MiB]
//
// Modules are named <prefix>/mNNNNN (prefix example.com/gen by default; a
// prefix with upper-case letters exercises case-encoding), versions are
// v1.0.0, v1.1.0, ... Each version gets an .info ({"Version":..,"Time":..}),
// a .mod ("module <path>\n\ngo 1.21\n") and a zip made with
// golang.org/x/mod/zip.Create holding that go.mod and one file of random,
// incompressible bytes, so that the zip is roughly -zipsize bytes. The content
// is a pure function of -seed, the module and the version: running genstore
// twice with the same flags gives the same files. Versions are written by a
// pool of -workers goroutines, with a progress line every 10%.
//
// -deps N gives each module a go.mod requiring N modules generated before it
// (chosen by the seed), making a dependency graph, and -project DIR writes a
// main module requiring the graph's roots, for `go mod download all` cold
// fill benchmarks (bench/coldfill).
//
// -big N:SIZE adds N more modules <prefix>/big/bNN with one version v1.0.0
// each, whose zip holds SIZE bytes of random content (SIZE takes the
// suffixes KiB, MiB, GiB, or none for bytes), for throughput benchmarks.
//
// The request paths a load generator needs are written to <dir>/urls.txt (or
// -urls FILE; "-" for standard output), one per line: for every version its
// .info, .mod and .zip, and for every module its @v/list. The big zips'
// paths go to a separate urls-big.txt beside it, so that a soak mixing
// urls.txt does not spend its time on a few huge files.
//
// Every version is also recorded in the metadata database Agora opens by
// default, <dir>/agora.db (SQLite), with its hashes, so that lists, the
// catalog and the index know it; -meta=false skips that.
//
// genstore writes files in place, without temporary files or syncs: it is an
// offline tool, to be run before the server starts.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/agora-mirror/agora/internal/gosum"
	"github.com/agora-mirror/agora/internal/meta"
)

// modPath returns the path of generated module i.
func (c config) modPath(i int) string {
	width := max(5, len(strconv.Itoa(c.modules-1)))
	return fmt.Sprintf("%s/m%0*d", c.prefix, width, i)
}

type config struct {
	dir      string
	modules  int
	versions int
	zipSize  int64
	bigCount int
	bigSize  int64
	prefix   string
	seed     uint64
	workers  int
	meta     bool
	deps     int
	project  string
	urls     string
	list     bool
}

func main() {
	var c config
	var big string
	flag.StringVar(&c.dir, "dir", "", "store directory to create or add to (required)")
	flag.IntVar(&c.modules, "modules", 1000, "number of modules")
	flag.IntVar(&c.versions, "versions", 3, "versions per module (v1.0.0, v1.1.0, ...)")
	size := flag.String("zipsize", "16384", "approximate size of each zip (bytes, or with KiB/MiB/GiB)")
	flag.StringVar(&big, "big", "", "N:SIZE adds N modules with one big zip of SIZE each (e.g. 1:34MiB)")
	flag.StringVar(&c.prefix, "prefix", "example.com/gen", "module path prefix")
	flag.Uint64Var(&c.seed, "seed", 1, "seed of the random content")
	flag.IntVar(&c.workers, "workers", runtime.GOMAXPROCS(0), "goroutines writing versions")
	flag.BoolVar(&c.meta, "meta", true, "record the versions in <dir>/agora.db")
	flag.StringVar(&c.urls, "urls", "", "file to write the request paths to (default <dir>/urls.txt; - for standard output)")
	flag.IntVar(&c.deps, "deps", 0, "each module's go.mod requires this many modules generated before it (a dependency graph)")
	flag.StringVar(&c.project, "project", "", "write a main module into this directory whose go.mod requires the modules nothing else requires (with -deps: the graph's roots)")
	flag.BoolVar(&c.list, "list", true, "also write each module's @v/list file (the GOPROXY file tree has it; Agora ignores it)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: genstore -dir D [-modules N] [-versions N] [-zipsize SIZE] [-big N:SIZE] [flags]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 0 || c.dir == "" {
		flag.Usage()
		os.Exit(2)
	}
	var err error
	if c.zipSize, err = parseSize(*size); err != nil {
		fatalf("-zipsize: %v", err)
	}
	if big != "" {
		n, s, ok := strings.Cut(big, ":")
		if c.bigCount, err = strconv.Atoi(n); !ok || err != nil || c.bigCount < 0 {
			fatalf("-big %q: want N:SIZE", big)
		}
		if c.bigSize, err = parseSize(s); err != nil {
			fatalf("-big: %v", err)
		}
	}
	if c.modules < 0 || c.versions < 1 || c.workers < 1 {
		fatalf("-modules must be >= 0, -versions and -workers >= 1")
	}
	if c.urls == "" {
		c.urls = filepath.Join(c.dir, "urls.txt")
	}
	if err := run(c); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "genstore: "+format+"\n", args...)
	os.Exit(1)
}

// parseSize parses "16384", "16KiB", "34MiB", "1GiB" (KB, MB, GB and K, M, G
// are taken as the same binary units).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if v, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q too large", s)
	}
	return n * mult, nil
}

// job is one module to write, with its versions v1.0.0 .. v1.<nvers-1>.0.
type job struct {
	path     string // module path
	modIndex int    // index of the module, for the seed and the time
	nvers    int
	size     int64 // approximate zip size
}

func run(c config) error {
	start := time.Now()
	modPath := c.modPath
	bigPath := func(i int) string { return fmt.Sprintf("%s/big/b%02d", c.prefix, i) }
	for _, p := range []string{modPath(0), bigPath(0)} {
		if err := module.CheckPath(p); err != nil {
			return fmt.Errorf("-prefix %q makes invalid module paths: %v", c.prefix, err)
		}
	}
	total := c.modules*c.versions + c.bigCount
	if total == 0 {
		return errors.New("nothing to generate")
	}
	if err := os.MkdirAll(filepath.Join(c.dir, "mod"), 0o755); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "genstore: %d modules x %d versions (zips ~%d bytes) + %d big zips (%d bytes) into %s, %d workers\n",
		c.modules, c.versions, c.zipSize, c.bigCount, c.bigSize, c.dir, c.workers)

	// One goroutine records versions in the metadata database, in the
	// order they are written.
	records := make(chan meta.Version, 1024)
	recorded := make(chan error, 1)
	if c.meta {
		md, err := meta.Open(context.Background(), "sqlite:"+filepath.Join(c.dir, "agora.db"))
		if err != nil {
			return err
		}
		defer md.Close()
		go func() {
			var err error
			for r := range records {
				if err == nil {
					_, _, err = md.AddVersion(context.Background(), r)
				}
			}
			recorded <- err
		}()
	} else {
		go func() {
			for range records {
			}
			recorded <- nil
		}()
	}

	jobs := make(chan job, 4*c.workers)
	var (
		done     atomic.Int64
		bytesOut atomic.Int64
		errOnce  sync.Once
		firstErr error
		failed   atomic.Bool
		wg       sync.WaitGroup
	)
	for range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := writer{records: records}
			for j := range jobs {
				if failed.Load() {
					continue // drain
				}
				err := w.module(c, j, func(n int64) {
					bytesOut.Add(n)
					d := done.Add(1)
					if d*10/int64(total) != (d-1)*10/int64(total) {
						el := time.Since(start)
						fmt.Fprintf(os.Stderr, "genstore: %3d%%  %d/%d versions  %.0f MiB of zips  %s  (%.0f versions/s)\n",
							d*100/int64(total), d, total, float64(bytesOut.Load())/(1<<20), el.Round(time.Second), float64(d)/el.Seconds())
					}
				})
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					failed.Store(true)
				}
			}
		}()
	}
	for i := 0; i < c.modules && !failed.Load(); i++ {
		jobs <- job{path: modPath(i), modIndex: i, nvers: c.versions, size: c.zipSize}
	}
	for i := 0; i < c.bigCount && !failed.Load(); i++ {
		jobs <- job{path: bigPath(i), modIndex: c.modules + i, nvers: 1, size: c.bigSize}
	}
	close(jobs)
	wg.Wait()
	close(records)
	if err := <-recorded; err != nil && firstErr == nil {
		firstErr = fmt.Errorf("recording versions in agora.db: %w", err)
	}
	if firstErr != nil {
		return firstErr
	}

	// The request paths, in a deterministic order.
	if err := writeURLs(c.urls, func(w *bufio.Writer) {
		for i := range c.modules {
			ep, _ := module.EscapePath(modPath(i))
			for v := range c.versions {
				ev, _ := module.EscapeVersion(fmt.Sprintf("v1.%d.0", v))
				fmt.Fprintf(w, "/%s/@v/%s.info\n/%s/@v/%s.mod\n/%s/@v/%s.zip\n", ep, ev, ep, ev, ep, ev)
			}
			fmt.Fprintf(w, "/%s/@v/list\n", ep)
		}
	}); err != nil {
		return err
	}
	if c.bigCount > 0 {
		bigURLs := filepath.Join(filepath.Dir(c.urls), "urls-big.txt")
		if c.urls == "-" {
			bigURLs = filepath.Join(c.dir, "urls-big.txt")
		}
		if err := writeURLs(bigURLs, func(w *bufio.Writer) {
			for i := range c.bigCount {
				ep, _ := module.EscapePath(bigPath(i))
				fmt.Fprintf(w, "/%s/@v/v1.0.0.zip\n", ep)
			}
		}); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "genstore: big zip paths in %s\n", bigURLs)
	}
	if c.urls != "-" {
		fmt.Fprintf(os.Stderr, "genstore: request paths in %s\n", c.urls)
	}
	if c.project != "" {
		if err := writeProject(c, c.project); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "genstore: a main module requiring the graph's roots in %s\n", c.project)
	}
	fmt.Fprintf(os.Stderr, "genstore: done: %d versions, %.1f MiB of zips in %s\n",
		total, float64(bytesOut.Load())/(1<<20), time.Since(start).Round(time.Millisecond))
	return nil
}

func writeURLs(name string, fill func(*bufio.Writer)) error {
	var out io.Writer = os.Stdout
	if name != "-" {
		f, err := os.Create(name)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	w := bufio.NewWriterSize(out, 1<<20)
	fill(w)
	if err := w.Flush(); err != nil {
		return err
	}
	if f, ok := out.(*os.File); ok && f != os.Stdout {
		return f.Close()
	}
	return nil
}

// writer is one worker's reusable state.
type writer struct {
	zip     bytes.Buffer
	content []byte
	records chan<- meta.Version
}

// zipOverhead is roughly what a module zip adds to its content: two local
// headers and central directory entries with the module path in each name,
// the go.mod, and deflate's framing of incompressible data.
func zipOverhead(path, vers string) int64 {
	name := int64(len(path) + 1 + len(vers) + 1)
	return 2*(30+46+name) + 22 + 64 + 2*name + 16
}

// module writes a module's versions and its list file, calling done with
// each zip's size.
func (w *writer) module(c config, j job, done func(zipSize int64)) error {
	ep, err := module.EscapePath(j.path)
	if err != nil {
		return err
	}
	dir := filepath.Join(c.dir, "mod", filepath.FromSlash(ep), "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var list strings.Builder
	for v := range j.nvers {
		vers := fmt.Sprintf("v1.%d.0", v)
		n, err := w.version(c, j, dir, vers, v)
		if err != nil {
			return err
		}
		done(n)
		list.WriteString(vers + "\n")
	}
	if c.list {
		return os.WriteFile(filepath.Join(dir, "list"), []byte(list.String()), 0o644)
	}
	return nil
}

// version writes one version's files into dir and returns the zip's size.
func (w *writer) version(c config, j job, dir, vers string, verIndex int) (int64, error) {
	ev, err := module.EscapeVersion(vers)
	if err != nil {
		return 0, err
	}
	base := filepath.Join(dir, ev)

	// A fixed base time, a day per version and a second per module:
	// deterministic, in order, and in the past.
	t := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).
		Add(time.Duration(verIndex) * 24 * time.Hour).
		Add(time.Duration(j.modIndex%86400) * time.Second)
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{vers, t})
	if err != nil {
		return 0, err
	}
	gomod := []byte("module " + j.path + "\n\ngo 1.21\n" + requires(c, j))

	// Random content, a pure function of the seed, module and version.
	n := max(j.size-zipOverhead(j.path, vers)-int64(len(gomod)), 0)
	n -= n / 3300 // deflate's framing of incompressible data, ~0.03%
	if n > modzip.MaxZipFile-(1<<20) {
		return 0, fmt.Errorf("%s@%s: content of %d bytes exceeds the module zip limit", j.path, vers, n)
	}
	if int64(cap(w.content)) < n {
		w.content = make([]byte, n)
	}
	w.content = w.content[:n]
	var key [8 + 8 + 8]byte
	binary.LittleEndian.PutUint64(key[0:], c.seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(j.modIndex))
	binary.LittleEndian.PutUint64(key[16:], uint64(verIndex))
	rng := rand.NewChaCha8(sha256.Sum256(key[:]))
	rng.Read(w.content)

	files := []modzip.File{memFile{"go.mod", gomod}}
	if n > 0 {
		files = append(files, memFile{"data.bin", w.content})
	}
	w.zip.Reset()
	if err := modzip.Create(&w.zip, module.Version{Path: j.path, Version: vers}, files); err != nil {
		return 0, err
	}
	if err := os.WriteFile(base+".info", append(info, '\n'), 0o644); err != nil {
		return 0, err
	}
	if err := os.WriteFile(base+".mod", gomod, 0o644); err != nil {
		return 0, err
	}
	if err := os.WriteFile(base+".zip", w.zip.Bytes(), 0o644); err != nil {
		return 0, err
	}
	zipHash, err := dirhash.HashZip(base+".zip", dirhash.Hash1)
	if err != nil {
		return 0, err
	}
	modHash, err := gosum.ModHash(gomod)
	if err != nil {
		return 0, err
	}
	w.records <- meta.Version{Path: j.path, Version: vers, ZipHash: zipHash, ModHash: modHash,
		Size: int64(w.zip.Len()), Origin: "genstore", Verification: meta.Pinned}
	return int64(w.zip.Len()), nil
}

// dependencies returns the indexes of the modules module i requires: c.deps
// of the modules before it, a pure function of the seed.
func dependencies(c config, i int) []int {
	if c.deps <= 0 || i == 0 {
		return nil
	}
	var key [16]byte
	binary.LittleEndian.PutUint64(key[0:], c.seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(i))
	rng := rand.New(rand.NewChaCha8(sha256.Sum256(key[:])))
	seen := make(map[int]bool)
	var out []int
	for len(out) < min(c.deps, i) {
		if d := rng.IntN(i); !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// requires returns the require block of a generated module's go.mod.
func requires(c config, j job) string {
	deps := dependencies(c, j.modIndex)
	if len(deps) == 0 || j.modIndex >= c.modules {
		return ""
	}
	var b strings.Builder
	b.WriteString("\nrequire (\n")
	for _, d := range deps {
		fmt.Fprintf(&b, "\t%s v1.%d.0\n", c.modPath(d), c.versions-1)
	}
	b.WriteString(")\n")
	return b.String()
}

// writeProject writes a main module requiring every generated module that
// no other one requires, and a main package, into dir.
func writeProject(c config, dir string) error {
	required := make(map[int]bool)
	for i := range c.modules {
		for _, d := range dependencies(c, i) {
			required[d] = true
		}
	}
	var b strings.Builder
	b.WriteString("module example.com/project\n\ngo 1.21\n\nrequire (\n")
	for i := range c.modules {
		if !required[i] {
			fmt.Fprintf(&b, "\t%s v1.%d.0\n", c.modPath(i), c.versions-1)
		}
	}
	b.WriteString(")\n")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	os.Remove(filepath.Join(dir, "go.sum"))
	return os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
}

// memFile is a module file held in memory, for modzip.Create.
type memFile struct {
	name string
	data []byte
}

func (f memFile) Path() string                 { return f.name }
func (f memFile) Lstat() (fs.FileInfo, error)  { return memInfo(f), nil }
func (f memFile) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(f.data)), nil }

type memInfo memFile

func (i memInfo) Name() string       { return filepath.Base(i.name) }
func (i memInfo) Size() int64        { return int64(len(i.data)) }
func (i memInfo) Mode() fs.FileMode  { return 0o644 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }
