package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-mirror/agora/internal/modtest"
)

// randomText returns n bytes of incompressible printable text.
func randomText(r *rand.Rand, n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

// dripping serves data in small pieces with pauses, so that a fill stays
// open long enough to be interrupted.
func dripping(data []byte, piece int, pause time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		for off := 0; off < len(data); off += piece {
			end := min(off+piece, len(data))
			if _, err := w.Write(data[off:end]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(pause):
			case <-r.Context().Done():
				return
			}
		}
	}
}

// checkStore verifies that every file in the store is complete and
// exactly what the fixture served, and that no version has a zip without
// its .info and .mod.
func checkStore(t *testing.T, dataDir string, mods map[string]*modtest.Built) {
	t.Helper()
	byFile := make(map[string][]byte)
	for _, b := range mods {
		base := b.Path + "/@v/" + b.Version
		byFile[base+".zip"] = b.Zip
		byFile[base+".mod"] = b.Mod
	}
	files := storeFiles(t, dataDir)
	have := make(map[string]bool)
	for _, f := range files {
		have[f] = true
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dataDir, "mod", f))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(f, ".info"):
			if !bytes.Contains(data, []byte(`"Version":"`)) {
				t.Errorf("stored %s is not a complete .info: %q", f, data)
			}
		case strings.HasSuffix(f, ".zip") || strings.HasSuffix(f, ".mod"):
			want, ok := byFile[f]
			if !ok {
				t.Errorf("unexpected stored file %s", f)
			} else if !bytes.Equal(data, want) {
				t.Errorf("stored %s differs from the upstream's (%d bytes, want %d)", f, len(data), len(want))
			}
			if base, ok := strings.CutSuffix(f, ".zip"); ok && (!have[base+".info"] || !have[base+".mod"]) {
				t.Errorf("stored %s without its .info and .mod", f)
			}
		}
	}
}

func TestSIGKILLDuringFillsLeavesOnlyCompleteVersions(t *testing.T) {
	const kills = 50
	const perKill = 2 // new modules asked for in each round
	f := newFixture(t)
	r := rand.New(rand.NewPCG(1, 2))
	mods := make(map[string]*modtest.Built)
	var paths []string
	for i := range kills * perKill {
		path := fmt.Sprintf("example.com/crash%d", i)
		files := helloFiles(path, "crash")
		files["data.txt"] = randomText(r, 100<<10)
		b := f.add(t, modtest.Module{Path: path, Version: "v1.0.0", Files: files})
		mods[path] = b
		paths = append(paths, path)
		f.Up.Handle("/"+path+"/@v/v1.0.0.zip", dripping(b.Zip, 8<<10, 10*time.Millisecond))
	}
	data := t.TempDir()
	interrupted := 0
	for i := range kills {
		a := startAgora(t, data, nil, f.agoraArgs("")...)
		if leftovers, _ := os.ReadDir(filepath.Join(data, ".tmp")); len(leftovers) != 0 {
			t.Fatalf("kill %d: temporary files survived the restart: %v", i, leftovers)
		}
		// This round's new modules, and the previous round's, whose
		// fills the last kill may have interrupted.
		round := paths[max(0, (i-1)*perKill) : (i+1)*perKill]
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for _, p := range round {
			wg.Go(func() {
				for _, ext := range []string{".info", ".zip"} {
					req, _ := http.NewRequestWithContext(ctx, "GET", a.URL+"/"+p+"/@v/v1.0.0"+ext, nil)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		time.Sleep(time.Duration(20+r.IntN(200)) * time.Millisecond)
		a.kill()
		cancel()
		wg.Wait()
		if tmp, _ := os.ReadDir(filepath.Join(data, ".tmp")); len(tmp) > 0 {
			interrupted++ // the kill hit a write in progress
		}
		checkStore(t, data, mods)
		if t.Failed() {
			t.Fatalf("after kill %d the store is inconsistent", i)
		}
	}
	t.Logf("%d of %d kills interrupted a write in progress", interrupted, kills)
	if interrupted == 0 {
		t.Errorf("no kill interrupted a fill: the test proves nothing")
	}
	// After the last crash, every interrupted fill completes on request.
	a := startAgora(t, data, nil, f.agoraArgs("")...)
	args := []string{"mod", "download", "-json"}
	args = append(args, paths[len(paths)-4*perKill:]...)
	for i := range args[3:] {
		args[3+i] += "@v1.0.0"
	}
	out := mustGo(t, "", f.goEnv(t, a), args...)
	for _, d := range parseDownload(t, out) {
		if d.Error != "" || d.Sum != mods[d.Path].ZipHash {
			t.Errorf("%s after crashes: %+v", d.Path, d)
		}
	}
	checkStore(t, data, mods)
}

func TestSIGTERMLetsInFlightDownloadsFinish(t *testing.T) {
	f := newFixture(t)
	const zipPath = "/example.com/hello/@v/v1.0.0.zip"
	b := f.mod(t, "example.com/hello@v1.0.0")
	started := make(chan struct{})
	var once sync.Once
	f.Up.Handle(zipPath, func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(started) })
		time.Sleep(time.Second)
		w.Write(b.Zip)
	})
	a := startAgora(t, "", nil, f.agoraArgs("")...)
	type result struct {
		code int
		body []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(a.URL + zipPath)
		if err != nil {
			done <- result{err: err}
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.StatusCode, body, err}
	}()
	<-started
	a.cmd.Process.Signal(os.Interrupt)
	res := <-done
	if res.err != nil || res.code != 200 || !bytes.Equal(res.body, b.Zip) {
		t.Errorf("download in flight at SIGTERM: status %d, %d bytes, err %v; want the whole zip", res.code, len(res.body), res.err)
	}
	<-a.done
	if code := a.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code after graceful shutdown = %d", code)
	}
	if _, err := http.Get(a.URL + "/healthz"); err == nil {
		t.Errorf("agora still answers after shutting down")
	}
}

