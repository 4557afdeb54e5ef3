package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/agora-mirror/agora/internal/modtest"
)

// cluster is several `agora serve` replicas sharing one S3 bucket (on the
// test versitygw) and one PostgreSQL database, as behind a load balancer.
type cluster struct {
	Storage, Database string
	env               []string
	args              []string
	Replicas          []*agora
}

// startCluster starts n replicas in front of the fixture's upstream. It
// skips the test unless scripts/test set up S3 and PostgreSQL.
func startCluster(t *testing.T, f *fixture, n int, extra ...string) *cluster {
	t.Helper()
	c := &cluster{Storage: modtest.S3Bucket(t), Database: modtest.PostgresDB(t), env: modtest.S3Credentials()}
	c.args = append(append([]string{"--storage", c.Storage, "--database", c.Database}, f.agoraArgs("")...), extra...)
	for range n {
		c.start(t)
	}
	return c
}

// start adds a replica.
func (c *cluster) start(t *testing.T) *agora {
	t.Helper()
	a := startAgora(t, "", c.env, c.args...)
	c.Replicas = append(c.Replicas, a)
	return a
}

// fileDigests returns the SHA-256 of each of a version's files as a replica
// serves them.
func fileDigests(t *testing.T, a *agora, b *modtest.Built) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, ext := range []string{".info", ".mod", ".zip"} {
		code, _, body := get(t, a.URL+"/"+escPath(t, b.Path)+"/@v/"+b.Version+ext)
		if code != http.StatusOK {
			t.Fatalf("%s: %s%s: %d %s", a.URL, b.Path, ext, code, body)
		}
		out[ext] = fmt.Sprintf("%x", sha256.Sum256([]byte(body)))
	}
	return out
}

// readIndex reads a replica's whole /index, paging with since.
func readIndex(t *testing.T, a *agora, limit int) []indexLine {
	t.Helper()
	var all []indexLine
	since := ""
	for {
		code, _, body := get(t, fmt.Sprintf("%s/index?limit=%d%s", a.URL, limit, since))
		if code != http.StatusOK {
			t.Fatalf("/index: %d %s", code, body)
		}
		page := parseIndex(t, body)
		all = append(all, page...)
		if len(page) < limit {
			return all
		}
		// Resume just after the last entry (timestamps are unique).
		since = "&since=" + page[len(page)-1].Timestamp.Add(time.Microsecond).Format(time.RFC3339Nano)
	}
}

type indexLine struct {
	Path, Version string
	Timestamp     time.Time
}

