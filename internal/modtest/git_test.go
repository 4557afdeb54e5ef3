package modtest

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const gitHost = "git.example.test"

// goGitEnv is a go command environment that fetches from s directly.
func goGitEnv(t *testing.T, s *GitServer) []string {
	return GoEnv(t, append(s.ProxyEnv(), "GOPROXY=direct", "GOSUMDB=off", "GOPRIVATE="+gitHost)...)
}

// envValue returns the value of key in env.
func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func TestGitServerServesModulesToTheGoCommand(t *testing.T) {
	s := NewGitServer(t, gitHost)
	r := s.NewRepo(t, "acme/lib")
	if r.Path != gitHost+"/acme/lib" {
		t.Fatalf("Repo.Path = %q", r.Path)
	}
	c1 := r.Commit(t, "first", map[string]string{
		"go.mod":     "module git.example.test/acme/lib\n\ngo 1.21\n",
		"lib.go":     "package lib\n",
		"sub/go.mod": "module git.example.test/acme/lib/sub\n\ngo 1.21\n",
		"sub/sub.go": "package sub\n",
	})
	r.Tag(t, "v1.0.0", c1)
	r.Tag(t, "sub/v1.0.0", c1)

	env := goGitEnv(t, s)
	for _, q := range []string{gitHost + "/acme/lib@v1.0.0", gitHost + "/acme/lib/sub@v1.0.0"} {
		d, err := goDownload(t, env, q)
		if err != nil {
			t.Fatalf("go mod download %s: %v", q, err)
		}
		if !strings.HasPrefix(d.Sum, "h1:") || !strings.HasPrefix(d.GoModSum, "h1:") {
			t.Errorf("go mod download %s: sums %q %q", q, d.Sum, d.GoModSum)
		}
	}
	if n := s.UploadPacks("acme/lib"); n < 1 {
		t.Errorf("UploadPacks = %d, want at least 1", n)
	}
	if s.UploadPackBytes("acme/lib") <= 0 {
		t.Errorf("UploadPackBytes = %d, want > 0", s.UploadPackBytes("acme/lib"))
	}
	reqs := strings.Join(s.Requests(), "\n")
	for _, want := range []string{
		"GET " + gitHost + "/acme/lib/sub?go-get=1",
		"GET " + gitHost + "/acme/lib.git/info/refs?service=git-upload-pack",
		"POST " + gitHost + "/acme/lib.git/git-upload-pack",
	} {
		if !strings.Contains(reqs, want) {
			t.Errorf("requests lack %q:\n%s", want, reqs)
		}
	}

	// A subdirectory's meta tag names the repository root.
	if body := getMeta(t, s, "/acme/lib/sub/pkg"); !strings.Contains(body,
		`content="git.example.test/acme/lib git http://git.example.test/acme/lib.git"`) {
		t.Errorf("meta for a subdirectory:\n%s", body)
	}
	// An unknown path gets a meta tag for its first element, as a
	// hosting service answers for any path.
	if body := getMeta(t, s, "/nosuch/x"); !strings.Contains(body, `content="git.example.test/nosuch git http://git.example.test/nosuch.git"`) {
		t.Errorf("meta for an unknown repository:\n%s", body)
	}
}

func getMeta(t *testing.T, s *GitServer, path string) string {
	t.Helper()
	req, err := http.NewRequest("GET", s.URL+path+"?go-get=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = gitHost
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s?go-get=1: %s", path, resp.Status)
	}
	return string(body)
}

