package direct_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agora-mirror/agora/internal/direct"
	"github.com/agora-mirror/agora/internal/modtest"
	"golang.org/x/mod/module"
)

const host = "git.example.test"

// newFetcher returns a Fetcher on a fresh Dir that reaches s through its
// proxy, as Agora would with HTTP_PROXY in its environment. edit may
// change the options first.
func newFetcher(t *testing.T, s *modtest.GitServer, edit func(*direct.Options)) *direct.Fetcher {
	t.Helper()
	env := map[string]string{"PATH": os.Getenv("PATH")}
	if s != nil {
		for _, kv := range s.ProxyEnv() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	o := direct.Options{Dir: t.TempDir(), Insecure: host, Timeout: time.Minute}
	if edit != nil {
		edit(&o)
	}
	f, err := direct.New(direct.WithGetenv(o, func(k string) string { return env[k] }))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// goModJSON is `go mod download -json` output.
type goModJSON struct {
	Path, Version, Error  string
	Info, GoMod, Zip, Sum string
	GoModSum              string
}

// reference downloads path@version pairs with a plain go command, fresh
// GOPATH and GOPROXY=direct, straight from s: what Fetcher must equal.
func reference(t *testing.T, s *modtest.GitServer, args ...string) map[string]goModJSON {
	t.Helper()
	env := modtest.GoEnv(t, append(s.ProxyEnv(), "GOPROXY=direct", "GOSUMDB=off", "GOPRIVATE="+host)...)
	out, err := modtest.RunGo(testCtx(t), t.TempDir(), env, append([]string{"mod", "download", "-json"}, args...)...)
	if err != nil {
		t.Fatalf("reference download: %v", err)
	}
	res := make(map[string]goModJSON)
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var d goModJSON
		if err := dec.Decode(&d); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("reference download output: %v\n%s", err, out)
		}
		res[d.Path+"@"+d.Version] = d
	}
	return res
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameFiles checks that m has the reference's hashes and byte-identical
// .info, .mod and .zip files.
func sameFiles(t *testing.T, m *direct.Module, ref goModJSON) {
	t.Helper()
	if m.Sum != ref.Sum || m.GoModSum != ref.GoModSum {
		t.Errorf("%s@%s: sums %s %s, go command made %s %s", m.Path, m.Version, m.Sum, m.GoModSum, ref.Sum, ref.GoModSum)
	}
	for _, f := range []struct{ got, want string }{{m.Info, ref.Info}, {m.GoMod, ref.GoMod}, {m.Zip, ref.Zip}} {
		if !bytes.Equal(readFile(t, f.got), readFile(t, f.want)) {
			t.Errorf("%s@%s: %s differs from the go command's %s", m.Path, m.Version, f.got, f.want)
		}
	}
	esc, _ := module.EscapePath(m.Path)
	if want := filepath.Join("cache", "download", filepath.FromSlash(esc), "@v", m.Version+".zip"); !strings.HasSuffix(m.Zip, want) {
		t.Errorf("Zip = %s, want it to end in %s", m.Zip, want)
	}
}

// layouts builds a server with a repository for each way a module can
// sit in one.
func layouts(t *testing.T) (s *modtest.GitServer, pseudo string, c map[string]string) {
	s = modtest.NewGitServer(t, host)
	c = make(map[string]string)

	lib := s.NewRepo(t, "lib")
	c["lib1"] = lib.Commit(t, "v1.0.0", map[string]string{
		"go.mod": "module git.example.test/lib\n\ngo 1.21\n",
		"lib.go": "package lib\n\nconst V = 1\n",
	})
	lib.Tag(t, "v1.0.0", c["lib1"])
	c["lib2"] = lib.Commit(t, "v1.1.0", map[string]string{"lib.go": "package lib\n\nconst V = 2\n"})
	lib.Tag(t, "v1.1.0", c["lib2"])
	c["lib3"] = lib.Commit(t, "untagged", map[string]string{"lib.go": "package lib\n\nconst V = 3\n"})
	c["feature"] = lib.Commit(t, "feature", map[string]string{"feature.go": "package lib\n"})
	lib.Branch(t, "feature", c["feature"])
	// main goes back to lib3: the feature commit is only on its branch.
	lib.Checkout(t, "main", c["lib3"])
	lib.Branch(t, "main", c["lib3"])
	pseudo = module.PseudoVersion("v1", "v1.1.0", time.Date(2024, 1, 1, 2, 0, 0, 0, time.UTC), c["lib3"][:12])

	multi := s.NewRepo(t, "multi")
	c["multi"] = multi.Commit(t, "two modules", map[string]string{
		"go.mod":     "module git.example.test/multi\n\ngo 1.21\n",
		"m.go":       "package multi\n",
		"sub/go.mod": "module git.example.test/multi/sub\n\ngo 1.21\n",
		"sub/s.go":   "package sub\n",
	})
	multi.Tag(t, "v1.0.0", c["multi"])
	multi.Tag(t, "sub/v1.0.0", c["multi"])

	majorDir := s.NewRepo(t, "majordir")
	c["majordir"] = majorDir.Commit(t, "v2 in a directory", map[string]string{
		"go.mod":    "module git.example.test/majordir\n\ngo 1.21\n",
		"m.go":      "package majordir\n",
		"v2/go.mod": "module git.example.test/majordir/v2\n\ngo 1.21\n",
		"v2/m.go":   "package majordir\n\nconst Major = 2\n",
	})
	majorDir.Tag(t, "v2.0.0", c["majordir"])

	majorBranch := s.NewRepo(t, "majorbranch")
	c["mb1"] = majorBranch.Commit(t, "v1", map[string]string{
		"go.mod": "module git.example.test/majorbranch\n\ngo 1.21\n",
		"m.go":   "package majorbranch\n",
	})
	majorBranch.Tag(t, "v1.0.0", c["mb1"])
	majorBranch.Checkout(t, "v2", "")
	c["mb2"] = majorBranch.Commit(t, "v2", map[string]string{
		"go.mod": "module git.example.test/majorbranch/v2\n\ngo 1.21\n",
		"m.go":   "package majorbranch\n\nconst Major = 2\n",
	})
	majorBranch.Tag(t, "v2.1.0", c["mb2"])

	retract := s.NewRepo(t, "retract")
	retract.Tag(t, "v1.0.0", retract.Commit(t, "bad", map[string]string{"go.mod": "module git.example.test/retract\n"}))
	retract.Tag(t, "v1.0.1", retract.Commit(t, "retract v1.0.0", map[string]string{
		"go.mod": "module git.example.test/retract\n\nretract v1.0.0 // broken\n",
	}))

	old := s.NewRepo(t, "old")
	c["old"] = old.Commit(t, "no go.mod", map[string]string{"old.go": "package old\n"})
	old.Tag(t, "v2.0.0", c["old"])
	return s, pseudo, c
}

func TestDownloadMatchesTheGoCommand(t *testing.T) {
	s, pseudo, _ := layouts(t)
	cases := []struct{ name, path, version string }{
		{"tagged", host + "/lib", "v1.0.0"},
		{"tagged later", host + "/lib", "v1.1.0"},
		{"pseudo-version of an untagged commit", host + "/lib", pseudo},
		{"module in a subdirectory", host + "/multi/sub", "v1.0.0"},
		{"root module beside it", host + "/multi", "v1.0.0"},
		{"major version subdirectory", host + "/majordir/v2", "v2.0.0"},
		{"major version branch", host + "/majorbranch/v2", "v2.1.0"},
		{"incompatible", host + "/old", "v2.0.0+incompatible"},
	}
	var args []string
	for _, c := range cases {
		args = append(args, c.path+"@"+c.version)
	}
	ref := reference(t, s, args...)

	// All at once: the go processes share one module cache.
	f := newFetcher(t, s, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m, err := f.Download(testCtx(t), c.path, c.version)
			if err != nil {
				t.Fatal(err)
			}
			if m.Path != c.path || m.Version != c.version {
				t.Fatalf("Download(%s, %s) = %s@%s", c.path, c.version, m.Path, m.Version)
			}
			want, ok := ref[c.path+"@"+c.version]
			if !ok {
				t.Fatalf("no reference download for %s@%s", c.path, c.version)
			}
			sameFiles(t, m, want)
			// The unpacked copy the go command makes is not kept.
			root, _, _ := strings.Cut(m.Zip, string(filepath.Separator)+filepath.Join("cache", "download"))
			esc, _ := module.EscapePath(m.Path)
			escV, _ := module.EscapeVersion(m.Version)
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(esc)+"@"+escV)); !os.IsNotExist(err) {
				t.Errorf("the extracted module is still in the cache (%v)", err)
			}
		})
	}
}

