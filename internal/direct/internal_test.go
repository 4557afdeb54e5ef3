package direct

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedactRemovesEveryCredential(t *testing.T) {
	r := newRedactor([]string{"tok-123456", "pw-abcdef", "", "tok-123456"})
	in := "fatal: auth failed for https://alice:pw-abcdef@git.example.com/x.git\n" +
		"token tok-123456 refused; also ssh://git@host/repo and http://tok-123456@h/\n"
	got := r.tail([]byte(in))
	for _, secret := range []string{"tok-123456", "pw-abcdef", "alice", "git@"} {
		if strings.Contains(got, secret) {
			t.Errorf("redacted text still holds %q:\n%s", secret, got)
		}
	}
	if !strings.Contains(got, "https://xxxxx@git.example.com/x.git") || !strings.Contains(got, "token xxxxx refused") {
		t.Errorf("redacted text lost its shape:\n%s", got)
	}
}

func TestTailKeepsTheLastLines(t *testing.T) {
	var b strings.Builder
	for i := range 100 {
		b.WriteString(strings.Repeat("x", i%7) + "\n")
	}
	b.WriteString("the last line\n")
	got := newRedactor(nil).tail([]byte(b.String()))
	if n := strings.Count(got, "\n") + 1; n != detailLines {
		t.Errorf("tail has %d lines, want %d", n, detailLines)
	}
	if !strings.HasSuffix(got, "the last line") {
		t.Errorf("tail = %q", got)
	}
	long := newRedactor(nil).tail([]byte(strings.Repeat("y", 3*detailBytes)))
	if len(long) > detailBytes+3 {
		t.Errorf("tail of one long line has %d bytes", len(long))
	}
}

func TestErrorKinds(t *testing.T) {
	for _, c := range []struct {
		kind              Kind
		notFound, timeout bool
	}{
		{NotFound, true, false},
		{Timeout, false, true},
		{Auth, false, false},
		{Network, false, false},
		{Failed, false, false},
	} {
		var err error = &Error{Op: "download", Module: "m", Version: "v1.0.0", Kind: c.kind, Detail: "d"}
		if errors.Is(err, ErrNotFound) != c.notFound || errors.Is(err, ErrTimeout) != c.timeout {
			t.Errorf("%v: Is(ErrNotFound)=%v Is(ErrTimeout)=%v", c.kind, errors.Is(err, ErrNotFound), errors.Is(err, ErrTimeout))
		}
		if want := "direct: download m@v1.0.0: " + c.kind.String() + ": d"; err.Error() != want {
			t.Errorf("Error() = %q, want %q", err.Error(), want)
		}
	}
	err := &Error{Op: "versions", Module: "m", Kind: Failed, err: context.Canceled}
	if !errors.Is(err, context.Canceled) || err.Error() != "direct: versions m: failed" {
		t.Errorf("cancelled: %v", err)
	}
}

