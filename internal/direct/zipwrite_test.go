package direct

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// memFile is a file of a zip held in memory.
type memFile struct {
	name string
	data []byte
	size int64 // as Lstat reports it
}

func (f memFile) Path() string                 { return f.name }
func (f memFile) Lstat() (fs.FileInfo, error)  { return memInfo(f), nil }
func (f memFile) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(f.data)), nil }

type memInfo memFile

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return 0o644 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }

// TestCreateZipIsCreate checks that createZip writes the bytes
// golang.org/x/mod/zip.Create writes, for files deflated ahead and in
// turn (larger than parallelMax), empty and incompressible files, and
// names archive/zip marks as UTF-8.
func TestCreateZipIsCreate(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	text := func(n int) []byte {
		var b bytes.Buffer
		for b.Len() < n {
			fmt.Fprintf(&b, "func f%d() int { return %d } // %s\n", rnd.IntN(1000), rnd.IntN(1e6), strings.Repeat("z", rnd.IntN(30)))
		}
		return b.Bytes()[:n]
	}
	noise := make([]byte, 300<<10)
	for i := range noise {
		noise[i] = byte(rnd.Uint32())
	}
	var files []modzip.File
	add := func(name string, data []byte) {
		files = append(files, memFile{name: name, data: data, size: int64(len(data))})
	}
	add("go.mod", []byte("module example.com/zipped\n\ngo 1.21\n"))
	add("LICENSE", text(1500))
	add("empty.go", nil)
	add("noise.bin", noise)
	add("big/large.go", text(parallelMax+12345))
	add("café/naïve.go", text(3000))
	add("a~b/tilde.go", text(100))
	for i := range 40 {
		add(fmt.Sprintf("pkg%d/f%d.go", i%5, i), text(rnd.IntN(40<<10)))
	}
	add("z/last-large.go", text(2*parallelMax))

	mv := module.Version{Path: "example.com/zipped", Version: "v1.2.3"}
	var want, got bytes.Buffer
	if err := modzip.Create(&want, mv, files); err != nil {
		t.Fatal(err)
	}
	if err := createZip(&got, mv, files); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("createZip wrote %d bytes that differ from Create's %d", got.Len(), want.Len())
	}
	if _, err := modzip.CheckZip(mv, writeTemp(t, got.Bytes())); err != nil {
		t.Fatalf("CheckZip: %v", err)
	}
}

// TestCreateZipRefusesAGrownFile checks that createZip, like Create,
// fails on a file holding more than its declared size, in both of its
// ways (deflated ahead and in turn).
func TestCreateZipRefusesAGrownFile(t *testing.T) {
	mv := module.Version{Path: "example.com/zipped", Version: "v1.0.0"}
	mod := []byte("module example.com/zipped\n")
	for _, n := range []int{10, parallelMax + 10} {
		data := bytes.Repeat([]byte("x"), n)
		files := []modzip.File{memFile{name: "go.mod", data: mod, size: int64(len(mod))},
			memFile{name: "grown.go", data: data, size: int64(n - 5)}}
		if err := modzip.Create(io.Discard, mv, files); err == nil {
			t.Fatalf("file of %d bytes declared as %d: Create succeeded", n, n-5)
		}
		if err := createZip(io.Discard, mv, files); err == nil {
			t.Errorf("file of %d bytes declared as %d: createZip succeeded", n, n-5)
		}
	}
}

// writeTemp writes data to a file of its own and returns its name.
func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "m.zip")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// BenchmarkCreateZip compares createZip with golang.org/x/mod/zip.Create
// on a module of 350 files of 9 KiB of Go-like text (the size of the last
// release in BenchmarkTwentyVersions).
func BenchmarkCreateZip(b *testing.B) {
	rnd := rand.New(rand.NewPCG(5, 6))
	var files []modzip.File
	for i := range 350 {
		var t bytes.Buffer
		for t.Len() < 9<<10 {
			fmt.Fprintf(&t, "\tx%d := f(%d, %q)\n", rnd.IntN(100), rnd.IntN(1e5), strings.Repeat("y", rnd.IntN(20)))
		}
		files = append(files, memFile{name: fmt.Sprintf("p%d/f%d.go", i%20, i), data: t.Bytes(), size: int64(t.Len())})
	}
	mv := module.Version{Path: "example.com/bench", Version: "v1.0.0"}
	for _, way := range []struct {
		name   string
		create func(io.Writer, module.Version, []modzip.File) error
	}{{"Create", modzip.Create}, {"createZip", createZip}} {
		b.Run(way.name, func(b *testing.B) {
			for b.Loop() {
				if err := way.create(io.Discard, mv, files); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// countedFile is a memFile that counts its open readers in *open, and
// fails to open when broken.
type countedFile struct {
	memFile
	open   *atomic.Int32
	broken bool
}

func (f countedFile) Open() (io.ReadCloser, error) {
	if f.broken {
		return nil, errors.New("cannot open")
	}
	f.open.Add(1)
	return countedReader{Reader: bytes.NewReader(f.data), open: f.open}, nil
}

type countedReader struct {
	io.Reader
	open *atomic.Int32
}

func (r countedReader) Close() error { r.open.Add(-1); return nil }

// TestCreateZipStopsReadingOnError checks that when createZip fails, no
// file of the zip is still being read once it has returned: the caller
// closes and removes the files next.
func TestCreateZipStopsReadingOnError(t *testing.T) {
	mv := module.Version{Path: "example.com/zipped", Version: "v1.0.0"}
	var open atomic.Int32
	data := bytes.Repeat([]byte("package p // some text to deflate\n"), 6000)
	var files []modzip.File
	for i := range 60 {
		files = append(files, countedFile{memFile: memFile{name: fmt.Sprintf("f%d.go", i), data: data, size: int64(len(data))},
			open: &open, broken: i == 2})
	}
	for range 20 {
		if err := createZip(io.Discard, mv, files); err == nil {
			t.Fatal("createZip succeeded with a file that cannot be opened")
		}
		if n := open.Load(); n != 0 {
			t.Fatalf("createZip returned with %d files still open", n)
		}
	}
}
