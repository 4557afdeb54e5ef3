package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agora-mirror/agora/internal/modtest"
)

const gitHost = "git.example.test"

// privateWorld is a fixture plus a git server for private modules, and an
// agora that routes gitHost privately.
type privateWorld struct {
	*fixture
	Git *modtest.GitServer
}

func newPrivateWorld(t *testing.T) *privateWorld {
	t.Helper()
	return &privateWorld{fixture: newFixture(t), Git: modtest.NewGitServer(t, gitHost)}
}

// start runs agora with gitHost private and insecure (the test git
// server speaks plain HTTP), reaching it through the server's proxy.
func (w *privateWorld) start(t *testing.T, dataDir string, args ...string) *agora {
	t.Helper()
	args = append(append(w.agoraArgs(""), "--private", gitHost, "--insecure", gitHost), args...)
	return startAgora(t, dataDir, proxyOnly(w.Git.ProxyEnv()), args...)
}

// proxyOnly keeps the HTTP proxy entries of a go environment (agora takes
// GOINSECURE from its own --insecure).
func proxyOnly(env []string) []string {
	var out []string
	for _, kv := range env {
		if strings.HasPrefix(strings.ToLower(kv), "http_proxy=") {
			out = append(out, kv)
		}
	}
	return out
}

// clientEnv is a go client that uses agora for everything and tells its
// checksum database not to look up gitHost paths (GONOSUMDB, not
// GOPRIVATE: GOPRIVATE would also send the client around the mirror).
func (w *privateWorld) clientEnv(t *testing.T, a *agora) []string {
	return w.goEnv(t, a, "GONOSUMDB="+gitHost)
}

// directEnv is a go client that fetches gitHost modules itself, for
// comparison.
func (w *privateWorld) directEnv(t *testing.T) []string {
	return modtest.GoEnv(t, append(w.Git.ProxyEnv(), "GOPROXY=direct", "GOSUMDB=off", "GOPRIVATE="+gitHost)...)
}

func libFiles(path, msg string) map[string]string {
	return map[string]string{"go.mod": "module " + path + "\n\ngo 1.21\n", "lib.go": "// Package lib says " + msg + ".\npackage lib\n\n// Msg is the message.\nconst Msg = " + fmt.Sprintf("%q", msg) + "\n"}
}

