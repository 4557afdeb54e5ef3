// Package modtest provides hermetic fixtures for testing a Go module proxy.
//
// It can render in-memory module versions into the exact bytes of the
// GOPROXY protocol ([Build]), serve them from a fake upstream proxy
// ([NewUpstream]) or from a file tree usable with GOPROXY=file://
// ([WriteTree]), and run a private checksum database signed with a
// throwaway key ([NewSumDB]). [GoEnv] and [RunGo] run the real go command
// against these fixtures with an environment that shares nothing with the
// developer's machine except PATH and the build cache.
//
// Every server started here listens on 127.0.0.1 only and is shut down
// by t.Cleanup, so tests never touch the network.
package modtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/agora-mirror/agora/internal/gosum"
)

// DefaultTime is the timestamp reported in .info for a [Module] whose Time
// is zero and whose version is not a pseudo-version. (A pseudo-version with
// a zero Time uses the timestamp encoded in the version itself.)
var DefaultTime = time.Date(2024, time.January, 2, 3, 4, 5, 0, time.UTC)

// Module is one module version to be served by a test upstream.
type Module struct {
	// Path is the module path, for example "example.com/hello".
	Path string
	// Version is the canonical version, for example "v1.0.0". It may be a
	// pseudo-version or carry the +incompatible suffix.
	Version string
	// Time is reported in the .info file. The zero value means the time
	// encoded in a pseudo-version, or DefaultTime for other versions.
	Time time.Time
	// Files maps file names (slash-separated, relative to the module root)
	// to their contents. If there is no "go.mod" entry, the .mod file is
	// synthesized as "module <path>\n" and the zip holds no go.mod.
	Files map[string]string
}

// Built is a module version rendered to the bytes of the proxy protocol.
// The embedded Module has its Time filled in with the effective time and
// its own copy of Files.
type Built struct {
	Module

	// Info is the JSON body of the .info file.
	Info []byte
	// Mod is the body of the .mod file.
	Mod []byte
	// Zip is the body of the .zip file, made by golang.org/x/mod/zip.Create.
	Zip []byte

	// ZipHash is the go.sum hash of the zip ("h1:...").
	ZipHash string
	// ModHash is the go.sum hash of the .mod file ("h1:..."), as recorded
	// on the "<path> <version>/go.mod" line.
	ModHash string
}

// ModuleVersion returns the path and version of b as a module.Version.
func (b *Built) ModuleVersion() module.Version {
	return module.Version{Path: b.Path, Version: b.Version}
}

// GoSum returns the two go.sum lines for b, each ending in a newline.
func (b *Built) GoSum() string {
	return goSumLines(b.Path, b.Version, b.ZipHash, b.ModHash)
}

// goSumLines formats go.sum lines; an empty hash leaves its line out.
func goSumLines(path, version, zipHash, modHash string) string {
	var buf bytes.Buffer
	if zipHash != "" {
		fmt.Fprintf(&buf, "%s %s %s\n", path, version, zipHash)
	}
	if modHash != "" {
		fmt.Fprintf(&buf, "%s %s/go.mod %s\n", path, version, modHash)
	}
	return buf.String()
}

// infoJSON is the shape of a .info file.
type infoJSON struct {
	Version string
	Time    time.Time
}

// Build renders m into the proxy protocol's .info, .mod and .zip bytes and
// computes their go.sum hashes. The path and version must be valid and
// the version canonical; the zip is checked with zip.CheckZip.
func Build(m Module) (*Built, error) {
	if err := module.Check(m.Path, m.Version); err != nil {
		return nil, err
	}
	if c := module.CanonicalVersion(m.Version); c != m.Version {
		return nil, fmt.Errorf("modtest: version %q of %s is not canonical (want %q)", m.Version, m.Path, c)
	}
	mv := module.Version{Path: m.Path, Version: m.Version}

	b := &Built{Module: m}
	b.Files = make(map[string]string, len(m.Files))
	for name, content := range m.Files {
		b.Files[name] = content
	}
	if b.Time.IsZero() {
		b.Time = DefaultTime
		if module.IsPseudoVersion(m.Version) {
			if t, err := module.PseudoVersionTime(m.Version); err == nil {
				b.Time = t
			}
		}
	}
	b.Time = b.Time.UTC()

	info, err := json.Marshal(infoJSON{Version: m.Version, Time: b.Time})
	if err != nil {
		return nil, err
	}
	b.Info = info

	if gomod, ok := m.Files["go.mod"]; ok {
		b.Mod = []byte(gomod)
	} else {
		b.Mod = []byte("module " + modfile.AutoQuote(m.Path) + "\n")
	}
	b.ModHash, err = gosum.ModHash(b.Mod)
	if err != nil {
		return nil, err
	}

	names := make([]string, 0, len(m.Files))
	for name := range m.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	files := make([]modzip.File, 0, len(names))
	for _, name := range names {
		files = append(files, memFile{name: name, data: []byte(m.Files[name])})
	}
	var zbuf bytes.Buffer
	if err := modzip.Create(&zbuf, mv, files); err != nil {
		return nil, err
	}
	b.Zip = zbuf.Bytes()

	// dirhash.HashZip and zip.CheckZip both want a file on disk.
	tmp, err := os.CreateTemp("", "modtest-*.zip")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(b.Zip)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, werr
	}
	if _, err := modzip.CheckZip(mv, tmp.Name()); err != nil {
		return nil, err
	}
	b.ZipHash, err = dirhash.HashZip(tmp.Name(), dirhash.Hash1)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// MustBuild is like [Build] but stops the test with t.Fatal on error.
func MustBuild(t testing.TB, m Module) *Built {
	t.Helper()
	b, err := Build(m)
	if err != nil {
		t.Fatalf("modtest.Build(%s@%s): %v", m.Path, m.Version, err)
	}
	return b
}

// memFile is an in-memory implementation of zip.File.
type memFile struct {
	name string
	data []byte
}

func (f memFile) Path() string                 { return f.name }
func (f memFile) Lstat() (fs.FileInfo, error)  { return memInfo{f}, nil }
func (f memFile) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(f.data)), nil }

// memInfo describes a memFile as a regular file.
type memInfo struct{ f memFile }

func (i memInfo) Name() string       { return path.Base(i.f.name) }
func (i memInfo) Size() int64        { return int64(len(i.f.data)) }
func (i memInfo) Mode() fs.FileMode  { return 0o644 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }
