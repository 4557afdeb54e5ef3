// Package e2e holds Agora's end-to-end tests: they build the agora binary,
// start `agora serve` as a process against hermetic upstreams and a test
// checksum database on 127.0.0.1, and drive it with the real go command.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agora-mirror/agora/internal/modtest"
)

// agoraBin is the agora binary built once by TestMain.
var agoraBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agora-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agoraBin = filepath.Join(dir, "agora")
	build := exec.Command("go", "build", "-o", agoraBin, "github.com/agora-mirror/agora/cmd/agora")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building agora:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// agora is a running `agora serve` process.
type agora struct {
	URL     string
	DataDir string
	cmd     *exec.Cmd
	logs    *modtest.SyncBuffer
	done    chan struct{}
}

var addrRE = regexp.MustCompile(`msg="agora serving" addr=(\S+)`)

// startAgora runs `agora serve` with its data in dataDir (a new temporary
// directory if empty) and the given flags, and waits until it listens.
// The environment holds no AGORA_* or GO* variables unless given in env.
func startAgora(t *testing.T, dataDir string, env []string, args ...string) *agora {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	a := &agora{DataDir: dataDir, logs: new(modtest.SyncBuffer), done: make(chan struct{})}
	full := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir}, args...)
	a.cmd = exec.Command(agoraBin, full...)
	a.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	pr, pw := io.Pipe()
	a.cmd.Stderr = io.MultiWriter(a.logs, pw)
	a.cmd.Stdout = a.logs
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("starting agora: %v", err)
	}
	go func() {
		a.cmd.Wait()
		pw.Close()
		close(a.done)
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				addr <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() {
		a.stop(t)
		if t.Failed() {
			t.Logf("agora logs:\n%s", a.logs.String())
		}
	})
	select {
	case ad := <-addr:
		a.URL = "http://" + ad
	case <-a.done:
		t.Fatalf("agora exited before serving:\n%s", a.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("agora did not start:\n%s", a.logs.String())
	}
	return a
}

// stop ends the process with SIGTERM (SIGKILL if it lingers).
func (a *agora) stop(t *testing.T) {
	select {
	case <-a.done:
		return
	default:
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
		t.Errorf("agora did not stop on SIGTERM")
	}
}

// kill ends the process with SIGKILL, as a crash would.
func (a *agora) kill() {
	a.cmd.Process.Kill()
	<-a.done
}

// get fetches path from the server and returns status, headers and body.
func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	return do(t, http.MethodGet, url, nil)
}

func do(t *testing.T, method, url string, hdr http.Header) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// fixture is a hermetic world: a test checksum database, an upstream proxy
// that serves it, and some modules registered with both.
type fixture struct {
	DB   *modtest.SumDB
	Up   *modtest.Upstream
	Mods map[string]*modtest.Built // by path@version
}

const dbName = "sum.agora.test"

// helloFiles returns the files of a small library module.
func helloFiles(path, greeting string) map[string]string {
	pkg := path[strings.LastIndex(path, "/")+1:]
	return map[string]string{
		"go.mod":    "module " + path + "\n\ngo 1.21\n",
		pkg + ".go": "// Package " + pkg + " greets.\npackage " + pkg + "\n\n// Hello returns a greeting.\nfunc Hello() string { return " + fmt.Sprintf("%q", greeting) + " }\n",
		"LICENSE":   "Public domain, for tests.\n",
	}
}

// newFixture builds the standard modules and serves them.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{DB: modtest.NewSumDB(t, dbName), Mods: make(map[string]*modtest.Built)}
	f.Up = modtest.NewUpstream(t)
	f.Up.ServeSumDB(f.DB)
	for _, m := range []modtest.Module{
		{Path: "example.com/hello", Version: "v1.0.0", Files: helloFiles("example.com/hello", "hello v1.0.0")},
		{Path: "example.com/hello", Version: "v1.1.0", Files: helloFiles("example.com/hello", "hello v1.1.0")},
		{Path: "example.com/hello", Version: "v1.2.0-pre.1", Files: helloFiles("example.com/hello", "hello pre")},
		{Path: "example.com/hello", Version: "v1.1.1-0.20240301000000-abcdef123456", Files: helloFiles("example.com/hello", "hello pseudo")},
		{Path: "example.com/hello/v2", Version: "v2.0.0", Files: helloFiles("example.com/hello/v2", "hello v2")},
		{Path: "example.com/old", Version: "v2.0.0+incompatible", Files: map[string]string{"old.go": "package old\n\n// Old is old.\nconst Old = 2\n"}},
		{Path: "github.com/Upper/Case", Version: "v1.0.0", Files: helloFiles("github.com/Upper/Case", "case")},
		{Path: "example.com/onlypseudo", Version: "v0.0.0-20240102030405-0123456789ab", Files: helloFiles("example.com/onlypseudo", "pseudo")},
	} {
		f.add(t, m)
	}
	return f
}

func (f *fixture) add(t *testing.T, m modtest.Module) *modtest.Built {
	b := modtest.MustBuild(t, m)
	f.DB.Add(b)
	f.Up.Add(b)
	f.Mods[m.Path+"@"+m.Version] = b
	return b
}

// mod returns a built module by path@version.
func (f *fixture) mod(t *testing.T, pv string) *modtest.Built {
	t.Helper()
	b := f.Mods[pv]
	if b == nil {
		t.Fatalf("no fixture module %s", pv)
	}
	return b
}

// agoraArgs returns the flags that point agora at the fixture: the
// upstream chain and the test checksum database (reached through the
// upstream's /sumdb/ proxy).
func (f *fixture) agoraArgs(upstream string) []string {
	if upstream == "" {
		upstream = f.Up.URL
	}
	return []string{"--upstream", upstream, "--sumdb", f.DB.VerifierKey}
}

// goEnv returns a go command environment that uses a as its only proxy and
// verifies sums with the test database through it.
func (f *fixture) goEnv(t *testing.T, a *agora, extra ...string) []string {
	return modtest.GoEnv(t, append([]string{"GOPROXY=" + a.URL, "GOSUMDB=" + f.DB.VerifierKey}, extra...)...)
}

// runGo runs the go command in dir (a new temporary directory if empty).
func runGo(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return modtest.RunGo(ctx, dir, env, args...)
}

func mustGo(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	out, err := runGo(t, dir, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// storeFiles lists the files under the data directory's module tree, as
// paths relative to it.
func storeFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	var files []string
	root := filepath.Join(dataDir, "mod")
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	return files
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