func TestPrivateModulesFromGitMatchTheGoCommand(t *testing.T) {
	w := newPrivateWorld(t)
	lib := w.Git.NewRepo(t, "lib")
	c1 := lib.Commit(t, "v1.0.0", libFiles(gitHost+"/lib", "one"))
	lib.Tag(t, "v1.0.0", c1)
	c2 := lib.Commit(t, "v1.1.0", libFiles(gitHost+"/lib", "two"))
	lib.Tag(t, "v1.1.0", c2)
	c3 := lib.Commit(t, "untagged", libFiles(gitHost+"/lib", "three"))
	lib.Branch(t, "dev", c3)

	multi := w.Git.NewRepo(t, "multi")
	m1 := multi.Commit(t, "modules", map[string]string{
		"go.mod": "module " + gitHost + "/multi\n", "root.go": "package multi\n",
		"sub/go.mod": "module " + gitHost + "/multi/sub\n", "sub/sub.go": "package sub\n",
		"v2/go.mod": "module " + gitHost + "/multi/v2\n", "v2/v2.go": "package multi\n",
		"LICENSE": "Corp licence.\n",
	})
	multi.Tag(t, "sub/v1.0.0", m1)
	multi.Tag(t, "v2.0.0", m1)

	major := w.Git.NewRepo(t, "major")
	j1 := major.Commit(t, "v2 on the main branch", map[string]string{"go.mod": "module " + gitHost + "/major/v2\n", "m.go": "package major\n"})
	major.Tag(t, "v2.1.0", j1)

	old := w.Git.NewRepo(t, "old")
	o1 := old.Commit(t, "no go.mod", map[string]string{"old.go": "package old\n"})
	old.Tag(t, "v2.0.0", o1)

	a := w.start(t, "")
	client := w.clientEnv(t, a)
	queries := []string{
		gitHost + "/lib@v1.0.0", gitHost + "/lib@v1.1.0", gitHost + "/lib@dev", gitHost + "/lib@" + c3[:12], gitHost + "/lib@latest",
		gitHost + "/multi/sub@v1.0.0", gitHost + "/multi/v2@v2.0.0", gitHost + "/major/v2@v2.1.0", gitHost + "/old@v2.0.0+incompatible",
	}
	got := parseDownload(t, mustGo(t, "", client, append([]string{"mod", "download", "-json"}, queries...)...))
	want := parseDownload(t, mustGo(t, "", w.directEnv(t), append([]string{"mod", "download", "-json"}, queries...)...))
	if len(got) != len(want) {
		t.Fatalf("%d results through agora, %d directly", len(got), len(want))
	}
	for i := range got {
		g, d := got[i], want[i]
		if g.Error != "" || g.Version != d.Version || g.Sum != d.Sum || g.GoModSum != d.GoModSum {
			t.Errorf("%s: through agora %s %s %s (error %q), directly %s %s %s", queries[i], g.Version, g.Sum, g.GoModSum, g.Error, d.Version, d.Sum, d.GoModSum)
		}
	}
	if got[2].Version != got[3].Version || !strings.HasPrefix(got[2].Version, "v1.1.1-0.") {
		t.Errorf("@dev and @commit resolved to %s and %s, want the same pseudo-version after v1.1.0", got[2].Version, got[3].Version)
	}
	if got[4].Version != "v1.1.0" {
		t.Errorf("@latest = %s, want v1.1.0", got[4].Version)
	}
	out := mustGo(t, "", client, "list", "-m", "-versions", gitHost+"/lib")
	if strings.TrimSpace(out) != gitHost+"/lib v1.0.0 v1.1.0" {
		t.Errorf("versions through agora: %q", out)
	}

	// Nothing with a private path reached the upstream proxy or the
	// checksum database, and agora refuses lookups for them itself.
	if code, _, _ := get(t, a.URL+"/sumdb/"+dbName+"/lookup/"+gitHost+"/lib@v1.0.0"); code != http.StatusForbidden {
		t.Errorf("checksum database lookup of a private module = %d, want 403", code)
	}
	for _, r := range append(w.Up.Requests(), w.DB.Requests()...) {
		if strings.Contains(r, gitHost) {
			t.Errorf("a private path left agora: %s", r)
		}
	}
}

func TestTwentyVersionsCloneTheRepositoryOnce(t *testing.T) {
	w := newPrivateWorld(t)
	repo := w.Git.NewRepo(t, "many")
	// A large file that every version shares: a repository cloned again
	// for each version would send it each time.
	files := libFiles(gitHost+"/many", "many")
	files["blob.txt"] = randomText(rand.New(rand.NewPCG(5, 6)), 256<<10)
	var versions []string
	for i := range 20 {
		v := fmt.Sprintf("v1.%d.0", i)
		files["version.go"] = "package lib\n\n// V is the version.\nconst V = " + fmt.Sprintf("%q", v) + "\n"
		repo.Tag(t, v, repo.Commit(t, v, files))
		versions = append(versions, v)
	}
	a := w.start(t, "")
	for _, v := range versions {
		if code, _, body := get(t, a.URL+"/"+gitHost+"/many/@v/"+v+".zip"); code != 200 {
			t.Fatalf("zip %s = %d %s", v, code, body)
		}
	}
	fetches, bytes := w.Git.UploadPacks("many"), w.Git.UploadPackBytes("many")
	t.Logf("20 versions through agora: %d fetches, %d bytes from the git server", fetches, bytes)
	// The go command fetches each new tag on its own, but into the one
	// shared clone: the shared content crosses the wire once.
	if fetches > len(versions)+1 {
		t.Errorf("20 versions took %d fetches, want at most one per version", fetches)
	}
	if bytes > 2*(256<<10) {
		t.Errorf("20 versions moved %d bytes from the git server, want the shared content once (under %d)", bytes, 2*(256<<10))
	}
}

func TestMovedTagIsRefusedAndTheFirstContentStays(t *testing.T) {
	w := newPrivateWorld(t)
	repo := w.Git.NewRepo(t, "moving")
	first := repo.Commit(t, "first", libFiles(gitHost+"/moving", "first"))
	repo.Tag(t, "v1.0.0", first)
	data := t.TempDir()
	a := w.start(t, data)
	const zipPath = "/" + gitHost + "/moving/@v/v1.0.0.zip"
	code, _, firstZip := get(t, a.URL+zipPath)
	if code != 200 {
		t.Fatalf("first fetch = %d %s", code, firstZip)
	}
	a.stop(t)

	// The files are lost, and meanwhile someone moved the tag.
	os.RemoveAll(filepath.Join(data, "mod"))
	os.RemoveAll(filepath.Join(data, "direct"))
	repo.Tag(t, "v1.0.0", repo.Commit(t, "second", libFiles(gitHost+"/moving", "second")))

	a = w.start(t, data)
	code, _, body := get(t, a.URL+zipPath)
	if code != http.StatusBadGateway || !strings.Contains(body, "differs from the first fetch") {
		t.Errorf("fetch after the tag moved = %d %q, want 502 refusing the changed content", code, body)
	}
	if !strings.Contains(a.logs.String(), "REFUSED") {
		t.Errorf("the refusal was not logged loudly")
	}
	for _, f := range storeFiles(t, data) {
		if strings.HasSuffix(f, ".zip") {
			t.Errorf("changed content stored: %s", f)
		}
	}
}

func TestRepositoryNeedingCredentials(t *testing.T) {
	w := newPrivateWorld(t)
	repo := w.Git.NewRepo(t, "secret")
	repo.Tag(t, "v1.0.0", repo.Commit(t, "v1", libFiles(gitHost+"/secret", "psst")))
	const token = "s3cr3t-t0ken-value"
	w.Git.RequireAuth("x-access-token", token)
	const zipPath = "/" + gitHost + "/secret/@v/v1.0.0.zip"

	without := w.start(t, "")
	code, _, body := get(t, without.URL+zipPath)
	if code == 200 || code == http.StatusNotFound || !strings.Contains(strings.ToLower(body), "auth") {
		t.Errorf("without credentials = %d %q, want a failure that says authentication failed", code, body)
	}

	with := w.start(t, "", "--git-tokens", gitHost+"="+token)
	code, _, body = get(t, with.URL+zipPath)
	if code != 200 {
		t.Errorf("with a token = %d %q", code, body)
	}
	for _, a := range []*agora{without, with} {
		a.stop(t)
		if strings.Contains(a.logs.String(), token) {
			t.Errorf("the token appears in agora's logs")
		}
	}
	if strings.Contains(body, token) {
		t.Errorf("the token appears in a response")
	}
}

func TestDeletedRepositoryStillServesCachedVersions(t *testing.T) {
	w := newPrivateWorld(t)
	repo := w.Git.NewRepo(t, "doomed")
	repo.Tag(t, "v1.0.0", repo.Commit(t, "v1", libFiles(gitHost+"/doomed", "bye")))
	a := w.start(t, "")
	first := parseDownload(t, mustGo(t, "", w.clientEnv(t, a), "mod", "download", "-json", gitHost+"/doomed@v1.0.0"))[0]
	w.Git.Delete("doomed")
	again := parseDownload(t, mustGo(t, "", w.clientEnv(t, a), "mod", "download", "-json", gitHost+"/doomed@v1.0.0"))[0]
	if again.Error != "" || again.Sum != first.Sum {
		t.Errorf("after the repository was deleted: %+v, want %s", again, first.Sum)
	}
	code, _, body := get(t, a.URL+"/"+gitHost+"/doomed/@v/v1.0.1.info")
	if code != http.StatusNotFound {
		t.Errorf("a version of the deleted repository never fetched = %d %q, want 404", code, body)
	}
}