func TestVersionsAndQueries(t *testing.T) {
	s, pseudo, c := layouts(t)
	f := newFetcher(t, s, nil)
	ctx := testCtx(t)

	for path, want := range map[string][]string{
		host + "/lib":            {"v1.0.0", "v1.1.0"},
		host + "/multi/sub":      {"v1.0.0"},
		host + "/majorbranch/v2": {"v2.1.0"},
		host + "/old":            {"v2.0.0+incompatible"},
		host + "/retract":        {"v1.0.0", "v1.0.1"}, // a proxy lists retracted versions too
		host + "/multi/nosuch":   {},                   // the repository exists, the module does not
	} {
		got, err := f.Versions(ctx, path)
		if err != nil {
			t.Errorf("Versions(%s): %v", path, err)
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("Versions(%s) = %q, want %q", path, got, want)
		}
	}

	featurePseudo := module.PseudoVersion("v1", "v1.1.0", time.Date(2024, 1, 1, 3, 0, 0, 0, time.UTC), c["feature"][:12])
	for _, q := range []struct{ query, want string }{
		{"latest", "v1.1.0"},
		{"v1.0", "v1.0.0"},
		{"v1.1.0", "v1.1.0"},
		{"main", pseudo},
		{"feature", featurePseudo},
		{c["lib3"][:10], pseudo},
		{c["lib1"][:8], "v1.0.0"},
	} {
		v, tm, err := f.Query(ctx, host+"/lib", q.query)
		if err != nil {
			t.Errorf("Query(%s): %v", q.query, err)
			continue
		}
		if v != q.want {
			t.Errorf("Query(%s) = %s, want %s", q.query, v, q.want)
		}
		if tm.IsZero() || tm.Location() != time.UTC {
			t.Errorf("Query(%s) time = %v", q.query, tm)
		}
	}

	// Download takes queries too, and answers with the canonical version.
	m, err := f.Download(ctx, host+"/lib", "feature")
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != featurePseudo {
		t.Errorf("Download(feature).Version = %s, want %s", m.Version, featurePseudo)
	}
	sameFiles(t, m, reference(t, s, host+"/lib@"+featurePseudo)[host+"/lib@"+featurePseudo])
}

