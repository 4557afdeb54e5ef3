package e2e

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agora-mirror/agora/internal/modtest"
)

// The upstream faults of the reliability issue (numbered as there), injected
// one per module version, each answered with a clear error (or overcome by a
// retry) and never leaving anything partial or wrong in the store. Fault 1,
// a refused connection, and a stall followed by "|" need their own upstream
// chains and are separate tests below the table.

const (
	ufChecked = "example.com/faulty" // verified against the checksum database
	ufNoSum   = "corp.example/m"     // exempt from it (--nosum corp.example)
	// ufOverLimit is one byte more than the go command's zip size limit
	// (500 MiB, x/mod/zip.MaxZipFile).
	ufOverLimit = 500<<20 + 1
)

// ufCase is one upstream fault.
type ufCase struct {
	name  string
	nosum bool   // the module is ufNoSum rather than ufChecked
	file  string // ".info", ".mod" or ".zip": what misbehaves and is asked for
	// fault answers the upstream request for the file; b is the good
	// module version, as the checksum database knows it.
	fault func(b *modtest.Built) http.HandlerFunc
	code  int      // 200 when the retries overcome the fault
	want  []string // in the error body, besides the upstream's URL and the version
	tries int      // upstream requests for the file per client request, when not 0
	goCmd bool     // also download the version with the go command
}

