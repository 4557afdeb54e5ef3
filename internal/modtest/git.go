package modtest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// GitServer serves bare git repositories over git's smart HTTP protocol
// (git http-backend run through net/http/cgi) on 127.0.0.1, and answers
// ?go-get=1 requests with go-import meta tags for module paths under Host
// (for example "git.example.test"), the way a code hosting service does.
//
// The go command reaches it as a forward proxy: [GitServer.ProxyEnv] sets
// HTTP_PROXY (and http_proxy, the only form curl, and so git, honours for
// http:// URLs) to URL and GOINSECURE to Host. The go command first tries
// https://Host/...?go-get=1, which fails at once because Host does not
// resolve, then http://Host/...?go-get=1 through the proxy; the meta tag
// names http://Host/<name>.git, which git fetches through the proxy as
// well. The server sees those requests with r.Host == Host. Go and curl
// never send requests for loopback addresses through a proxy, so other
// 127.0.0.1 servers used by the same go command are unaffected.
//
// Every git command the fixture runs, and git http-backend itself, is
// isolated from the machine's configuration (GIT_CONFIG_GLOBAL is a
// private file, GIT_CONFIG_NOSYSTEM=1). All methods are safe to call
// while the server is handling requests.
type GitServer struct {
	// URL is the server's base URL, "http://127.0.0.1:<port>", to be used
	// as HTTP_PROXY.
	URL string
	// Host is the host name of the module paths served, such as
	// "git.example.test". Module paths are Host + "/" + repository name
	// [+ "/" + subdirectory].
	Host string

	root    string // GIT_PROJECT_ROOT: bare repositories <root>/<name>.git
	tmp     string // working clones, HOME and git configuration
	gitEnv  []string
	backend http.Handler
	srv     *httptest.Server

	mu          sync.Mutex
	repos       map[string]bool // name -> exists (false: deleted)
	handlers    map[string]http.Handler
	user, pass  string
	uploadPacks map[string]int
	packBytes   map[string]int64
	requests    []string
}

// gitBaseTime is the author and committer date of a [Repo]'s first
// commit; every further commit in the same repository is one hour later.
var gitBaseTime = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// NewGitServer starts a git server for module paths under host. It is
// closed by t.Cleanup. It needs git, with git-http-backend in
// `git --exec-path`.
func NewGitServer(t testing.TB, host string) *GitServer {
	t.Helper()
	tmp := t.TempDir()
	s := &GitServer{
		Host:        host,
		root:        filepath.Join(tmp, "repos"),
		tmp:         tmp,
		repos:       make(map[string]bool),
		handlers:    make(map[string]http.Handler),
		uploadPacks: make(map[string]int),
		packBytes:   make(map[string]int64),
	}
	home := filepath.Join(tmp, "home")
	for _, d := range []string{s.root, home} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatalf("modtest.NewGitServer: %v", err)
		}
	}
	gitconfig := filepath.Join(tmp, "gitconfig")
	const config = "[init]\n\tdefaultBranch = main\n[user]\n\tname = Agora Test\n\temail = test@agora.invalid\n"
	if err := os.WriteFile(gitconfig, []byte(config), 0o666); err != nil {
		t.Fatalf("modtest.NewGitServer: %v", err)
	}
	s.gitEnv = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"GIT_CONFIG_GLOBAL=" + gitconfig,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Agora Test",
		"GIT_AUTHOR_EMAIL=test@agora.invalid",
		"GIT_COMMITTER_NAME=Agora Test",
		"GIT_COMMITTER_EMAIL=test@agora.invalid",
	}
	execPath, err := s.git(tmp, "--exec-path")
	if err != nil {
		t.Fatalf("modtest.NewGitServer: %v", err)
	}
	s.backend = &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(execPath), "git-http-backend"),
		Env: []string{
			"GIT_PROJECT_ROOT=" + s.root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_GLOBAL=" + gitconfig,
			"GIT_CONFIG_NOSYSTEM=1",
			"HOME=" + home,
		},
	}
	s.srv = newLocalServer(t, http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// git runs git with args in dir, isolated from the machine's
// configuration, and returns its standard output.
func (s *GitServer) git(dir string, args ...string) (string, error) {
	return s.gitWithEnv(dir, nil, args...)
}

func (s *GitServer) gitWithEnv(dir string, extra []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(append([]string(nil), s.gitEnv...), extra...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out), nil
}

// NewRepo creates an empty bare repository <name>.git and a working clone
// of it. It is served for the module paths Host+"/"+name and below them
// (Host/name/sub, Host/name/v2, ...). name may contain slashes
// ("acme/lib"); it must not be empty or end in ".git".
func (s *GitServer) NewRepo(t testing.TB, name string) *Repo {
	t.Helper()
	if name == "" || strings.HasSuffix(name, ".git") || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") {
		t.Fatalf("modtest.NewRepo: bad repository name %q", name)
	}
	bare := filepath.Join(s.root, filepath.FromSlash(name)+".git")
	work := filepath.Join(s.tmp, "work", filepath.FromSlash(name))
	for _, d := range []string{bare, work} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatalf("modtest.NewRepo: %v", err)
		}
	}
	steps := []struct {
		dir  string
		args []string
	}{
		{bare, []string{"init", "-q", "--bare", "-b", "main"}},
		// Like the big hosting services: fetching any reachable commit by
		// hash works with every protocol version.
		{bare, []string{"config", "uploadpack.allowReachableSHA1InWant", "true"}},
		{work, []string{"init", "-q", "-b", "main"}},
		{work, []string{"remote", "add", "origin", bare}},
	}
	for _, st := range steps {
		if _, err := s.git(st.dir, st.args...); err != nil {
			t.Fatalf("modtest.NewRepo: %v", err)
		}
	}
	s.mu.Lock()
	s.repos[name] = true
	s.mu.Unlock()
	return &Repo{Name: name, Path: s.Host + "/" + name, Dir: work, s: s}
}

