package direct

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"runtime"
	"sync"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// zipLevel is the deflate level of archive/zip's own compressor, which
// golang.org/x/mod/zip.Create (and so the go command) uses.
const zipLevel = 5

// parallelMax is the largest file deflated ahead of its turn, in memory;
// a larger one is deflated as it is written, like Create does. Go source
// files are mostly well below it.
const parallelMax = 256 << 10

// maxDeflaters bounds the workers of one createZip, whatever GOMAXPROCS.
const maxDeflaters = 8

// compressors holds deflate compressors at zipLevel (about 800 KB each),
// for reuse across files and zips, as archive/zip keeps its own.
var compressors sync.Pool

// createZip writes the module zip of mv as golang.org/x/mod/zip.Create
// writes it, byte for byte, but deflates up to GOMAXPROCS files at once
// (at most maxDeflaters): on a tagged version, Create's compressing one
// file after another was most of the time (BENCHMARKS.md, "Direct git
// fetch"). files must be the files modzip.CheckFiles accepted, in the
// order of its Valid list: x/mod decides which files a zip holds and
// checks their names and sizes, and archive/zip writes every header and
// descriptor. Only the deflate streams of small files are made ahead, by
// the same compressor and level archive/zip uses, whose output does not
// depend on how its input is split into writes. Each file is read twice
// (deflated ahead, then counted and checksummed by archive/zip), as well
// as by the caller's hashing.
func createZip(w io.Writer, mv module.Version, files []modzip.File) error {
	if vers := module.CanonicalVersion(mv.Version); vers != mv.Version {
		return fmt.Errorf("version %q is not canonical (should be %q)", mv.Version, vers)
	}
	if err := module.Check(mv.Path, mv.Version); err != nil {
		return err
	}
	prefix := mv.Path + "@" + mv.Version + "/"
	procs := min(runtime.GOMAXPROCS(0), maxDeflaters)
	// ahead holds the files taken in order, at most 2*procs waiting to be
	// written, which with the procs being deflated bounds the deflated
	// data held to about 3*procs times parallelMax. The workers are
	// waited for on every way out, so that none still reads files the
	// caller is about to close.
	ahead := make(chan *deflated, 2*procs)
	jobs := make(chan *deflated)
	stop := make(chan struct{})
	var workers sync.WaitGroup
	defer workers.Wait()
	defer close(stop)
	for range procs {
		workers.Go(func() {
			for d := range jobs {
				d.deflate()
			}
		})
	}
	go func() {
		defer close(ahead)
		defer close(jobs)
		for _, f := range files {
			d := &deflated{file: f, done: make(chan struct{})}
			info, err := f.Lstat()
			if err != nil {
				d.err = err
			} else {
				d.size = info.Size()
			}
			select {
			case ahead <- d:
			case <-stop:
				return
			}
			if d.err != nil || d.size > parallelMax {
				close(d.done) // written in its turn
				continue
			}
			select {
			case jobs <- d:
			case <-stop:
				return
			}
		}
	}()

	zw := zip.NewWriter(w)
	// archive/zip calls the compressor inside Create, on this goroutine,
	// so cur is the file being created when it runs.
	var cur *deflated
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		if cur.data == nil {
			return newCompressor(out), nil
		}
		return &madeAhead{out: out, data: cur.data}, nil
	})
	for d := range ahead {
		<-d.done
		if d.err != nil {
			return d.err
		}
		cur = d
		fw, err := zw.Create(prefix + d.file.Path())
		if err != nil {
			return err
		}
		// The file's bytes go through archive/zip either way, which
		// counts and checksums them; only the compressing is skipped
		// for data deflated ahead.
		if err := copyDeclared(fw, d.file, d.size); err != nil {
			return err
		}
		d.data = nil
	}
	return zw.Close()
}

// deflated is a file of a zip, with its deflate stream when made ahead.
type deflated struct {
	file modzip.File
	size int64 // as Lstat reports it
	done chan struct{}
	data []byte // the deflate stream; nil when deflated in turn
	err  error
}

// deflate makes d's deflate stream and closes d.done.
func (d *deflated) deflate() {
	defer close(d.done)
	var buf bytes.Buffer
	fw := newCompressor(&buf)
	d.err = copyDeclared(fw, d.file, d.size)
	if err := fw.Close(); d.err == nil {
		d.err = err
	}
	if d.err == nil {
		d.data = buf.Bytes()
	}
}

// pooledCompressor is a compressor from the pool, writing to one
// destination; closing it ends the stream and puts it back.
type pooledCompressor struct{ *flate.Writer }

// Close ends the deflate stream and returns the compressor to the pool.
func (c pooledCompressor) Close() error {
	err := c.Writer.Close()
	compressors.Put(c.Writer)
	return err
}

// newCompressor returns a compressor at zipLevel writing to w, from the
// pool when one is there.
func newCompressor(w io.Writer) pooledCompressor {
	if fw, ok := compressors.Get().(*flate.Writer); ok {
		fw.Reset(w)
		return pooledCompressor{fw}
	}
	fw, _ := flate.NewWriter(w, zipLevel) // the level is valid: no error
	return pooledCompressor{fw}
}

// copyDeclared copies f to w, failing as Create does when f holds more
// than its declared size.
func copyDeclared(w io.Writer, f modzip.File, size int64) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	lr := &io.LimitedReader{R: rc, N: size + 1}
	if _, err := io.Copy(w, lr); err != nil {
		return err
	}
	if lr.N <= 0 {
		return fmt.Errorf("file %q is larger than declared size", f.Path())
	}
	return nil
}

// madeAhead stands in for the compressor of a file deflated ahead: it
// drops the file's bytes written to it (archive/zip has counted and
// checksummed them before they reach it) and writes the deflate stream
// made from them when closed.
type madeAhead struct {
	out  io.Writer
	data []byte
}

func (c *madeAhead) Write(p []byte) (int, error) { return len(p), nil }

func (c *madeAhead) Close() error {
	_, err := c.out.Write(c.data)
	return err
}