func TestMissingModulesAndVersionsAreNotFound(t *testing.T) {
	s, _, _ := layouts(t)
	gone := s.NewRepo(t, "gone")
	gone.Tag(t, "v1.0.0", gone.Commit(t, "a", map[string]string{"go.mod": "module git.example.test/gone\n"}))
	f := newFetcher(t, s, nil)
	ctx := testCtx(t)
	if _, err := f.Download(ctx, host+"/gone", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	s.Delete("gone")

	check := func(what string, err error) {
		t.Helper()
		var e *direct.Error
		if !errors.Is(err, direct.ErrNotFound) || !errors.As(err, &e) || e.Kind != direct.NotFound {
			t.Errorf("%s: %v, want ErrNotFound", what, err)
		}
		if errors.Is(err, direct.ErrTimeout) {
			t.Errorf("%s: %v is also ErrTimeout", what, err)
		}
	}
	_, err := f.Download(ctx, host+"/nosuch", "v1.0.0")
	check("Download of a missing repository", err)
	_, err = f.Versions(ctx, host+"/nosuch")
	check("Versions of a missing repository", err)
	_, _, err = f.Query(ctx, host+"/nosuch", "latest")
	check("Query of a missing repository", err)
	_, err = f.Download(ctx, host+"/gone", "v1.0.1")
	check("Download from a deleted repository", err)
	_, err = f.Versions(ctx, host+"/gone")
	check("Versions of a deleted repository", err)

	_, err = f.Download(ctx, host+"/lib", "v1.9.9")
	check("Download of a missing tag", err)
	_, err = f.Download(ctx, host+"/lib", "v0.0.0-20240101000000-abcdefabcdef")
	check("Download of a pseudo-version of a missing commit", err)
	_, _, err = f.Query(ctx, host+"/lib", "nosuchbranch")
	check("Query of a missing branch", err)
	_, err = f.Download(ctx, host+"/multi/nosuch", "v1.0.0")
	check("Download of a missing module in an existing repository", err)
	_, err = f.Download(ctx, host+"/lib", "bad version")
	check("Download of an impossible version", err)

	// Still there after all that.
	if _, err := f.Download(ctx, host+"/lib", "v1.1.0"); err != nil {
		t.Errorf("Download(v1.1.0): %v", err)
	}
}

func TestUnreachableHostIsANetworkError(t *testing.T) {
	f := newFetcher(t, nil, nil)
	start := time.Now()
	_, err := f.Versions(testCtx(t), "unreachable.example.test/x")
	var e *direct.Error
	if !errors.As(err, &e) || e.Kind != direct.Network {
		t.Fatalf("Versions of an unreachable host: %v, want Kind Network", err)
	}
	if errors.Is(err, direct.ErrNotFound) {
		t.Errorf("%v is ErrNotFound", err)
	}
	t.Logf("network failure took %v: %v", time.Since(start), err)
}

// randomText returns n bytes of incompressible printable text.
func randomText(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
	r := rand.New(rand.NewSource(1))
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.Intn(len(alphabet))]
	}
	return string(b)
}