func TestDenyRulesRefuseWithoutFetching(t *testing.T) {
	w := newPrivateWorld(t)
	cfg := filepath.Join(t.TempDir(), "agora.toml")
	writeFile(t, filepath.Dir(cfg), "agora.toml", `
[[route]]
pattern = "example.com/hello"
action = "deny"
versions = ["v1.1.0"]

[[route]]
pattern = "example.com/old"
action = "deny"
`)
	a := w.start(t, "", "--config", cfg)
	for _, p := range []string{"/example.com/hello/@v/v1.1.0.zip", "/example.com/hello/@v/v1.1.0.info", "/example.com/old/@v/list", "/example.com/old/@v/v2.0.0+incompatible.mod"} {
		code, _, body := get(t, a.URL+p)
		if code != http.StatusForbidden || !strings.Contains(body, "denied") {
			t.Errorf("GET %s = %d %q, want 403 naming the rule", p, code, body)
		}
	}
	if code, _, body := get(t, a.URL+"/example.com/hello/@v/list"); code != 200 || strings.Contains(body, "v1.1.0") {
		t.Errorf("list of a module with a denied version = %d %q, want it without v1.1.0", code, body)
	}
	if code, _, _ := get(t, a.URL+"/example.com/hello/@v/v1.0.0.info"); code != 200 {
		t.Errorf("an allowed version of the same module = %d", code)
	}
	for _, r := range w.Up.Requests() {
		if strings.Contains(r, "v1.1.0") || strings.Contains(r, "example.com/old") {
			t.Errorf("a denied module or version was fetched: %s", r)
		}
	}
}