// RequireAuth makes every git request (but not the go-get meta answer,
// which hosting services give to anyone) need HTTP Basic authentication
// with user and password from now on; requests without them get 401 with
// a WWW-Authenticate challenge, and wrong ones 401 too. An empty user
// and password turn authentication off again.
func (s *GitServer) RequireAuth(user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.pass = user, password
}

// Handle makes h answer every git request for repository name (paths
// under /<name>.git/) instead of git http-backend, for simulating a
// broken or hanging server. A nil h restores normal service. The go-get
// meta answer is unaffected, authentication, when required, is checked
// before h is called, and the requests h answers are not counted by
// [GitServer.UploadPacks]. h may pass requests on to [GitServer.Backend].
func (s *GitServer) Handle(name string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h == nil {
		delete(s.handlers, name)
		return
	}
	s.handlers[name] = h
}

// Backend returns the handler serving git requests with git
// http-backend, without authentication or counting: a handler given to
// [GitServer.Handle] can pass requests on to it.
func (s *GitServer) Backend() http.Handler { return s.backend }

// Dir returns the directory holding the bare repositories, each at
// <Dir>/<name>.git: what a git client reaches over ssh through an
// [SSHServer] on the same machine.
func (s *GitServer) Dir() string { return s.root }

// Delete removes repository name, simulating a repository deleted from
// its hosting service: git requests for it get 404 from now on, while the
// go-get meta answer still names it (hosting services answer go-get for
// any path).
func (s *GitServer) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.repos[name]; ok {
		s.repos[name] = false
	}
	os.RemoveAll(filepath.Join(s.root, filepath.FromSlash(name)+".git"))
}

// UploadPacks reports how many times repository name was fetched from:
// the number of POST .../git-upload-pack requests that negotiate objects.
// Protocol v2 ls-refs requests, which only list references (git
// ls-remote, and the first step of every v2 fetch), are not counted.
func (s *GitServer) UploadPacks(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uploadPacks[name]
}

// UploadPackBytes reports how many response bytes the counted
// git-upload-pack requests of [GitServer.UploadPacks] sent for repository
// name: roughly the size of the packs, so it tells a full clone from an
// incremental fetch.
func (s *GitServer) UploadPackBytes(name string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.packBytes[name]
}

// Requests returns every request seen so far, in order, as "METHOD
// host/path?query" (the request URI with the Host header in front).
func (s *GitServer) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// ProxyEnv returns the environment entries a go command needs to reach
// the server: HTTP_PROXY and http_proxy set to URL, and GOINSECURE=Host
// (the server speaks plain HTTP). It leaves GOPRIVATE, GOPROXY and
// GOSUMDB to the caller. Go and git never proxy loopback addresses, so
// other servers on 127.0.0.1 are reached directly as before.
func (s *GitServer) ProxyEnv() []string {
	return []string{
		"HTTP_PROXY=" + s.URL,
		"http_proxy=" + s.URL,
		"GOINSECURE=" + s.Host,
	}
}

// serve answers one request: go-get meta tags, or git smart HTTP.
func (s *GitServer) serve(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+host+r.URL.RequestURI())
	s.mu.Unlock()

	if r.URL.Query().Get("go-get") == "1" {
		s.serveMeta(w, r)
		return
	}
	name, _, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), ".git/")
	if !ok || name == "" {
		http.NotFound(w, r)
		return
	}

	s.mu.Lock()
	user, pass := s.user, s.pass
	h := s.handlers[name]
	exists := s.repos[name]
	s.mu.Unlock()

	if user != "" || pass != "" {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="agora-test-git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
	}
	if h != nil {
		h.ServeHTTP(w, r)
		return
	}
	if !exists {
		http.Error(w, "repository not found", http.StatusNotFound)
		return
	}

	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack") && !isLsRefs(r) {
		cw := &countingWriter{ResponseWriter: w}
		s.backend.ServeHTTP(cw, r)
		s.mu.Lock()
		s.uploadPacks[name]++
		s.packBytes[name] += cw.n
		s.mu.Unlock()
		return
	}
	s.backend.ServeHTTP(w, r)
}