func TestUpstreamFaultsGiveClearErrorsAndStoreNothing(t *testing.T) {
	t.Parallel()
	const reset = "connection reset by peer"
	bad := func(c ufCase) ufCase { c.code = http.StatusBadGateway; return c }
	zipOf := func(extra func(b *modtest.Built) []ufEntry) func(b *modtest.Built) http.HandlerFunc {
		return func(b *modtest.Built) http.HandlerFunc {
			return ufServe("application/zip", ufZip(append(ufGoodEntries(b), extra(b)...)...))
		}
	}
	traversal := func(b *modtest.Built) []ufEntry {
		return []ufEntry{{name: ufPrefix(b) + "../../evil.go", body: "package evil\n"}}
	}
	symlink := func(b *modtest.Built) []ufEntry {
		return []ufEntry{{name: ufPrefix(b) + "link.go", body: "/etc/passwd", mode: fs.ModeSymlink | 0o777}}
	}
	duplicate := func(b *modtest.Built) []ufEntry {
		return []ufEntry{{name: ufPrefix(b) + "LICENSE", body: "All rights reserved.\n"}}
	}
	caseFold := func(b *modtest.Built) []ufEntry {
		return []ufEntry{{name: ufPrefix(b) + "A.go", body: "package m\n"}, {name: ufPrefix(b) + "a.go", body: "package m\n"}}
	}
	outside := func(b *modtest.Built) []ufEntry {
		return []ufEntry{{name: "example.com/other@v1.0.0/other.go", body: "package other\n"}}
	}
	declaredHuge := func(b *modtest.Built) []ufEntry {
		return []ufEntry{{name: ufPrefix(b) + "big.dat", body: "x", size: ufOverLimit}}
	}
	html := func(b *modtest.Built) http.HandlerFunc {
		return ufServe("text/html; charset=utf-8", []byte("<!DOCTYPE html>\n<html><body><h1>Service temporarily unavailable</h1></body></html>\n"))
	}
	const (
		collision   = "case-insensitive file name collision"
		multiple    = "multiple entries for file"
		noPrefix    = "path does not have prefix"
		sizeLimit   = "total uncompressed size of module contents too large"
		notZip      = "zip: not a valid zip file"
		mismatch    = "checksum mismatch"
		timedOut    = "timed out: no data for 1s"
		unexpectEOF = "unexpected EOF"
	)
	cases := []ufCase{
		// 2. A connection reset mid-body.
		{name: "reset mid-body once", file: ".zip", fault: ufFirst(1, ufReset), code: 200, tries: 2, goCmd: true},
		bad(ufCase{name: "reset mid-body always", file: ".zip", fault: ufReset, want: []string{".zip", reset}, tries: 3}),
		{name: "reset mid-mod once", nosum: true, file: ".mod", fault: ufFirst(1, ufReset), code: 200, tries: 2},

		// 3. A body cut short: the connection closed early under a correct
		// Content-Length, or a smaller Content-Length that the upstream
		// honours, so that HTTP sees a complete answer and the zip is short.
		{name: "early close once", file: ".zip", fault: ufFirst(1, ufCut), code: 200, tries: 2},
		bad(ufCase{name: "early close always", file: ".zip", fault: ufCut, want: []string{".zip", unexpectEOF}, tries: 3}),
		bad(ufCase{name: "short Content-Length", file: ".zip", fault: ufShortLength, want: []string{"refused", notZip}, tries: 1}),
		bad(ufCase{name: "short Content-Length nosum", nosum: true, file: ".zip", fault: ufShortLength, want: []string{"refused", notZip}, tries: 1}),

		// 4. A body that drips a few bytes and stalls.
		{name: "stall", file: ".zip", fault: ufStall, code: http.StatusGatewayTimeout, want: []string{".zip", timedOut}, tries: 3, goCmd: true},
		{name: "stall on info", file: ".info", fault: ufStall, code: http.StatusGatewayTimeout, want: []string{".info", timedOut}, tries: 3},

		// 5. Rate limits and server errors.
		{name: "429 Retry-After once", file: ".zip", fault: ufFirst(1, ufStatus(http.StatusTooManyRequests, "1")), code: 200, tries: 2},
		{name: "500 once", file: ".info", fault: ufFirst(1, ufStatus(http.StatusInternalServerError, "")), code: 200, tries: 2},
		{name: "502 once", file: ".mod", fault: ufFirst(1, ufStatus(http.StatusBadGateway, "")), code: 200, tries: 2},
		{name: "503 once", file: ".zip", fault: ufFirst(1, ufStatus(http.StatusServiceUnavailable, "")), code: 200, tries: 2},
		bad(ufCase{name: "503 always", file: ".zip", fault: ufStatus(http.StatusServiceUnavailable, ""),
			want: []string{".zip", "503 Service Unavailable", "upstream is overloaded"}, tries: 3, goCmd: true}),

		// 6. An HTML error page with status 200.
		bad(ufCase{name: "HTML for zip", file: ".zip", fault: html, want: []string{"zip from", "refused", notZip}, tries: 1, goCmd: true}),
		bad(ufCase{name: "HTML for zip nosum", nosum: true, file: ".zip", fault: html, want: []string{"zip from", "refused", notZip}, tries: 1}),
		bad(ufCase{name: "HTML for info", file: ".info", fault: html, want: []string{"info from", "refused", "not a JSON version info"}, tries: 1}),
		bad(ufCase{name: "HTML for mod", file: ".mod", fault: html, want: []string{mismatch}, tries: 1}),
		bad(ufCase{name: "HTML for mod nosum", nosum: true, file: ".mod", fault: html, want: []string{"mod from", "refused", "declares module"}, tries: 1}),

		// 7. An .info for another version.
		bad(ufCase{name: "info for other version", file: ".info", fault: ufOtherInfo, want: []string{"info from", "refused", "info is for version v1.0.999"}, tries: 1}),
		bad(ufCase{name: "info for other version nosum", nosum: true, file: ".info", fault: ufOtherInfo, want: []string{"refused", "info is for version v1.0.999"}, tries: 1}),

		// 8. A go.mod naming another module.
		bad(ufCase{name: "go.mod of other module", file: ".mod", fault: ufOtherMod, want: []string{mismatch, "downloaded: h1:", "go.mod from"}, tries: 1, goCmd: true}),
		bad(ufCase{name: "go.mod of other module nosum", nosum: true, file: ".mod", fault: ufOtherMod,
			want: []string{"mod from", "refused", `go.mod declares module "example.com/other"`}, tries: 1, goCmd: true}),

		// 9. Zips that break the go command's rules. For the checked
		// module the zip rules are checked before the hash, so these are
		// refused for the rule as well.
		bad(ufCase{name: "path traversal nosum", nosum: true, file: ".zip", fault: zipOf(traversal), want: []string{"zip from", "refused", "../../evil.go"}, tries: 1, goCmd: true}),
		bad(ufCase{name: "path traversal", file: ".zip", fault: zipOf(traversal), want: []string{"refused", "../../evil.go"}, tries: 1}),
		// Refused before its hash is checked; see "symlink entry nosum".
		bad(ufCase{name: "symlink entry", file: ".zip", fault: zipOf(symlink), want: []string{"zip from", "not a regular file"}, tries: 1}),
		bad(ufCase{name: "duplicate names nosum", nosum: true, file: ".zip", fault: zipOf(duplicate), want: []string{"refused", multiple}, tries: 1}),
		bad(ufCase{name: "duplicate names", file: ".zip", fault: zipOf(duplicate), want: []string{"refused", multiple}, tries: 1}),
		bad(ufCase{name: "case collision nosum", nosum: true, file: ".zip", fault: zipOf(caseFold), want: []string{"refused", collision}, tries: 1}),
		bad(ufCase{name: "case collision", file: ".zip", fault: zipOf(caseFold), want: []string{"refused", collision}, tries: 1}),
		bad(ufCase{name: "outside prefix nosum", nosum: true, file: ".zip", fault: zipOf(outside), want: []string{"refused", noPrefix}, tries: 1}),
		bad(ufCase{name: "outside prefix", file: ".zip", fault: zipOf(outside), want: []string{"refused", noPrefix}, tries: 1}),
		bad(ufCase{name: "declared size over limit nosum", nosum: true, file: ".zip", fault: zipOf(declaredHuge), want: []string{"refused", sizeLimit}, tries: 1}),
		bad(ufCase{name: "declared size over limit", file: ".zip", fault: zipOf(declaredHuge), want: []string{"refused", sizeLimit}, tries: 1}),
		bad(ufCase{name: "Content-Length over limit nosum", nosum: true, file: ".zip", fault: ufHuge, want: []string{".zip", "too large"}, tries: 1}),
		bad(ufCase{name: "Content-Length over limit", file: ".zip", fault: ufHuge, want: []string{".zip", "too large"}, tries: 1, goCmd: true}),
	}

	f := newFixture(t)
	built := make([]*modtest.Built, len(cases))
	for i, c := range cases {
		built[i] = ufAdd(t, f, c.nosum, i)
	}
	// A nosum module whose zip carries a symlink entry: see the subtest.
	symBuilt := ufAdd(t, f, true, len(cases))
	a := startAgora(t, "", nil, append(f.agoraArgs(""), "--upstream-timeout", "1s", "--nosum", "corp.example")...)

	for i, c := range cases {
		b := built[i]
		t.Run(c.name, func(t *testing.T) {
			up := ufUpPath(b, c.file)
			f.Up.Handle(up, c.fault(b))
			defer f.Up.Handle(up, nil)
			var env []string
			if c.goCmd {
				env = f.goEnv(t, a)
				if c.nosum {
					env = f.goEnv(t, a, "GONOSUMDB=corp.example")
				}
			}

			if c.code == http.StatusOK {
				if c.goCmd { // the go command meets the fault first
					before := f.Up.Count(up)
					out := mustGo(t, "", env, "mod", "download", "-json", b.Path+"@"+b.Version)
					if d := ufParseDownload(t, out); d.Sum != b.ZipHash || d.GoModSum != b.ModHash {
						t.Errorf("go mod download: %+v; want sums %s %s", d, b.ZipHash, b.ModHash)
					}
					if n := f.Up.Count(up) - before; c.tries != 0 && n != c.tries {
						t.Errorf("upstream saw %d requests for %s, want %d", n, up, c.tries)
					}
				}
				before := f.Up.Count(up)
				code, hdr, body := get(t, a.URL+up)
				if code != http.StatusOK || !ufSameFile(c.file, body, b) {
					t.Errorf("GET %s = %d %q; want 200 and the module's %s", up, code, ufShort(body), c.file)
				}
				want := c.tries
				if c.goCmd {
					want = 0 // served from the store
				}
				if n := f.Up.Count(up) - before; c.tries != 0 && n != want {
					t.Errorf("upstream saw %d requests for %s, want %d", n, up, want)
				}
				if cc := hdr.Get("Cache-Control"); code == http.StatusOK && !strings.Contains(cc, "immutable") {
					t.Errorf("GET %s: Cache-Control %q, want immutable", up, cc)
				}
				ufCheckStore(t, a, b, c.file, true)
				return
			}

			before := f.Up.Count(up)
			code, hdr, body := get(t, a.URL+up)
			if code != c.code {
				t.Errorf("GET %s = %d, want %d; body:\n%s", up, code, c.code, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("GET %s: Content-Type %q, want text/plain; charset=utf-8", up, ct)
			}
			for _, w := range append([]string{f.Up.URL, b.Version}, c.want...) {
				if !strings.Contains(body, w) {
					t.Errorf("GET %s: body does not name %q:\n%s", up, w, body)
				}
			}
			if n := f.Up.Count(up) - before; c.tries != 0 && n != c.tries {
				t.Errorf("upstream saw %d requests for %s, want %d", n, up, c.tries)
			}
			if strings.Contains(body, "checksum mismatch") {
				want := b.ZipHash
				if c.file == ".mod" {
					want = b.ModHash
				}
				if !strings.Contains(body, "checksum database: "+want) {
					t.Errorf("GET %s: checksum mismatch without the database's hash %s:\n%s", up, want, body)
				}
			}
			if c.file != ".zip" && c.code != http.StatusGatewayTimeout {
				// Bad metadata: the zip is not even asked for, and
				// asking for it gives the same answer.
				zc, _, zbody := get(t, a.URL+ufUpPath(b, ".zip"))
				if zc != c.code || !strings.Contains(zbody, c.want[len(c.want)-1]) {
					t.Errorf("GET the zip after a %s fault = %d %q; want %d with the same error", c.file, zc, zbody, c.code)
				}
				if n := f.Up.Count(ufUpPath(b, ".zip")); n != 0 {
					t.Errorf("the zip was asked for %d times though its metadata was refused", n)
				}
			}
			ufCheckStore(t, a, b, c.file, false)
			t.Logf("%d %s", code, body)

			if c.goCmd {
				out, err := runGo(t, "", env, "mod", "download", "-json", b.Path+"@"+b.Version)
				out = ufGoError(out)
				if err == nil || !strings.Contains(out, fmt.Sprint(c.code)) || !strings.Contains(out, c.want[len(c.want)-1]) {
					t.Errorf("go mod download: err %v; want a failure showing %d and %q:\n%s", err, c.code, c.want[len(c.want)-1], out)
				}
				t.Logf("go mod download: %s", out)
				ufCheckStore(t, a, b, c.file, false)
			}
		})
	}

	// A symbolic link entry breaks none of x/mod/zip's rules (CheckZip
	// ignores file modes), but tools that unpack zips less carefully than
	// the go command could create the link: Agora refuses it even where
	// no checksum database vouches for the zip.
	t.Run("symlink entry nosum", func(t *testing.T) {
		b := symBuilt
		up := ufUpPath(b, ".zip")
		evil := ufZip(append(ufGoodEntries(b), symlink(b)...)...)
		f.Up.Handle(up, ufServe("application/zip", evil))
		defer f.Up.Handle(up, nil)
		code, _, body := get(t, a.URL+up)
		if code != http.StatusBadGateway || !strings.Contains(body, "refused") || !strings.Contains(body, "not a regular file") || !strings.Contains(body, f.Up.URL) {
			t.Errorf("GET %s = %d %q; want 502 refusing the symlink entry, naming the upstream", up, code, body)
		}
		ufCheckStore(t, a, b, ".zip", false)
		ufCheckTmp(t, a)
	})
}

// TestUpstreamFaultsConnectionRefused: an upstream whose port is closed
// is a 502 naming it; after a "|" the next upstream is asked instead.
func TestUpstreamFaultsConnectionRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	closed := ufClosedURL(t)
	b := f.mod(t, "example.com/hello@v1.0.0")
	up := ufUpPath(b, ".zip")

	t.Run("alone", func(t *testing.T) {
		a := startAgora(t, "", nil, append(f.agoraArgs(closed), "--upstream-timeout", "1s")...)
		for _, p := range []string{up, ufUpPath(b, ".info"), ufUpPath(b, ".mod")} {
			code, hdr, body := get(t, a.URL+p)
			if code != http.StatusBadGateway || !strings.Contains(body, closed) || !strings.Contains(body, "connection refused") {
				t.Errorf("GET %s = %d %q; want 502 naming %s and the refused connection", p, code, body, closed)
			}
			if ct := hdr.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("GET %s: Content-Type %q", p, ct)
			}
			t.Logf("%d %s", code, body)
		}
		ufCheckStore(t, a, b, ".info", false)
		out, err := runGo(t, "", f.goEnv(t, a), "mod", "download", "-json", b.Path+"@"+b.Version)
		out = ufGoError(out)
		if err == nil || !strings.Contains(out, "502") || !strings.Contains(out, "connection refused") {
			t.Errorf("go mod download: err %v; want a 502 naming the refused connection:\n%s", err, out)
		}
		t.Logf("go mod download: %s", out)
		ufCheckStore(t, a, b, ".info", false)
	})

	t.Run("pipe to a good upstream", func(t *testing.T) {
		a := startAgora(t, "", nil, append(f.agoraArgs(closed+"|"+f.Up.URL), "--upstream-timeout", "1s")...)
		code, _, body := get(t, a.URL+up)
		if code != http.StatusOK || body != string(b.Zip) {
			t.Errorf("GET %s through %s|%s = %d %q; want the zip", up, closed, f.Up.URL, code, ufShort(body))
		}
		ufCheckStore(t, a, b, ".zip", true)
	})
}

