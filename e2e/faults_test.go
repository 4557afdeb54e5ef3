package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-mirror/agora/internal/modtest"
)

func TestClientFallsBackWhenFirstUpstreamLacksModule(t *testing.T) {
	for _, status := range []int{404, 410, 403, 400} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := newFixture(t)
			empty := modtest.NewUpstream(t)
			empty.SetNotFoundStatus(status)
			a := startAgora(t, "", nil, f.agoraArgs(empty.URL+","+f.Up.URL)...)
			out := mustGo(t, "", f.goEnv(t, a), "mod", "download", "-json", "example.com/hello@v1.0.0")
			if d := parseDownload(t, out)[0]; d.Sum != f.mod(t, "example.com/hello@v1.0.0").ZipHash {
				t.Errorf("download through second upstream: %+v", d)
			}
			if empty.Count("/example.com/hello/@v/v1.0.0.zip") != 1 {
				t.Errorf("first upstream was not asked for the zip: %v", empty.Requests())
			}
		})
	}
}

func TestPipeFallsThroughOnServerError(t *testing.T) {
	f := newFixture(t)
	broken := modtest.NewUpstream(t)
	broken.Handle("/example.com/hello/@v/v1.0.0.info", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream exploded", http.StatusInternalServerError)
	})
	a := startAgora(t, "", nil, f.agoraArgs(broken.URL+"|"+f.Up.URL)...)
	code, _, body := get(t, a.URL+"/example.com/hello/@v/v1.0.0.info")
	if code != 200 || !strings.Contains(body, "v1.0.0") {
		t.Errorf("info with a|b after a's 500: %d %s", code, body)
	}
}

func TestCommaStopsOnServerError(t *testing.T) {
	f := newFixture(t)
	broken := modtest.NewUpstream(t)
	broken.Handle("/example.com/hello/@v/v1.0.0.info", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream exploded", http.StatusInternalServerError)
	})
	a := startAgora(t, "", nil, f.agoraArgs(broken.URL+","+f.Up.URL)...)
	code, hdr, body := get(t, a.URL+"/example.com/hello/@v/v1.0.0.info")
	if code != http.StatusBadGateway || !strings.Contains(body, broken.URL) || !strings.Contains(body, "500") {
		t.Errorf("info with a,b after a's 500: %d %s; want 502 naming the upstream and its status", code, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("error Content-Type %q, want text/plain", ct)
	}
	if n := f.Up.Count("/example.com/hello/@v/v1.0.0.info"); n != 0 {
		t.Errorf("second upstream asked %d times after a terminal error", n)
	}
	// The retries happened: a 500 is retried before giving up.
	if n := broken.Count("/example.com/hello/@v/v1.0.0.info"); n < 2 {
		t.Errorf("a 500 was tried %d times, want retries", n)
	}
}

func TestMissingModuleIs404NamingEachSource(t *testing.T) {
	f := newFixture(t)
	other := modtest.NewUpstream(t)
	other.SetNotFoundStatus(403)
	a := startAgora(t, "", nil, f.agoraArgs(f.Up.URL+","+other.URL)...)
	for _, p := range []string{"/example.com/nothere/@v/v1.0.0.info", "/example.com/nothere/@v/list", "/example.com/nothere/@latest", "/example.com/hello/@v/v1.9.9.zip"} {
		code, hdr, body := get(t, a.URL+p)
		if code != http.StatusNotFound || !strings.Contains(body, f.Up.URL) || !strings.Contains(body, other.URL) {
			t.Errorf("GET %s = %d %q; want 404 naming both upstreams", p, code, body)
		}
		if ct := hdr.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", p, ct)
		}
	}
	// A client's own fallback still works: agora's 404 lets it move on.
	env := modtest.GoEnv(t, "GOPROXY="+a.URL+","+other.URL, "GOSUMDB=off")
	if out, err := runGo(t, "", env, "mod", "download", "example.com/nothere@v1.0.0"); err == nil || !strings.Contains(out, "not found") {
		t.Errorf("download of a missing module: err %v, output %s", err, out)
	}
}

func TestCachedVersionsServedWhenUpstreamDown(t *testing.T) {
	f := newFixture(t)
	data := t.TempDir()
	a := startAgora(t, data, nil, append(f.agoraArgs(""), "--list-ttl", "1ms")...)
	mustGo(t, "", f.goEnv(t, a), "mod", "download", "example.com/hello@v1.0.0", "example.com/hello@v1.1.0")
	mustGo(t, "", f.goEnv(t, a), "list", "-m", "-versions", "example.com/hello")
	f.Up.Close()
	f.DB.Close()

	check := func(a *agora) {
		t.Helper()
		env := f.goEnv(t, a) // a fresh module cache: everything comes from agora
		out := mustGo(t, "", env, "mod", "download", "-json", "example.com/hello@v1.0.0")
		if d := parseDownload(t, out)[0]; d.Sum != f.mod(t, "example.com/hello@v1.0.0").ZipHash {
			t.Errorf("download with upstream down: %+v", d)
		}
		out = mustGo(t, "", env, "list", "-m", "-versions", "example.com/hello")
		if !strings.Contains(out, "v1.0.0 v1.1.0") {
			t.Errorf("versions with upstream down: %q", out)
		}
	}
	check(a)
	a.stop(t)
	check(startAgora(t, data, nil, append(f.agoraArgs(""), "--list-ttl", "1ms")...))
}