func TestSharedCacheFetchesARepositoryOnce(t *testing.T) {
	const versions = 20
	const bigSize = 256 << 10
	s := modtest.NewGitServer(t, host)
	repo := s.NewRepo(t, "many")
	repo.Commit(t, "big", map[string]string{
		"go.mod":  "module git.example.test/many\n\ngo 1.21\n",
		"big.txt": randomText(bigSize),
	})
	var tags []string
	for i := range versions {
		tag := fmt.Sprintf("v1.%d.0", i)
		repo.Tag(t, tag, repo.Commit(t, tag, map[string]string{"v.go": fmt.Sprintf("package many\n\nconst V = %d\n", i)}))
		tags = append(tags, tag)
	}

	f := newFetcher(t, s, nil)
	ctx := testCtx(t)
	start := time.Now()
	for _, tag := range tags {
		if _, err := f.Download(ctx, host+"/many", tag); err != nil {
			t.Fatal(err)
		}
	}
	shared, sharedBytes := s.UploadPacks("many"), s.UploadPackBytes("many")
	t.Logf("shared cache: %d versions in %v, %d fetches, %d bytes", versions, time.Since(start), shared, sharedBytes)

	// The same versions again cost nothing: they are in the module cache.
	for _, tag := range tags[:3] {
		if _, err := f.Download(ctx, host+"/many", tag); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.UploadPacks("many"); n != shared {
		t.Errorf("downloading cached versions fetched %d more times", n-shared)
	}

	// A fresh GOPATH per version clones everything every time (two at a
	// time, to keep the test short).
	start = time.Now()
	var wg sync.WaitGroup
	work := make(chan string)
	for range 2 {
		wg.Go(func() {
			for tag := range work {
				env := modtest.GoEnv(t, append(s.ProxyEnv(), "GOPROXY=direct", "GOSUMDB=off", "GOPRIVATE="+host)...)
				if out, err := modtest.RunGo(ctx, t.TempDir(), env, "mod", "download", "-json", host+"/many@"+tag); err != nil {
					t.Errorf("%v\n%s", err, out)
				}
			}
		})
	}
	for _, tag := range tags {
		work <- tag
	}
	close(work)
	wg.Wait()
	fresh, freshBytes := s.UploadPacks("many")-shared, s.UploadPackBytes("many")-sharedBytes
	t.Logf("fresh GOPATHs: %d versions in %v, %d fetches, %d bytes", versions, time.Since(start), fresh, freshBytes)

	// Observed with go1.26 and git 2.39: the go command downloads the
	// first version with two shallow fetches (the tag, and the latest
	// version, whose go.mod it reads for retractions), which send the big
	// file once (compressed, about 3/4 of its size). That teaches the
	// Fetcher where the repository is, and the second version makes one
	// shallow fetch of every release tag into the Fetcher's own clone
	// (the tagged path), which sends the big file a second time; the other
	// 18 versions need no fetch. A fresh GOPATH per version makes two
	// fetches per version and receives the whole tree each time.
	if shared > 3 {
		t.Errorf("shared cache: %d fetches for %d versions, want at most 3", shared, versions)
	}
	if sharedBytes > 2*bigSize {
		t.Errorf("shared cache: %d bytes fetched, want at most two copies of the %d-byte file", sharedBytes, bigSize)
	}
	if freshBytes < 5*sharedBytes {
		t.Errorf("fresh GOPATHs fetched %d bytes, shared cache %d: want the fresh loop to cost 5 times more", freshBytes, sharedBytes)
	}
}

func TestCredentials(t *testing.T) {
	const token = "tok-3f9a7c2e51b84d6a"
	const password = "pw-8c1d2e3f4a5b6c7d"
	s := modtest.NewGitServer(t, host)
	r := s.NewRepo(t, "private")
	c := r.Commit(t, "a", map[string]string{"go.mod": "module git.example.test/private\n", "p.go": "package private\n"})
	r.Tag(t, "v1.0.0", c)

	ctx := testCtx(t)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	t.Run("token", func(t *testing.T) {
		s.RequireAuth("x-access-token", token)
		f := newFetcher(t, s, func(o *direct.Options) {
			o.Tokens = map[string]string{host: token}
			o.Logger = logger
		})
		if _, err := f.Download(ctx, host+"/private", "v1.0.0"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("netrc", func(t *testing.T) {
		s.RequireAuth("alice", password)
		netrc := filepath.Join(t.TempDir(), "netrc")
		if err := os.WriteFile(netrc, []byte("machine "+host+"\n  login alice\n  password "+password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		f := newFetcher(t, s, func(o *direct.Options) { o.Netrc = netrc; o.Logger = logger })
		if _, err := f.Download(ctx, host+"/private", "v1.0.0"); err != nil {
			t.Fatal(err)
		}
		if vs, err := f.Versions(ctx, host+"/private"); err != nil || !slices.Equal(vs, []string{"v1.0.0"}) {
			t.Fatalf("Versions = %q, %v", vs, err)
		}
	})
	t.Run("none or wrong", func(t *testing.T) {
		s.RequireAuth("x-access-token", token)
		for name, tokens := range map[string]map[string]string{
			"none":  nil,
			"wrong": {host: "wrong-" + token},
		} {
			f := newFetcher(t, s, func(o *direct.Options) { o.Tokens = tokens; o.Logger = logger })
			start := time.Now()
			_, err := f.Download(ctx, host+"/private", "v1.0.0")
			elapsed := time.Since(start)
			var e *direct.Error
			if !errors.As(err, &e) || e.Kind != direct.Auth {
				t.Fatalf("%s: Download = %v, want Kind Auth", name, err)
			}
			if errors.Is(err, direct.ErrNotFound) {
				t.Errorf("%s: an auth failure is ErrNotFound", name)
			}
			if elapsed > 15*time.Second {
				t.Errorf("%s: the auth failure took %v: something waited for a prompt", name, elapsed)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("%s: the error shows the token: %v", name, err)
			}
			t.Logf("%s: failed in %v: %v", name, elapsed, err)
		}
	})
	if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), password) {
		t.Errorf("a credential reached the log:\n%s", logs.String())
	}
}

func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	s := modtest.NewGitServer(t, host)
	s.NewRepo(t, "hang")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the server closes
	s.Handle("hang", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // never answers; returns when git is gone
		case <-r.Context().Done():
		case <-release:
		}
	}))
	var dir string
	f := newFetcher(t, s, func(o *direct.Options) {
		o.Timeout = 1500 * time.Millisecond
		dir = o.Dir
	})

	start := time.Now()
	_, err := f.Download(testCtx(t), host+"/hang", "v1.0.0")
	elapsed := time.Since(start)
	if !errors.Is(err, direct.ErrTimeout) {
		t.Fatalf("Download from a hanging server: %v, want ErrTimeout", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v does not wrap context.DeadlineExceeded", err)
	}
	if elapsed > 6*time.Second {
		t.Errorf("timing out took %v", elapsed)
	}
	if procs := processesWithEnv(t, "HOME="+filepath.Join(dir, "home")); len(procs) > 0 {
		t.Errorf("processes of the timed-out fetch survive: %v", procs)
	}

	// A caller that gives up stops the go command the same way.
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	_, err = f.Download(ctx, host+"/hang", "v1.0.1")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, direct.ErrTimeout) {
		t.Errorf("Download with an expiring context: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err = f.Versions(ctx, host+"/hang")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Versions with a cancelled context: %v", err)
	}
	if procs := processesWithEnv(t, "HOME="+filepath.Join(dir, "home")); len(procs) > 0 {
		t.Errorf("processes of cancelled fetches survive: %v", procs)
	}
}