func TestDirectRouteIsVerifiedAgainstTheChecksumDatabase(t *testing.T) {
	w := newPrivateWorld(t)
	const path = gitHost + "/public"
	repo := w.Git.NewRepo(t, "public")
	repo.Tag(t, "v1.0.0", repo.Commit(t, "v1", libFiles(path, "open source")))
	repo.Tag(t, "v1.1.0", repo.Commit(t, "v1.1", libFiles(path, "open source, again")))
	// The checksum database knows v1.0.0 as the go command makes it, and
	// has a forged record for v1.1.0.
	d := parseDownload(t, mustGo(t, "", w.directEnv(t), "mod", "download", "-json", path+"@v1.0.0"))[0]
	w.DB.SetHashes(path, "v1.0.0", d.Sum, d.GoModSum)
	w.DB.SetHashes(path, "v1.1.0", "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	cfg := filepath.Join(t.TempDir(), "agora.toml")
	writeFile(t, filepath.Dir(cfg), "agora.toml", "[[route]]\npattern = \""+path+"\"\naction = \"direct\"\n")
	a := startAgora(t, "", proxyOnly(w.Git.ProxyEnv()), append(w.agoraArgs(""), "--insecure", gitHost, "--config", cfg)...)

	got := parseDownload(t, mustGo(t, "", w.goEnv(t, a), "mod", "download", "-json", path+"@v1.0.0"))[0]
	if got.Error != "" || got.Sum != d.Sum {
		t.Errorf("direct route, verified: %+v, want sum %s", got, d.Sum)
	}
	code, _, body := get(t, a.URL+"/"+path+"/@v/v1.1.0.info")
	if code != http.StatusBadGateway || !strings.Contains(body, "checksum mismatch") {
		t.Errorf("direct route with a forged database record = %d %q, want 502 checksum mismatch", code, body)
	}
	// A direct route is public: the upstream proxy was not asked, the
	// checksum database was.
	for _, r := range w.Up.Requests() {
		if strings.Contains(r, "/"+path+"/@v/") {
			t.Errorf("the upstream proxy was asked for a direct-routed module: %s", r)
		}
	}
}

// TestPrivateModulesOverSSH fetches a private module whose go-import meta
// tag names an HTTP URL that the operator's git configuration rewrites to
// ssh, as companies do to use deploy keys: every git Agora starts (the go
// command's and the tagged path's) must then go over ssh with the key and
// known_hosts file given, and a host key or client key that does not
// match must fail as a failure, not as "not found", storing nothing.
func TestPrivateModulesOverSSH(t *testing.T) {
	w := newPrivateWorld(t)
	sshd := modtest.NewSSHServer(t)
	repo := w.Git.NewRepo(t, "viassh")
	repo.Tag(t, "v1.0.0", repo.Commit(t, "v1", libFiles(gitHost+"/viassh", "one, over ssh")))
	repo.Tag(t, "v1.1.0", repo.Commit(t, "v1.1", libFiles(gitHost+"/viassh", "two, over ssh")))

	dir := t.TempDir()
	gitConfig := filepath.Join(dir, "gitconfig")
	writeFile(t, dir, "gitconfig", fmt.Sprintf("[url %q]\n\tinsteadOf = http://%s/\n", sshd.URL(w.Git.Dir())+"/", gitHost))
	withSSH := func(key, knownHosts string) []string {
		return []string{"--git-config", gitConfig, "--ssh-key", key, "--ssh-known-hosts", knownHosts}
	}

	// A server not in known_hosts, a server whose key is not the one
	// known_hosts names, and a client key the server does not let in: all
	// refused, nothing stored.
	otherKey := filepath.Join(dir, "other_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "other", "-f", otherKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	otherPub := strings.Fields(readFile(t, dir, "other_key.pub"))
	_, port, _ := strings.Cut(sshd.Addr, ":")
	writeFile(t, dir, "empty_known_hosts", "")
	writeFile(t, dir, "changed_known_hosts", "[127.0.0.1]:"+port+" "+otherPub[0]+" "+otherPub[1]+"\n")
	const zipPath = "/" + gitHost + "/viassh/@v/v1.0.0.zip"
	for _, c := range []struct {
		name, key, knownHosts, want string
	}{
		{"host not in known_hosts", sshd.ClientKey, filepath.Join(dir, "empty_known_hosts"), "Host key verification failed"},
		{"host key changed", sshd.ClientKey, filepath.Join(dir, "changed_known_hosts"), "Offending ED25519 key"},
		{"client key not let in", otherKey, sshd.KnownHosts, "Permission denied (publickey)"},
	} {
		data := t.TempDir()
		a := w.start(t, data, withSSH(c.key, c.knownHosts)...)
		code, _, body := get(t, a.URL+zipPath)
		if code != http.StatusBadGateway || !strings.Contains(body, c.want) {
			t.Errorf("%s: zip = %d %q, want 502 saying %q", c.name, code, body, c.want)
		}
		a.stop(t)
		if files := storeFiles(t, data); len(files) != 0 {
			t.Errorf("%s: stored %v", c.name, files)
		}
	}
	logins := sshd.Logins()
	if logins != 0 {
		t.Errorf("sshd let in %d clients with the wrong keys", logins)
	}

	data := t.TempDir()
	a := w.start(t, data, withSSH(sshd.ClientKey, sshd.KnownHosts)...)
	// One after the other: the first version through the go command, the
	// second through the tagged path (Agora's own git fetch into its clone
	// of the repository the first one named). Each logs in over ssh.
	queries := []string{gitHost + "/viassh@v1.0.0", gitHost + "/viassh@v1.1.0"}
	var got []downloaded
	for i, q := range queries {
		before := sshd.Logins()
		got = append(got, parseDownload(t, mustGo(t, "", w.clientEnv(t, a), "mod", "download", "-json", q))...)
		if sshd.Logins() == before {
			t.Errorf("%s: no login over ssh", q)
		}
		if i == 1 {
			if _, err := os.Stat(filepath.Join(data, "direct", "tagged", "cache", "download", gitHost, "viassh", "@v", "v1.1.0.zip")); err != nil {
				t.Errorf("%s was not made by the tagged path: %v", q, err)
			}
		}
	}
	// Only the go-get pages came over HTTP (and, for the failures above,
	// the go command's own check that the named URL exists); no git
	// request (info/refs, git-upload-pack) did.
	for _, r := range w.Git.Requests() {
		if strings.Contains(r, "/viassh.git/") {
			t.Errorf("git went over HTTP: %s", r)
		}
	}
	// A tag the repository does not have is not found, over ssh as over
	// HTTP.
	code, _, body := get(t, a.URL+"/"+gitHost+"/viassh/@v/v9.9.9.info")
	if code != http.StatusNotFound || !strings.HasPrefix(body, gitHost+"/viassh@v9.9.9: not found: version control: ") {
		t.Errorf("a missing tag = %d %q, want 404 saying version control has no such version", code, body)
	}

	// The same versions as the go command makes them over HTTP.
	want := parseDownload(t, mustGo(t, "", w.directEnv(t), append([]string{"mod", "download", "-json"}, queries...)...))
	for i := range got {
		g, d := got[i], want[i]
		if g.Error != "" || g.Sum != d.Sum || g.GoModSum != d.GoModSum {
			t.Errorf("%s: over ssh %s %s (error %q), over HTTP %s %s", queries[i], g.Sum, g.GoModSum, g.Error, d.Sum, d.GoModSum)
		}
	}
}