// TestUpstreamFaultsStallFallsThroughPipe: an upstream that stalls
// mid-body is abandoned after --upstream-timeout (and its retries), and
// after a "|" the next upstream serves the zip.
func TestUpstreamFaultsStallFallsThroughPipe(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b := f.mod(t, "example.com/hello@v1.1.0")
	up := ufUpPath(b, ".zip")
	slow := modtest.NewUpstream(t, b)
	slow.Handle(up, ufStall(b))
	a := startAgora(t, "", nil, append(f.agoraArgs(slow.URL+"|"+f.Up.URL), "--upstream-timeout", "1s")...)
	code, _, body := get(t, a.URL+up)
	if code != http.StatusOK || body != string(b.Zip) {
		t.Errorf("GET %s through stalling|good = %d %q; want the zip", up, code, ufShort(body))
	}
	if n := slow.Count(up); n != 3 {
		t.Errorf("the stalling upstream saw %d requests for the zip, want 3", n)
	}
	if n := f.Up.Count(up); n != 1 {
		t.Errorf("the good upstream saw %d requests for the zip, want 1", n)
	}
	ufCheckStore(t, a, b, ".zip", true)
}

// ufAdd registers version v1.0.<i+1> of the checked or the nosum module.
func ufAdd(t *testing.T, f *fixture, nosum bool, i int) *modtest.Built {
	p := ufChecked
	if nosum {
		p = ufNoSum
	}
	v := fmt.Sprintf("v1.0.%d", i+1)
	return f.add(t, modtest.Module{Path: p, Version: v, Files: helloFiles(p, p+" "+v)})
}