func TestPrivateHome(t *testing.T) {
	dir := t.TempDir()
	netrcFile := filepath.Join(dir, "netrc")
	const existing = "machine git.corp.example login bob password pw-from-file\ndefault login anon password pw-default"
	if err := os.WriteFile(netrcFile, []byte(existing), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := New(Options{
		Dir:    filepath.Join(dir, "state"),
		Netrc:  netrcFile,
		Tokens: map[string]string{"git.corp.example": "tok-corp", "github.com": "tok-gh"},
		getenv: func(k string) string {
			return map[string]string{"PATH": os.Getenv("PATH"), "HTTPS_PROXY": "http://proxy.corp:3128", "GOPRIVATE": "leak", "GOFLAGS": "-mod=vendor"}[k]
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "state", "home")
	fi, err := os.Stat(filepath.Join(home, ".netrc"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf(".netrc mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(filepath.Join(home, ".netrc"))
	want := "machine git.corp.example login x-access-token password tok-corp\n" +
		"machine github.com login x-access-token password tok-gh\n" + existing + "\n"
	if string(data) != want {
		t.Errorf(".netrc =\n%s\nwant\n%s", data, want)
	}
	// Tokens win over the file; the default entry answers the rest.
	for host, wantPW := range map[string]string{"git.corp.example": "tok-corp", "GitHub.com": "tok-gh", "other.example": "pw-default"} {
		if _, pw, ok := f.probe.creds.lookup(host); !ok || pw != wantPW {
			t.Errorf("lookup(%s) = %q, %v; want %q", host, pw, ok, wantPW)
		}
	}
	mode, err := os.ReadFile(filepath.Join(home, ".config", "go", "telemetry", "mode"))
	if err != nil || strings.TrimSpace(string(mode)) != "off" {
		t.Errorf("telemetry mode = %q, %v", mode, err)
	}

	env := envMap(f.env)
	for k, v := range map[string]string{
		"GOPROXY": "direct", "GOSUMDB": "off", "GOFLAGS": "-modcacherw", "GOPRIVATE": "", "GOTOOLCHAIN": "local",
		"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "HOME": home,
		"GIT_CONFIG_GLOBAL": filepath.Join(home, ".gitconfig"), "HTTPS_PROXY": "http://proxy.corp:3128",
	} {
		if got, ok := env[k]; !ok || got != v {
			t.Errorf("env %s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
	for _, kv := range f.env {
		if strings.Contains(kv, "leak") || strings.Contains(kv, "vendor") {
			t.Errorf("environment entry %q came from outside", kv)
		}
	}
	for _, secret := range []string{"tok-corp", "tok-gh", "pw-from-file", "pw-default"} {
		if got := f.secrets.redact("x " + secret + " y"); got != "x xxxxx y" {
			t.Errorf("redact(%s) = %q", secret, got)
		}
	}

	_, err = New(Options{Dir: filepath.Join(dir, "bad"), Tokens: map[string]string{"h": "two words-secret"}})
	if err == nil || strings.Contains(err.Error(), "words-secret") {
		t.Errorf("New with a bad token: %v", err)
	}
}

func TestSSHCommand(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{}, "ssh -o BatchMode=yes -o ControlMaster=no"},
		{Options{SSHKey: "/keys/id_ed25519", SSHKnownHosts: "/keys/known hosts"},
			"ssh -o BatchMode=yes -o ControlMaster=no -i /keys/id_ed25519 -o IdentitiesOnly=yes -o 'UserKnownHostsFile=/keys/known hosts' -o StrictHostKeyChecking=yes"},
		{Options{SSHKey: "/k", GitSSHCommand: "my-ssh -v"}, "my-ssh -v"},
		{Options{SSHKey: "/it's"}, `ssh -o BatchMode=yes -o ControlMaster=no -i '/it'\''s' -o IdentitiesOnly=yes`},
	} {
		if got := sshCommand(c.o); got != c.want {
			t.Errorf("sshCommand(%+v) =\n%s\nwant\n%s", c.o, got, c.want)
		}
	}
}

func TestProxySelection(t *testing.T) {
	p := newProber(map[string]string{
		"HTTPS_PROXY": "proxy.corp:3128",
		"http_proxy":  "http://plain.corp:80",
		"NO_PROXY":    "internal.example, .svc.example,10.0.0.0/8,git.example:8443",
	}, "", parseNetrc(""))
	for _, c := range []struct{ url, want string }{
		{"https://github.com/x", "http://proxy.corp:3128"},
		{"http://github.com/x", "http://plain.corp:80"},
		{"https://internal.example/x", ""},
		{"https://git.internal.example/x", ""},
		{"https://a.svc.example/x", ""},
		{"https://10.1.2.3/x", ""},
		{"https://git.example:8443/x", ""},
		{"https://git.example/x", "http://proxy.corp:3128"},
		{"http://127.0.0.1:8080/x", ""},
		{"http://localhost/x", ""},
	} {
		u, _ := url.Parse(c.url)
		got, err := p.proxy(&http.Request{URL: u})
		if err != nil {
			t.Errorf("proxy(%s): %v", c.url, err)
			continue
		}
		if s := urlString(got); s != c.want {
			t.Errorf("proxy(%s) = %q, want %q", c.url, s, c.want)
		}
	}
}

func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

func TestParseMetaGoImports(t *testing.T) {
	page := `<!DOCTYPE html><html><head>
<meta name="go-import" content="example.com/a git https://code.example.com/a.git">
<meta name="go-source" content="example.com/a _ _ _">
<meta name="go-import" content="example.com/b mod https://proxy.example.com">
<meta name="go-import" content="example.com/c git https://code.example.com/c subdir">
</head><body><meta name="go-import" content="example.com/late git https://x"></body></html>`
	got, err := parseMetaGoImports(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	want := []metaImport{
		{"example.com/a", "git", "https://code.example.com/a.git"},
		{"example.com/b", "mod", "https://proxy.example.com"},
		{"example.com/c", "git", "https://code.example.com/c"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("import %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// TestRepoProbe drives the HTTP probe against a server standing in for
// both the go-get page and the repository, reached as a proxy the way the
// go command reaches it.
func TestRepoProbe(t *testing.T) {
	var sawAuth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("go-get") == "1" {
			switch r.URL.Path {
			case "/nometa":
				http.NotFound(w, r)
			case "/private-page":
				http.Error(w, "login", http.StatusUnauthorized)
			case "/svn/x":
				w.Write([]byte(`<meta name="go-import" content="h.test/svn svn http://h.test/svn">`))
			default:
				name, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
				w.Write([]byte(`<html><head><meta name="go-import" content="h.test/` + name + ` git http://h.test/` + name + `.git"></head></html>`))
			}
			return
		}
		u, p, _ := r.BasicAuth()
		sawAuth = append(sawAuth, u+":"+p)
		switch r.URL.Path {
		case "/gone.git/info/refs":
			w.WriteHeader(http.StatusGone)
		case "/missing.git/info/refs":
			http.NotFound(w, r)
		case "/locked.git/info/refs":
			w.WriteHeader(http.StatusUnauthorized)
		case "/forbidden.git/info/refs":
			w.WriteHeader(http.StatusForbidden)
		case "/ok.git/info/refs":
			w.Write([]byte("001e# service=git-upload-pack\n"))
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()

	env := map[string]string{"HTTP_PROXY": srv.URL}
	p := newProber(env, "h.test", parseNetrc("machine h.test login u password pw\n"))
	ctx := context.Background()
	for path, want := range map[string]Kind{
		"h.test/gone":         NotFound,
		"h.test/missing/sub":  NotFound,
		"h.test/locked":       Auth,
		"h.test/forbidden/v2": Auth,
		"h.test/ok":           Failed,
		"h.test/broken":       Failed,
		"h.test/nometa":       NotFound,
		"h.test/private-page": Auth,
		"h.test/svn/x":        Failed,
	} {
		if got := p.repoKind(ctx, path); got != want {
			t.Errorf("repoKind(%s) = %v, want %v", path, got, want)
		}
	}
	for _, a := range sawAuth {
		if a != "u:pw" {
			t.Errorf("probe sent credentials %q, want the netrc's", a)
		}
	}

	// A host that cannot be reached at all.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	p = newProber(map[string]string{"HTTP_PROXY": dead}, "h.test", parseNetrc(""))
	if got := p.repoKind(ctx, "h.test/ok"); got != Network {
		t.Errorf("repoKind through a dead proxy = %v, want Network", got)
	}
}

// TestGitConfigAndKeyFiles checks Options.GitConfig (included by the
// private configuration before Agora's own settings, so git applies its
// rewrites but not its changes to those settings, and the probe does not
// probe over HTTP what git fetches over ssh) and the file options:
// relative names made absolute, unreadable or unparsable files refused by
// New.
func TestGitConfigAndKeyFiles(t *testing.T) {
	// The probe's server: the go-get page names an HTTP repository that
	// answers 404.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("go-get") == "1" {
			w.Write([]byte(`<meta name="go-import" content="h.test/lib git http://h.test/lib.git">`))
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	getenv := func(k string) string {
		if k == "HTTP_PROXY" {
			return srv.URL
		}
		return os.Getenv(k)
	}

	// A directory name that git's configuration syntax must quote.
	dir := filepath.Join(t.TempDir(), `odd "dir" \ name`)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"gitconfig":   "[url \"ssh://git@h.test/\"]\n\tinsteadOf = http://h.test/\n[gc]\n\tautoDetach = true\n",
		"broken":      "[url \"ssh://git@h.test/\"\n",
		"key":         "not really a key\n",
		"known_hosts": "",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	f, err := New(Options{Dir: filepath.Join(dir, "state"), Insecure: "h.test", GitConfig: "gitconfig", SSHKey: "key", SSHKnownHosts: "known_hosts", getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if got, ok := f.gitURL(ctx, "http://h.test/lib.git"); got != "ssh://git@h.test/lib.git" || !ok {
		t.Errorf("gitURL through the included configuration = %q, %v, want the ssh URL", got, ok)
	}
	if got, ok := f.gitURL(ctx, "https://other.test/lib.git"); got != "https://other.test/lib.git" || !ok {
		t.Errorf("gitURL of a URL no rule names = %q, %v", got, ok)
	}
	cmd := exec.Command("git", "config", "--global", "--includes", "--get", "gc.autoDetach")
	cmd.Env = f.env
	if out, err := cmd.Output(); err != nil || strings.TrimSpace(string(out)) != "false" {
		t.Errorf("gc.autoDetach with the operator's file setting it = %q, %v; want Agora's false", out, err)
	}
	ssh := envMap(f.env)["GIT_SSH_COMMAND"]
	for _, want := range []string{"-i " + shellQuote(filepath.Join(dir, "key")), shellQuote("UserKnownHostsFile=" + filepath.Join(dir, "known_hosts"))} {
		if !strings.Contains(ssh, want) {
			t.Errorf("GIT_SSH_COMMAND %q does not contain %s", ssh, want)
		}
	}

	// The probe of a Fetcher without the rewrite believes the 404 (the
	// control); with it, git fetches over ssh, so that 404 says nothing.
	plain, err := New(Options{Dir: filepath.Join(dir, "plain"), Insecure: "h.test", getenv: getenv})
	if err != nil {
		t.Fatal(err)
	}
	if got := plain.probe.repoKind(ctx, "h.test/lib"); got != NotFound {
		t.Fatalf("repoKind without the rewrite = %v, want NotFound (the control)", got)
	}
	if got := f.probe.repoKind(ctx, "h.test/lib"); got != Failed {
		t.Errorf("repoKind of a repository git reaches over ssh = %v, want Failed", got)
	}

	for _, c := range []struct {
		o        Options
		notExist bool
	}{
		{Options{Dir: filepath.Join(dir, "s1"), SSHKey: "no-such-key"}, true},
		{Options{Dir: filepath.Join(dir, "s2"), SSHKnownHosts: "no-such-file"}, true},
		{Options{Dir: filepath.Join(dir, "s3"), GitConfig: dir}, false},
		{Options{Dir: filepath.Join(dir, "s4"), GitConfig: "broken"}, false},
	} {
		_, err := New(c.o)
		if err == nil || (c.notExist && !errors.Is(err, fs.ErrNotExist)) {
			t.Errorf("New(%+v) = %v, want it refusing the file", c.o, err)
		}
	}
	// With GitSSHCommand, the ssh files are not used, nor checked.
	if _, err := New(Options{Dir: filepath.Join(dir, "s5"), SSHKey: "no-such-key", GitSSHCommand: "ssh"}); err != nil {
		t.Errorf("New with GitSSHCommand and an unused SSHKey: %v", err)
	}
}

// TestCleanGitRoot checks what cleanGitRoot removes at start: lock files
// and spooled archives, and not the clones' objects (nor their directory,
// which it does not walk).
func TestCleanGitRoot(t *testing.T) {
	root := t.TempDir()
	clone := filepath.Join(root, "0123abcd")
	write := func(rel string) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	removed := []string{write("0123abcd/shallow.lock"), write("0123abcd/refs/tags/v1.0.0.lock"), write("archive-42.tar")}
	kept := []string{write("0123abcd/objects/ab/cdef0123"), write("0123abcd/objects/info/x.lock"),
		write("0123abcd/refs/tags/v1.0.0"), write("0123abcd/archive-notspool")}
	cleanGitRoot(root)
	for _, p := range removed {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there (err %v)", p, err)
		}
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if _, err := os.Stat(clone); err != nil {
		t.Fatal(err)
	}
}