func TestGitRepoCommitsAreDeterministicAndTagsMove(t *testing.T) {
	commit := func() (*GitServer, *Repo, []string) {
		s := NewGitServer(t, gitHost)
		r := s.NewRepo(t, "lib")
		a := r.Commit(t, "a", map[string]string{"go.mod": "module git.example.test/lib\n", "a.go": "package lib\n"})
		b := r.Commit(t, "b", map[string]string{"a.go": "", "b.go": "package lib\n"})
		return s, r, []string{a, b}
	}
	s, r, first := commit()
	_, _, second := commit()
	if strings.Join(first, " ") != strings.Join(second, " ") {
		t.Errorf("same commits, different hashes: %v and %v", first, second)
	}
	if len(first[0]) != 40 {
		t.Errorf("Commit returned %q, want a full hash", first[0])
	}
	if _, err := os.Stat(filepath.Join(r.Dir, "a.go")); !os.IsNotExist(err) {
		t.Errorf("a.go not deleted by empty content: %v", err)
	}

	bare := filepath.Join(s.root, "lib.git")
	rev := func(ref string) string {
		out, err := s.git(bare, "rev-parse", ref)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	r.Tag(t, "v1.0.0", first[0])
	r.Tag(t, "v1.0.0", first[1])
	if got := rev("refs/tags/v1.0.0"); got != first[1] {
		t.Errorf("moved tag points at %s, want %s", got, first[1])
	}
	r.Branch(t, "release", first[0])
	if got := rev("refs/heads/release"); got != first[0] {
		t.Errorf("branch points at %s, want %s", got, first[0])
	}
	r.Checkout(t, "v2", first[0])
	c := r.Commit(t, "on v2", map[string]string{"v2.go": "package lib\n"})
	if got := rev("refs/heads/v2"); got != c {
		t.Errorf("branch v2 at %s after Commit, want %s", got, c)
	}
	if got := rev("refs/heads/main"); got != first[1] {
		t.Errorf("main moved to %s by a commit on v2", got)
	}
	fresh := s.NewRepo(t, "fresh")
	fresh.Checkout(t, "trunk", "")
	fc := fresh.Commit(t, "first on trunk", map[string]string{"f.go": "package f\n"})
	if got, err := s.git(filepath.Join(s.root, "fresh.git"), "rev-parse", "refs/heads/trunk"); err != nil || strings.TrimSpace(got) != fc {
		t.Errorf("first commit after Checkout of an unborn branch: trunk = %q (%v), want %s", got, err, fc)
	}
	if got, err := s.git(bare, "log", "-1", "--format=%cI", c); err != nil || !strings.HasPrefix(got, "2024-01-01T02:00:00") {
		t.Errorf("third commit's date = %q (%v), want 2024-01-01T02:00:00Z", got, err)
	}
}

func TestGitServerAuthDeleteAndHandle(t *testing.T) {
	s := NewGitServer(t, gitHost)
	r := s.NewRepo(t, "private")
	c := r.Commit(t, "a", map[string]string{"go.mod": "module git.example.test/private\n", "p.go": "package private\n"})
	r.Tag(t, "v1.0.0", c)
	r.Tag(t, "v1.0.1", r.Commit(t, "b", map[string]string{"p.go": "package private // v1.0.1\n"}))
	// The go command fetches the latest version too (for its retractions):
	// v1.0.0 stays unfetched for the checks below.
	r.Tag(t, "v1.0.2", r.Commit(t, "c", map[string]string{"p.go": "package private // v1.0.2\n"}))
	s.RequireAuth("alice", "s3cret-password")

	env := goGitEnv(t, s)
	start := time.Now()
	if _, err := goDownload(t, env, gitHost+"/private@v1.0.1"); err == nil {
		t.Fatal("download without credentials succeeded")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("failing without credentials took %v", d)
	}
	netrc := "machine " + gitHost + " login alice password s3cret-password\n"
	if err := os.WriteFile(filepath.Join(envValue(env, "HOME"), ".netrc"), []byte(netrc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := goDownload(t, env, gitHost+"/private@v1.0.1"); err != nil {
		t.Fatalf("download with netrc credentials: %v", err)
	}

	s.RequireAuth("", "")
	s.Handle("private", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	if _, err := goDownload(t, env, gitHost+"/private@v1.0.0"); err == nil {
		t.Fatal("download through a failing handler succeeded")
	}
	s.Handle("private", nil)
	s.Delete("private")
	if _, err := goDownload(t, env, gitHost+"/private@v1.0.0"); err == nil {
		t.Fatal("download of a deleted repository succeeded")
	}
	if body := getMeta(t, s, "/private"); !strings.Contains(body, "git.example.test/private.git") {
		t.Errorf("deleted repository lost its meta tag:\n%s", body)
	}
	resp, err := http.Get(s.URL + "/private.git/info/refs?service=git-upload-pack")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("info/refs of a deleted repository: %s, want 404", resp.Status)
	}
}