// ufUpPath returns the URL path of a version's file (the module paths
// used here need no case-encoding).
func ufUpPath(b *modtest.Built, ext string) string {
	return "/" + b.Path + "/@v/" + b.Version + ext
}

// ufPrefix is the prefix of every file name in b's zip.
func ufPrefix(b *modtest.Built) string { return b.Path + "@" + b.Version + "/" }

// ufEntry is a file of a hand-made zip.
type ufEntry struct {
	name, body string
	mode       fs.FileMode // 0: a regular file, 0644
	size       uint64      // if not 0, the uncompressed size claimed (stored raw)
}

// ufGoodEntries returns the files of b, as a zip built by the go command
// would hold them.
func ufGoodEntries(b *modtest.Built) []ufEntry {
	var es []ufEntry
	for name, body := range b.Files {
		es = append(es, ufEntry{name: ufPrefix(b) + name, body: body})
	}
	return es
}

// ufZip builds a zip by hand, breaking whatever rules its entries break.
func ufZip(entries ...ufEntry) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		if e.size != 0 {
			w, err := zw.CreateRaw(&zip.FileHeader{
				Name: e.name, Method: zip.Store, CRC32: crc32.ChecksumIEEE([]byte(e.body)),
				CompressedSize64: uint64(len(e.body)), UncompressedSize64: e.size,
			})
			if err != nil {
				panic(err)
			}
			io.WriteString(w, e.body)
			continue
		}
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		h.SetMode(0o644)
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			panic(err)
		}
		io.WriteString(w, e.body)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// ufGoodFile returns the content type and bytes upstreams should serve for b's file.
