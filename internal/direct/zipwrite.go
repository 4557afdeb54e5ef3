package direct

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"runtime"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// zipLevel is the deflate level of archive/zip's own compressor, which
// golang.org/x/mod/zip.Create (and so the go command) uses.
const zipLevel = 5

// parallelMax is the largest file deflated ahead of its turn, in memory;
// a larger one is deflated as it is written, like Create does.
const parallelMax = 1 << 20

// createZip writes the module zip of mv as golang.org/x/mod/zip.Create
// writes it, byte for byte, but deflates up to GOMAXPROCS files at once:
// on a tagged version, Create's compressing one file after another was
// most of the time (BENCHMARKS.md, "Direct git fetch"). files must be the
// files modzip.CheckFiles accepted, in the order of its Valid list; x/mod
// decides which files a zip holds, and archive/zip writes every header and
// descriptor. Only the deflate streams of small files are made ahead, by
// the same compressor and level archive/zip uses, whose output does not
// depend on how its input is split into writes.
func createZip(w io.Writer, mv module.Version, files []modzip.File) error {
	if module.CanonicalVersion(mv.Version) != mv.Version {
		return fmt.Errorf("version %q is not canonical", mv.Version)
	}
	if err := module.Check(mv.Path, mv.Version); err != nil {
		return err
	}
	prefix := mv.Path + "@" + mv.Version + "/"
	procs := runtime.GOMAXPROCS(0)
	// ahead holds the files taken in order, at most 2*procs waiting to be
	// written, which bounds the memory of deflated data to about 3*procs
	// times parallelMax. procs workers deflate, each with its own
	// compressor (one is about a megabyte: making one per file cost more
	// than the compressing saved).
	ahead := make(chan *deflated, 2*procs)
	jobs := make(chan *deflated)
	stop := make(chan struct{})
	defer close(stop)
	for range procs {
		go func() {
			var fw *flate.Writer
			for d := range jobs {
				if fw == nil {
					fw, d.err = flate.NewWriter(nil, zipLevel)
				}
				if d.err == nil {
					d.deflate(fw)
				}
				close(d.done)
			}
		}()
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
	var cur *deflated // the file being written
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		if cur.data == nil {
			return flate.NewWriter(out, zipLevel)
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

// deflate makes d's deflate stream with fw.
func (d *deflated) deflate(fw *flate.Writer) {
	var buf bytes.Buffer
	fw.Reset(&buf)
	if d.err = copyDeclared(fw, d.file, d.size); d.err != nil {
		return
	}
	if d.err = fw.Close(); d.err != nil {
		return
	}
	d.data = buf.Bytes()
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
// drops the file's bytes written to it and writes the deflate stream made
// from them when closed.
type madeAhead struct {
	out  io.Writer
	data []byte
}

func (c *madeAhead) Write(p []byte) (int, error) { return len(p), nil }

func (c *madeAhead) Close() error {
	_, err := c.out.Write(c.data)
	return err
}