// isLsRefs reports whether an upload-pack request is a protocol v2
// ls-refs command, restoring the body it peeks at. git compresses large
// request bodies (an ls-refs asking for many refs among them), so a gzip
// body is read whole and decompressed to look.
func isLsRefs(r *http.Request) bool {
	if r.Header.Get("Content-Encoding") == "gzip" {
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err != nil {
			return false
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return false
		}
		peek := make([]byte, 64)
		n, _ := io.ReadFull(zr, peek)
		return bytes.Contains(peek[:n], []byte("command=ls-refs"))
	}
	br := bufio.NewReaderSize(r.Body, 512)
	peek, _ := br.Peek(64)
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, r.Body}
	return bytes.Contains(peek, []byte("command=ls-refs"))
}

// countingWriter counts the body bytes written through it.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// serveMeta answers a ?go-get=1 request for a module path under Host with
// a go-import meta tag naming the repository root: the longest known
// repository name that is the path or a prefix of it, else (like a
// hosting service answering for any path) the path's first element.
func (s *GitServer) serveMeta(w http.ResponseWriter, r *http.Request) {
	rel := strings.Trim(r.URL.Path, "/")
	if !strings.EqualFold(hostOnly(r.Host), s.Host) || rel == "" {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	name := ""
	for n := range s.repos {
		if (rel == n || strings.HasPrefix(rel, n+"/")) && len(n) > len(name) {
			name = n
		}
	}
	s.mu.Unlock()
	if name == "" {
		name, _, _ = strings.Cut(rel, "/")
	}
	prefix := s.Host + "/" + name
	content := prefix + " git http://" + prefix + ".git"
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head>\n<meta name=\"go-import\" content=\"%s\">\n</head><body>go get %s</body></html>\n",
		html.EscapeString(content), html.EscapeString(prefix))
}

// hostOnly strips a port from a Host header.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// Repo is a repository on a [GitServer] together with a working clone
// used to change it. Each change is pushed to the served bare repository
// at once (through the file system, so it is not counted as a request).
type Repo struct {
	// Name is the repository name given to [GitServer.NewRepo].
	Name string
	// Path is the module path of the repository root, Host + "/" + Name.
	Path string
	// Dir is the working clone.
	Dir string

	s       *GitServer
	mu      sync.Mutex
	commits int
}

// run runs git in the working clone and stops the test on failure.
func (r *Repo) run(t testing.TB, extra []string, args ...string) string {
	t.Helper()
	out, err := r.s.gitWithEnv(r.Dir, extra, args...)
	if err != nil {
		t.Fatalf("modtest.Repo %s: %v", r.Name, err)
	}
	return strings.TrimSpace(out)
}

// Commit writes files into the working clone (slash-separated names; an
// empty content deletes the file), commits everything on the current
// branch and pushes that branch. The author and committer dates are fixed
// and one hour later for each commit of the repository, starting at
// 2024-01-01T00:00:00Z, so commit hashes and pseudo-versions are the same
// on every run. It returns the full commit hash.
func (r *Repo) Commit(t testing.TB, msg string, files map[string]string) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, content := range files {
		p := filepath.Join(r.Dir, filepath.FromSlash(name))
		if content == "" {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				t.Fatalf("modtest.Repo.Commit: %v", err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
			t.Fatalf("modtest.Repo.Commit: %v", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o666); err != nil {
			t.Fatalf("modtest.Repo.Commit: %v", err)
		}
	}
	date := gitBaseTime.Add(time.Duration(r.commits) * time.Hour).Format(time.RFC3339)
	r.commits++
	dates := []string{"GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date}
	r.run(t, nil, "add", "-A")
	r.run(t, dates, "commit", "-q", "--allow-empty", "-m", msg)
	hash := r.run(t, nil, "rev-parse", "HEAD")
	r.run(t, nil, "push", "-q", "-f", "origin", "HEAD")
	return hash
}

// Tag creates the lightweight tag at commit and pushes it. Tagging an
// existing tag name again moves the tag (it is forced), for tests of
// moved tags.
func (r *Repo) Tag(t testing.TB, tag, commit string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.run(t, nil, "tag", "-f", tag, commit)
	r.run(t, nil, "push", "-q", "-f", "origin", "refs/tags/"+tag+":refs/tags/"+tag)
}

// Branch points branch at commit on the server, creating or moving it.
// The working clone stays on its current branch.
func (r *Repo) Branch(t testing.TB, branch, commit string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.run(t, nil, "push", "-q", "-f", "origin", commit+":refs/heads/"+branch)
}

// Checkout switches the working clone to branch, created or reset at
// commit (or at the current commit when commit is ""; in a repository
// without commits, the branch the first commit goes to), so that later
// [Repo.Commit] calls add to branch. It does not push; the next Commit
// does.
func (r *Repo) Checkout(t testing.TB, branch, commit string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.s.git(r.Dir, "rev-parse", "-q", "--verify", "HEAD"); err != nil && commit == "" {
		r.run(t, nil, "symbolic-ref", "HEAD", "refs/heads/"+branch)
		return
	}
	args := []string{"checkout", "-q", "-B", branch}
	if commit != "" {
		args = append(args, commit)
	}
	r.run(t, nil, args...)
}