func ufGoodFile(b *modtest.Built, ext string) (string, []byte) {
	switch ext {
	case ".info":
		return "application/json", b.Info
	case ".mod":
		return "text/plain; charset=utf-8", b.Mod
	}
	return "application/zip", b.Zip
}

// ufFileOf infers which of b's files a request is for.
func ufFileOf(b *modtest.Built, r *http.Request) []byte {
	_, data := ufGoodFile(b, filepath.Ext(r.URL.Path))
	return data
}

// ufServe answers 200 with data.
func ufServe(ctype string, data []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data)
	}
}

// ufFirst makes the first n requests meet fault, and answers the others
// with b's good file.
func ufFirst(n int, fault func(b *modtest.Built) http.HandlerFunc) func(b *modtest.Built) http.HandlerFunc {
	return func(b *modtest.Built) http.HandlerFunc {
		var seen atomic.Int32
		bad := fault(b)
		return func(w http.ResponseWriter, r *http.Request) {
			if int(seen.Add(1)) <= n {
				bad(w, r)
				return
			}
			ctype, data := ufGoodFile(b, filepath.Ext(r.URL.Path))
			ufServe(ctype, data)(w, r)
		}
	}
}

// ufStatus answers with an error status, and Retry-After if not empty.
func ufStatus(code int, retryAfter string) func(b *modtest.Built) http.HandlerFunc {
	return func(*modtest.Built) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			http.Error(w, "upstream is overloaded", code)
		}
	}
}