func parseIndex(t *testing.T, body string) []indexLine {
	t.Helper()
	var out []indexLine
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		var l indexLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("index line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// TestClusterStampede: 100 go commands spread over three replicas, all
// asking at once for the same versions nobody holds yet, cause exactly one
// upstream request per file; every replica then serves the same bytes, and
// the index, read from any replica, lists each version once, in order.
func TestClusterStampede(t *testing.T) {
	f := newFixture(t)
	c := startCluster(t, f, 3)
	want := []string{"example.com/hello@v1.1.0", "example.com/hello/v2@v2.0.0", "github.com/Upper/Case@v1.0.0"}

	const clients = 100
	envs := make([][]string, clients)
	for i := range envs {
		envs[i] = f.goEnv(t, c.Replicas[i%len(c.Replicas)])
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			out, err := modtest.RunGo(ctx, t.TempDir(), envs[i], append([]string{"mod", "download", "-json"}, want...)...)
			if err != nil {
				errs <- fmt.Errorf("client %d (replica %d): %v\n%s", i, i%len(c.Replicas), err, out)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	for _, pv := range want {
		b := f.mod(t, pv)
		for _, ext := range []string{".info", ".mod", ".zip"} {
			p := "/" + escPath(t, b.Path) + "/@v/" + b.Version + ext
			if n := f.Up.Count(p); n != 1 {
				t.Errorf("upstream saw %d requests for %s, want exactly 1", n, p)
			}
		}
		first := fileDigests(t, c.Replicas[0], b)
		for _, a := range c.Replicas[1:] {
			if got := fileDigests(t, a, b); fmt.Sprint(got) != fmt.Sprint(first) {
				t.Errorf("%s: replicas serve different bytes: %v and %v", pv, first, got)
			}
		}
		if first[".zip"] != fmt.Sprintf("%x", sha256.Sum256(b.Zip)) {
			t.Errorf("%s: the zip served is not the module's zip", pv)
		}
	}

	var ref []indexLine
	for i, a := range c.Replicas {
		idx := readIndex(t, a, 2) // small pages: paging is exercised
		seen := make(map[string]bool)
		for j, l := range idx {
			if seen[l.Path+"@"+l.Version] {
				t.Errorf("replica %d: index lists %s@%s twice", i, l.Path, l.Version)
			}
			seen[l.Path+"@"+l.Version] = true
			if j > 0 && !l.Timestamp.After(idx[j-1].Timestamp) {
				t.Errorf("replica %d: index out of order at %d: %v after %v", i, j, l.Timestamp, idx[j-1].Timestamp)
			}
		}
		for _, pv := range want {
			if !seen[pv] {
				t.Errorf("replica %d: index lacks %s", i, pv)
			}
		}
		if len(idx) != len(want) {
			t.Errorf("replica %d: index has %d entries, want %d: %+v", i, len(idx), len(want), idx)
		}
		if i == 0 {
			ref = idx
		} else if fmt.Sprint(idx) != fmt.Sprint(ref) {
			t.Errorf("replicas' indexes differ:\n%+v\n%+v", ref, idx)
		}
	}
}

// TestClusterReplicaKilledMidFill: a replica is killed (SIGKILL) while it
// fills a zip and another replica waits for that fill; the waiting replica
// takes over as soon as the dead one's lock is released, completes the
// fill, and no partial file is ever served or stored.
func TestClusterReplicaKilledMidFill(t *testing.T) {
	f := newFixture(t)
	c := startCluster(t, f, 2)
	a, b := c.Replicas[0], c.Replicas[1]
	mod := f.mod(t, "example.com/hello@v1.0.0")
	zipPath := "/example.com/hello/@v/v1.0.0.zip"

	// The upstream's first answer for the zip sends half of it, then
	// stalls; later answers are whole.
	stalled := make(chan struct{})
	var once sync.Once
	f.Up.Handle(zipPath, func(w http.ResponseWriter, r *http.Request) {
		first := false
		once.Do(func() { first = true })
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Length", fmt.Sprint(len(mod.Zip)))
		if !first {
			w.Write(mod.Zip)
			return
		}
		w.Write(mod.Zip[:len(mod.Zip)/2])
		w.(http.Flusher).Flush()
		close(stalled)
		<-r.Context().Done()
	})

	client := &http.Client{Timeout: 2 * time.Minute}
	fetch := func(base string, res chan<- string) {
		resp, err := client.Get(base + zipPath)
		if err != nil {
			res <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			res <- "error reading: " + err.Error()
			return
		}
		res <- fmt.Sprintf("%d %x", resp.StatusCode, sha256.Sum256(body))
	}
	fromA, fromB := make(chan string, 1), make(chan string, 1)
	go fetch(a.URL, fromA)
	select {
	case <-stalled:
	case <-time.After(time.Minute):
		t.Fatal("replica A never asked the upstream for the zip")
	}
	go fetch(b.URL, fromB)
	// B waits for A's fill instead of fetching the zip itself.
	time.Sleep(500 * time.Millisecond)
	if n := f.Up.Count(zipPath); n != 1 {
		t.Fatalf("upstream saw %d zip requests while A was filling, want 1 (B must wait for A)", n)
	}
	a.kill()
	if got := <-fromA; strings.HasPrefix(got, "200 ") {
		t.Errorf("the client of the killed replica got a whole answer: %s", got)
	}

	want := fmt.Sprintf("200 %x", sha256.Sum256(mod.Zip))
	select {
	case got := <-fromB:
		if got != want {
			t.Fatalf("replica B answered %s, want %s", got, want)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("replica B never completed the fill the killed replica left")
	}
	if n := f.Up.Count(zipPath); n != 2 {
		t.Errorf("upstream saw %d zip requests, want 2 (the killed fill and B's)", n)
	}
	// A replacement for A, on the same bucket and database, serves the
	// same bytes, and the version is in the index once.
	a2 := c.start(t)
	if got := fileDigests(t, a2, mod); got[".zip"] != fmt.Sprintf("%x", sha256.Sum256(mod.Zip)) {
		t.Errorf("the new replica serves a different zip")
	}
	idx := readIndex(t, a2, 100)
	if len(idx) != 1 || idx[0].Path != mod.Path || idx[0].Version != mod.Version {
		t.Errorf("index after the takeover = %+v, want just %s@%s", idx, mod.Path, mod.Version)
	}
}

// escPath returns the case-encoded form of a module path, as in URLs.
func escPath(t *testing.T, path string) string {
	t.Helper()
	ep, err := module.EscapePath(path)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// TestClusterZipRedirect: with zip_redirect, zip requests are answered with
// a redirect to a pre-signed URL of the object store, which the go command
// follows; the zip is still filled and checked by Agora first.
func TestClusterZipRedirect(t *testing.T) {
	f := newFixture(t)
	c := startCluster(t, f, 1, "--zip-redirect", "5m")
	a := c.Replicas[0]
	b := f.mod(t, "example.com/hello@v1.1.0")

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(a.URL + "/example.com/hello/@v/v1.1.0.zip")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.Contains(loc, "X-Amz-Signature=") {
		t.Fatalf("zip request: %d, Location %q; want 302 to a pre-signed URL", resp.StatusCode, loc)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("redirect Cache-Control = %q, want no-store", cc)
	}
	code, _, body := get(t, loc)
	if code != http.StatusOK || body != string(b.Zip) {
		t.Fatalf("GET of the pre-signed URL: %d, %d bytes; want the module's zip", code, len(body))
	}
	out := mustGo(t, "", f.goEnv(t, a), "mod", "download", "-json", "example.com/hello@v1.1.0")
	if !strings.Contains(out, `"Sum": "`+b.ZipHash+`"`) {
		t.Errorf("go mod download through the redirect:\n%s", out)
	}
}

// TestZipRedirectNeedsObjectStorage: zip_redirect with the disk store is a
// configuration error, reported at start.
func TestZipRedirectNeedsObjectStorage(t *testing.T) {
	cmd := exec.Command(agoraBin, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--upstream", "off", "--sumdb", "off", "--zip-redirect", "5m")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "zip_redirect needs object storage") {
		t.Errorf("agora serve --zip-redirect on a disk store: %v\n%s", err, out)
	}
}