// processesWithEnv lists the live processes whose environment holds
// entry, as "pid command".
func processesWithEnv(t *testing.T, entry string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var found []string
	for _, e := range ents {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", pid, "environ"))
		if err != nil {
			continue
		}
		if slices.Contains(strings.Split(string(env), "\x00"), entry) {
			cmd, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
			found = append(found, pid+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return found
}

func TestConcurrencyIsBounded(t *testing.T) {
	s := modtest.NewGitServer(t, host)
	s.NewRepo(t, "hang")
	ok := s.NewRepo(t, "ok")
	ok.Tag(t, "v1.0.0", ok.Commit(t, "a", map[string]string{"go.mod": "module git.example.test/ok\n"}))
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	started := make(chan struct{}, 10)
	s.Handle("hang", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	f := newFetcher(t, s, func(o *direct.Options) { o.MaxConcurrent = 1; o.Timeout = 2 * time.Second })

	done := make(chan error)
	go func() {
		_, err := f.Download(context.Background(), host+"/hang", "v1.0.0")
		done <- err
	}()
	<-started // the one slot is taken

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.Versions(ctx, host+"/ok")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Versions waiting for a slot: %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("waiting for a slot ignored the context for %v", d)
	}
	for _, r := range s.Requests() {
		if strings.Contains(r, "/ok") {
			t.Errorf("a second go process ran beside the first: %s", r)
		}
	}
	if err := <-done; !errors.Is(err, direct.ErrTimeout) {
		t.Errorf("the hanging download: %v", err)
	}
	if vs, err := f.Versions(testCtx(t), host+"/ok"); err != nil || len(vs) != 1 {
		t.Errorf("Versions once the slot is free: %q, %v", vs, err)
	}
}

func TestATimedOutFetchLeavesTheCacheUsable(t *testing.T) {
	s := modtest.NewGitServer(t, host)
	repo := s.NewRepo(t, "slow")
	repo.Commit(t, "big", map[string]string{
		"go.mod":  "module git.example.test/slow\n\ngo 1.21\n",
		"big.txt": randomText(1 << 20),
	})
	repo.Tag(t, "v1.0.0", repo.Commit(t, "v1.0.0", map[string]string{"s.go": "package slow\n"}))

	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	// Fetches get half their answer, then nothing: git is killed in the
	// middle of receiving a pack, holding its locks.
	s.Handle("slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			s.Backend().ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		s.Backend().ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if len(body) < 64<<10 { // ls-refs
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	var dir string
	f := newFetcher(t, s, func(o *direct.Options) { o.Timeout = 3 * time.Second; dir = o.Dir })
	ctx := testCtx(t)
	if _, err := f.Download(ctx, host+"/slow", "v1.0.0"); !errors.Is(err, direct.ErrTimeout) {
		t.Fatalf("Download from a stalling server: %v, want ErrTimeout", err)
	}
	// git, stopped with SIGTERM, removed its lock files (a SIGKILLed git
	// leaves shallow.lock here; the go command then falls back to fetching
	// the repository's whole history).
	locks, _ := filepath.Glob(filepath.Join(dir, "modcache", "cache", "vcs", "*", "*.lock"))
	if len(locks) > 0 {
		t.Errorf("the killed fetch left lock files in the VCS cache: %v", locks)
	}
	s.Handle("slow", nil)
	if _, err := f.Download(ctx, host+"/slow", "v1.0.0"); err != nil {
		t.Fatalf("Download after the server recovered: %v", err)
	}
}