// ufHijackAfterHalf sends the headers with the full Content-Length and
// half of the body, then takes the connection over and hands it to end.
func ufHijackAfterHalf(w http.ResponseWriter, data []byte, end func(net.Conn)) {
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.WriteHeader(http.StatusOK)
	w.Write(data[:len(data)/2])
	w.(http.Flusher).Flush()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		end(conn)
	}
}

// ufReset sends half the file and resets the connection (RST).
func ufReset(b *modtest.Built) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ufHijackAfterHalf(w, ufFileOf(b, r), func(c net.Conn) {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			c.Close()
		})
	}
}

// ufCut sends half the file under the full Content-Length and closes the
// connection in order (FIN).
func ufCut(b *modtest.Built) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ufHijackAfterHalf(w, ufFileOf(b, r), func(c net.Conn) { c.Close() })
	}
}

// ufShortLength sends a well-formed HTTP answer whose Content-Length, and
// body, are half the file.
func ufShortLength(b *modtest.Built) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data := ufFileOf(b, r)
		ufServe("application/zip", data[:len(data)/2])(w, r)
	}
}

// ufStall sends a few bytes of the file, then nothing until the client
// goes away.
func ufStall(b *modtest.Built) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data := ufFileOf(b, r)
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:4])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	}
}

// ufHuge announces a zip over the go command's size limit and streams
// zeros until the client goes away.
func ufHuge(*modtest.Built) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Length", fmt.Sprint(ufOverLimit))
		w.WriteHeader(http.StatusOK)
		zeros := make([]byte, 32<<10)
		for sent := 0; sent+len(zeros) <= ufOverLimit && r.Context().Err() == nil; sent += len(zeros) {
			if _, err := w.Write(zeros); err != nil {
				return
			}
		}
	}
}