func TestConcurrentMissesCauseOneUpstreamFetch(t *testing.T) {
	f := newFixture(t)
	const zipPath = "/example.com/hello/@v/v1.1.0.zip"
	b := f.mod(t, "example.com/hello@v1.1.0")
	f.Up.Handle(zipPath, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // keep the fill open while the clients pile up
		w.Header().Set("Content-Type", "application/zip")
		w.Write(b.Zip)
	})
	a := startAgora(t, "", nil, f.agoraArgs("")...)
	const clients = 50
	var wg sync.WaitGroup
	bodies := make([][]byte, clients)
	codes := make([]int, clients)
	for i := range clients {
		wg.Go(func() {
			resp, err := http.Get(a.URL + zipPath)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			codes[i] = resp.StatusCode
			bodies[i], _ = io.ReadAll(resp.Body)
		})
	}
	wg.Wait()
	for i := range clients {
		if codes[i] != 200 || !bytes.Equal(bodies[i], b.Zip) {
			t.Fatalf("client %d: status %d, %d bytes (want 200, the zip)", i, codes[i], len(bodies[i]))
		}
	}
	if n := f.Up.Count(zipPath); n != 1 {
		t.Errorf("%d clients caused %d upstream zip fetches, want 1", clients, n)
	}
}

func TestTamperedFilesAreRefusedAndNotStored(t *testing.T) {
	f := newFixture(t)
	evil := modtest.MustBuild(t, modtest.Module{Path: "example.com/hello", Version: "v1.0.0",
		Files: helloFiles("example.com/hello", "pwned")})
	evilMod := modtest.MustBuild(t, modtest.Module{Path: "example.com/hello", Version: "v1.1.0",
		Files: map[string]string{"go.mod": "module example.com/hello\n\nrequire example.com/evil v1.0.0\n", "hello.go": "package hello\n"}})
	f.Up.Handle("/example.com/hello/@v/v1.0.0.zip", func(w http.ResponseWriter, r *http.Request) { w.Write(evil.Zip) })
	f.Up.Handle("/example.com/hello/@v/v1.1.0.mod", func(w http.ResponseWriter, r *http.Request) { w.Write(evilMod.Mod) })
	a := startAgora(t, "", nil, f.agoraArgs("")...)

	for _, p := range []string{"/example.com/hello/@v/v1.0.0.zip", "/example.com/hello/@v/v1.1.0.mod", "/example.com/hello/@v/v1.1.0.zip"} {
		code, _, body := get(t, a.URL+p)
		if code != http.StatusBadGateway || !strings.Contains(body, "checksum mismatch") {
			t.Errorf("GET %s = %d %q; want 502 checksum mismatch", p, code, body)
		}
	}
	for _, file := range storeFiles(t, a.DataDir) {
		if strings.HasSuffix(file, "v1.0.0.zip") || strings.Contains(file, "v1.1.0") {
			t.Errorf("tampered or incomplete file stored: %s", file)
		}
	}
	out, err := runGo(t, "", f.goEnv(t, a), "mod", "download", "example.com/hello@v1.0.0")
	if err == nil || !strings.Contains(out, "checksum mismatch") {
		t.Errorf("go mod download of a tampered zip: err %v\n%s", err, out)
	}
}

func TestNoSumLookupsAreRefusedLocally(t *testing.T) {
	f := newFixture(t)
	priv := f.add(t, modtest.Module{Path: "corp.example/secret", Version: "v1.0.0", Files: helloFiles("corp.example/secret", "psst")})
	a := startAgora(t, "", nil, append(f.agoraArgs(""), "--nosum", "corp.example")...)
	code, _, body := get(t, a.URL+"/sumdb/"+dbName+"/lookup/corp.example/secret@v1.0.0")
	if code != http.StatusForbidden {
		t.Errorf("lookup of a nosum module = %d %q, want 403", code, body)
	}
	// The module itself is still served (without a database check), and
	// the client, told GONOSUMDB, downloads it.
	out := mustGo(t, "", f.goEnv(t, a, "GONOSUMDB=corp.example"), "mod", "download", "-json", "corp.example/secret@v1.0.0")
	if d := parseDownload(t, out)[0]; d.Sum != priv.ZipHash {
		t.Errorf("download of a nosum module: %+v", d)
	}
	for _, r := range append(f.DB.Requests(), f.Up.Requests()...) {
		if strings.Contains(r, "/sumdb/") && strings.Contains(r, "corp.example") || strings.HasPrefix(r, "/lookup/corp.example") {
			t.Errorf("a nosum path reached the checksum database: %s", r)
		}
	}
}

// cutMidBody answers with the full Content-Length, sends half of data and
// then drops the connection, as an upstream that dies mid-transfer.
func cutMidBody(data []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(200)
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}
}

func TestUpstreamDyingMidZipLeavesNothingStored(t *testing.T) {
	f := newFixture(t)
	const zipPath = "/example.com/hello/@v/v1.0.0.zip"
	b := f.mod(t, "example.com/hello@v1.0.0")
	f.Up.Handle(zipPath, cutMidBody(b.Zip))
	a := startAgora(t, "", nil, f.agoraArgs("")...)
	code, _, body := get(t, a.URL+zipPath)
	if code != http.StatusBadGateway || !strings.Contains(body, f.Up.URL) {
		t.Errorf("zip from a dying upstream = %d %q; want 502 naming the upstream", code, body)
	}
	for _, file := range storeFiles(t, a.DataDir) {
		if strings.HasSuffix(file, ".zip") {
			t.Errorf("partial zip stored: %s", file)
		}
	}
	f.Up.Handle(zipPath, nil) // the upstream recovers
	code, _, body = get(t, a.URL+zipPath)
	if code != 200 || body != string(b.Zip) {
		t.Errorf("zip after the upstream recovered: %d, %d bytes", code, len(body))
	}
}