// mountTmpfs mounts a tmpfs of the given size at dir, or skips the test
// where that is not allowed.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system needs root")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "agora-test", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

func TestDiskFullFailsClearlyAndRecovers(t *testing.T) {
	f := newFixture(t)
	r := rand.New(rand.NewPCG(3, 4))
	files := helloFiles("example.com/big", "big")
	files["data.txt"] = randomText(r, 3<<20)
	big := f.add(t, modtest.Module{Path: "example.com/big", Version: "v1.0.0", Files: files})
	data := filepath.Join(t.TempDir(), "data")
	os.Mkdir(data, 0o755)
	mountTmpfs(t, data, "1m")

	a := startAgora(t, data, nil, f.agoraArgs("")...)
	env := f.goEnv(t, a)
	mustGo(t, "", env, "mod", "download", "example.com/hello@v1.0.0")

	const bigZip = "/example.com/big/@v/v1.0.0.zip"
	code, _, body := get(t, a.URL+bigZip)
	if code != http.StatusInsufficientStorage || !strings.Contains(body, "no space left") {
		t.Errorf("fill on a full disk = %d %q, want 507 saying no space is left", code, body)
	}
	for _, file := range storeFiles(t, data) {
		if strings.HasSuffix(file, "big/@v/v1.0.0.zip") {
			t.Errorf("a zip was stored on a full disk: %s", file)
		}
	}
	if leftovers, _ := os.ReadDir(filepath.Join(data, ".tmp")); len(leftovers) != 0 {
		t.Errorf("temporary files left after the failed fill: %v", leftovers)
	}
	// Cached versions are still served.
	out := mustGo(t, "", f.goEnv(t, a), "mod", "download", "-json", "example.com/hello@v1.0.0")
	if d := parseDownload(t, out)[0]; d.Sum != f.mod(t, "example.com/hello@v1.0.0").ZipHash {
		t.Errorf("cached version on a full disk: %+v", d)
	}

	// Space returns: the same request now succeeds.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", data).CombinedOutput(); err != nil {
		t.Fatalf("growing the tmpfs: %v %s", err, out)
	}
	code, _, body = get(t, a.URL+bigZip)
	if code != 200 || body != string(big.Zip) {
		t.Errorf("fill after space returned = %d, %d bytes", code, len(body))
	}
}