// ufOtherInfo serves an .info for version v1.0.999.
func ufOtherInfo(b *modtest.Built) http.HandlerFunc {
	return ufServe("application/json", []byte(`{"Version":"v1.0.999","Time":"2024-01-02T03:04:05Z"}`))
}

// ufOtherMod serves a go.mod declaring example.com/other.
func ufOtherMod(b *modtest.Built) http.HandlerFunc {
	return ufServe("text/plain; charset=utf-8", []byte("module example.com/other\n\ngo 1.21\n"))
}

// ufSameFile reports whether body is b's file: the .info may be
// re-encoded, so only its Version is compared.
func ufSameFile(ext, body string, b *modtest.Built) bool {
	if ext == ".info" {
		var inf struct{ Version string }
		return json.Unmarshal([]byte(body), &inf) == nil && inf.Version == b.Version
	}
	_, data := ufGoodFile(b, ext)
	return body == string(data)
}

// ufCheckStore checks what the store holds of b: every file held is b's
// good file; the file ext is held if held is set, and otherwise not (nor,
// when ext is .info or .mod, any file of the version). The temporary
// directory must be empty.
func ufCheckStore(t *testing.T, a *agora, b *modtest.Built, ext string, held bool) {
	t.Helper()
	prefix := b.Path + "/@v/" + b.Version + "."
	found := map[string]bool{}
	for _, file := range storeFiles(t, a.DataDir) {
		if !strings.HasPrefix(file, prefix) {
			continue
		}
		e := filepath.Ext(file)
		found[e] = true
		data, err := os.ReadFile(filepath.Join(a.DataDir, "mod", filepath.FromSlash(file)))
		if err != nil {
			t.Error(err)
			continue
		}
		if !ufSameFile(e, string(data), b) {
			t.Errorf("stored %s is not the module's (%d bytes: %q)", file, len(data), ufShort(string(data)))
		}
		if !held && (e == ext || ext != ".zip") {
			t.Errorf("stored after a %s fault: %s", ext, file)
		}
	}
	if held && !found[ext] {
		t.Errorf("%s%s not stored after success", prefix, ext[1:])
	}
	ufCheckTmp(t, a)
}

// ufCheckTmp checks that no file is left in the store's temporary
// directory.
func ufCheckTmp(t *testing.T, a *agora) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(a.DataDir, ".tmp"))
	if err != nil && !os.IsNotExist(err) {
		t.Error(err)
	}
	for _, e := range ents {
		t.Errorf("left in .tmp: %s", e.Name())
	}
}

// ufDownload is the part of `go mod download -json` output used here.
type ufDownload struct {
	Path, Version, Sum, GoModSum, Dir, Error string
}

func ufParseDownload(t *testing.T, out string) ufDownload {
	t.Helper()
	var d ufDownload
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&d); err != nil {
		t.Fatalf("parsing go mod download -json output: %v\n%s", err, out)
	}
	return d
}

// ufGoError returns the Error field of `go mod download -json` output, as
// the go command's user would read it, or else the output itself.
func ufGoError(out string) string {
	var d ufDownload
	if json.NewDecoder(strings.NewReader(out)).Decode(&d) == nil && d.Error != "" {
		return d.Error
	}
	return out
}

// ufClosedURL returns the URL of a 127.0.0.1 port nothing listens on.
func ufClosedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// ufShort shortens a body for messages.
func ufShort(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
