package direct_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agora-mirror/agora/internal/direct"
	"github.com/agora-mirror/agora/internal/modtest"
)

// logBuffer collects a Fetcher's debug log.
type logBuffer struct {
	modtest.SyncBuffer
	seen int // bytes judged by taken already
}

// taken reports whether the tagged path made path@version, judging only
// the lines logged since the last call, so that each download is judged
// by its own lines.
func (b *logBuffer) taken(path, version string) bool {
	all := b.String()
	lines := all[b.seen:]
	b.seen = len(all)
	for line := range strings.SplitSeq(lines, "\n") {
		if strings.Contains(line, `msg="direct: tagged path"`) &&
			strings.Contains(line, "module="+path+" ") && strings.Contains(line, "version="+version+" ") {
			return true
		}
	}
	return false
}

func debugFetcher(t *testing.T, s *modtest.GitServer, edit func(*direct.Options)) (*direct.Fetcher, *logBuffer) {
	logs := new(logBuffer)
	f := newFetcher(t, s, func(o *direct.Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if edit != nil {
			edit(o)
		}
	})
	return f, logs
}

// taggedLayouts builds repositories with what makes module zips differ:
// attributes that git archive would apply (export-ignore, export-subst,
// eol), a symbolic link, vendored and nested-module files, a module in a
// subdirectory without a LICENSE of its own, a major version on a
// branch, and one in a major-version subdirectory (left to the go
// command).
func taggedLayouts(t *testing.T) *modtest.GitServer {
	s := modtest.NewGitServer(t, host)

	feat := s.NewRepo(t, "feat")
	if err := os.Symlink("a.go", filepath.Join(feat.Dir, "link.go")); err != nil {
		t.Fatal(err)
	}
	c := feat.Commit(t, "v1.0.0", map[string]string{
		"go.mod":              "module git.example.test/feat\n\ngo 1.21\n",
		"a.go":                "package feat\n\nconst A = 1\n",
		"LICENSE":             "root license\n",
		".gitattributes":      "ignored.txt export-ignore\nsubst.go export-subst\n*.crlf text eol=crlf\n",
		"ignored.txt":         "kept by the go command\n",
		"subst.go":            "package feat\n\n// $Format:%H$\n",
		"lines.crlf":          "one\ntwo\n",
		"raw.txt":             "windows\r\nline\r\n",
		"vendor/x/x.go":       "package x\n",
		"vendor/modules.txt":  "# x\n",
		"nested/go.mod":       "module git.example.test/feat/nested\n",
		"nested/n.go":         "package nested\n",
		"sub/go.mod":          "module git.example.test/feat/sub\n\ngo 1.21\n",
		"sub/s.go":            "package sub\n\nconst S = 1\n",
		"sub/testdata/x.json": "{}\n",
	})
	feat.Tag(t, "v1.0.0", c)
	feat.Tag(t, "sub/v1.0.0", c)
	c = feat.Commit(t, "v1.1.0", map[string]string{"a.go": "package feat\n\nconst A = 2\n", "sub/s.go": "package sub\n\nconst S = 2\n"})
	feat.Tag(t, "v1.1.0", c)
	feat.Tag(t, "sub/v1.1.0", c)
	feat.Tag(t, "v1.2.0", feat.Commit(t, "v1.2.0", map[string]string{"a.go": "package feat\n\nconst A = 3\n"}))

	major := s.NewRepo(t, "major")
	major.Tag(t, "v1.0.0", major.Commit(t, "v1", map[string]string{
		"go.mod": "module git.example.test/major\n\ngo 1.21\n", "m.go": "package major\n",
	}))
	major.Tag(t, "v2.0.0", major.Commit(t, "v2", map[string]string{
		"go.mod": "module git.example.test/major/v2\n\ngo 1.21\n", "m.go": "package major\n\nconst Major = 2\n",
	}))
	major.Tag(t, "v2.1.0", major.Commit(t, "v2.1", map[string]string{"m.go": "package major\n\nconst Major = 21\n"}))

	majorDir := s.NewRepo(t, "majordir")
	c = majorDir.Commit(t, "v2 in a directory", map[string]string{
		"go.mod":    "module git.example.test/majordir\n\ngo 1.21\n",
		"v2/go.mod": "module git.example.test/majordir/v2\n\ngo 1.21\n",
		"v2/m.go":   "package majordir\n",
	})
	majorDir.Tag(t, "v2.0.0", c)
	majorDir.Tag(t, "v2.1.0", majorDir.Commit(t, "v2.1", map[string]string{"v2/m.go": "package majordir\n\nconst X = 1\n"}))

	newer := s.NewRepo(t, "newer")
	newer.Tag(t, "v1.0.0", newer.Commit(t, "ok", map[string]string{"go.mod": "module git.example.test/newer\n\ngo 1.21\n"}))
	newer.Tag(t, "v1.1.0", newer.Commit(t, "too new", map[string]string{"go.mod": "module git.example.test/newer\n\ngo 1.999\n"}))
	return s
}

func TestTaggedPathMatchesTheGoCommand(t *testing.T) {
	s := taggedLayouts(t)
	cases := []struct {
		path, version string
		tagged        bool // made by the tagged path, not by the go command
	}{
		// The first version of each module teaches the Fetcher where it is.
		{host + "/feat", "v1.0.0", false},
		{host + "/feat", "v1.1.0", true},
		{host + "/feat", "v1.2.0", true},
		{host + "/feat/sub", "v1.0.0", false},
		{host + "/feat/sub", "v1.1.0", true},
		{host + "/major", "v1.0.0", false},
		{host + "/major/v2", "v2.0.0", false},
		{host + "/major/v2", "v2.1.0", true},
		{host + "/majordir/v2", "v2.0.0", false},
		{host + "/majordir/v2", "v2.1.0", false}, // a v2/ directory: the go command's rules
		{host + "/feat", "v1.0.0", false},        // again: from the go command's cache
	}
	var args []string
	for _, c := range cases {
		args = append(args, c.path+"@"+c.version)
	}
	ref := reference(t, s, args...)

	f, logs := debugFetcher(t, s, nil)
	ctx := testCtx(t)
	for _, c := range cases {
		packs := s.UploadPacks("feat")
		m, err := f.Download(ctx, c.path, c.version)
		if err != nil {
			t.Fatalf("Download(%s, %s): %v", c.path, c.version, err)
		}
		if got := logs.taken(c.path, c.version); got != c.tagged {
			t.Errorf("%s@%s: tagged path taken = %v, want %v", c.path, c.version, got, c.tagged)
		}
		sameFiles(t, m, ref[c.path+"@"+c.version])
		if c.path == host+"/feat" && c.version == "v1.2.0" {
			// v1.1.0 fetched every release tag of the module.
			if n := s.UploadPacks("feat") - packs; n != 0 {
				t.Errorf("feat@v1.2.0 made %d fetches, want none", n)
			}
		}
	}

	// A go.mod too new for this Go is refused, as by the go command.
	if _, err := f.Download(ctx, host+"/newer", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Download(ctx, host+"/newer", "v1.1.0"); err == nil {
		t.Error("newer@v1.1.0 (go 1.999) downloaded, want the go command's error")
	} else if !errors.As(err, new(*direct.Error)) {
		t.Errorf("newer@v1.1.0: %T %v, want a *direct.Error", err, err)
	}
	if logs.taken(host+"/newer", "v1.1.0") {
		t.Error("newer@v1.1.0 went through the tagged path")
	}
}

func TestTaggedPathFetchesNewTagsWithCredentials(t *testing.T) {
	const token = "tok-5d1e9a0b7c3f4e21"
	s := modtest.NewGitServer(t, host)
	s.RequireAuth("x-access-token", token)
	r := s.NewRepo(t, "grow")
	r.Tag(t, "v1.0.0", r.Commit(t, "v1.0.0", map[string]string{"go.mod": "module git.example.test/grow\n\ngo 1.21\n", "g.go": "package grow\n"}))
	r.Tag(t, "v1.1.0", r.Commit(t, "v1.1.0", map[string]string{"g.go": "package grow\n\nconst G = 1\n"}))

	f, logs := debugFetcher(t, s, func(o *direct.Options) { o.Tokens = map[string]string{host: token} })
	ctx := testCtx(t)
	for _, v := range []string{"v1.0.0", "v1.1.0"} {
		if _, err := f.Download(ctx, host+"/grow", v); err != nil {
			t.Fatal(err)
		}
	}
	if !logs.taken(host+"/grow", "v1.1.0") {
		t.Fatal("grow@v1.1.0 did not go through the tagged path")
	}

	// A release tagged after the Fetcher's clone was made.
	r.Tag(t, "v1.2.0", r.Commit(t, "v1.2.0", map[string]string{"g.go": "package grow\n\nconst G = 2\n"}))
	packs := s.UploadPacks("grow")
	m, err := f.Download(ctx, host+"/grow", "v1.2.0")
	if err != nil {
		t.Fatal(err)
	}
	if !logs.taken(host+"/grow", "v1.2.0") {
		t.Error("grow@v1.2.0 did not go through the tagged path")
	}
	if n := s.UploadPacks("grow") - packs; n != 1 {
		t.Errorf("grow@v1.2.0 made %d fetches, want 1", n)
	}
	// A tag that does not exist is the go command's to report.
	if _, err := f.Download(ctx, host+"/grow", "v1.9.0"); !errors.Is(err, direct.ErrNotFound) {
		t.Errorf("grow@v1.9.0: %v, want ErrNotFound", err)
	}
	if strings.Contains(logs.String(), token) {
		t.Error("the token is in the log")
	}

	s.RequireAuth("", "") // for the plain go command
	ref := reference(t, s, host+"/grow@v1.2.0")
	sameFiles(t, m, ref[host+"/grow@v1.2.0"])
}

func TestTaggedPathFollowsMovedTagsAndEmptyLicenses(t *testing.T) {
	direct.SetRemoteTTL(t, 0) // check the server's tag list at every build
	s := modtest.NewGitServer(t, host)
	r := s.NewRepo(t, "moved")
	if err := os.WriteFile(filepath.Join(r.Dir, "LICENSE"), nil, 0o644); err != nil {
		t.Fatal(err) // an empty root LICENSE: the go command adds it to sub's zips all the same
	}
	for i, v := range []string{"v1.0.0", "v1.1.0", "v1.2.0"} {
		c := r.Commit(t, v, map[string]string{
			"sub/go.mod": "module git.example.test/moved/sub\n\ngo 1.21\n",
			"sub/s.go":   fmt.Sprintf("package sub\n\nconst V = %d\n", i),
		})
		r.Tag(t, "sub/"+v, c)
	}
	path := host + "/moved/sub"
	f, logs := debugFetcher(t, s, nil)
	ctx := testCtx(t)
	for _, v := range []string{"v1.0.0", "v1.1.0"} { // v1.1.0 fetches v1.2.0 ahead
		if _, err := f.Download(ctx, path, v); err != nil {
			t.Fatal(err)
		}
	}
	if !logs.taken(path, "v1.1.0") {
		t.Fatal("moved/sub@v1.1.0 did not go through the tagged path")
	}
	// v1.2.0 moves on the server before anyone asks for it.
	r.Tag(t, "sub/v1.2.0", r.Commit(t, "moved", map[string]string{"sub/s.go": "package sub\n\nconst V = 99\n"}))
	m, err := f.Download(ctx, path, "v1.2.0")
	if err != nil {
		t.Fatal(err)
	}
	if !logs.taken(path, "v1.2.0") {
		t.Error("moved/sub@v1.2.0 did not go through the tagged path")
	}
	ref := reference(t, s, path+"@v1.1.0", path+"@v1.2.0")
	sameFiles(t, m, ref[path+"@v1.2.0"])
	m, err = f.Download(ctx, path, "v1.1.0") // a build made before, reused
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, m, ref[path+"@v1.1.0"])
}

func TestTaggedPathAnnotatedTags(t *testing.T) {
	s := modtest.NewGitServer(t, host)
	r := s.NewRepo(t, "annotated")
	r.Tag(t, "v1.0.0", r.Commit(t, "v1.0.0", map[string]string{"go.mod": "module git.example.test/annotated\n\ngo 1.21\n"}))
	c := r.Commit(t, "v1.1.0", map[string]string{"a.go": "package annotated\n"})
	// An annotated tag, made a day after its commit: the version's time
	// is the commit's, as the go command takes it.
	for _, args := range [][]string{{"tag", "-a", "-m", "release", "v1.1.0", c}, {"push", "-q", "origin", "refs/tags/v1.1.0"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = r.Dir
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_COMMITTER_DATE=2024-01-02T00:00:00Z")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	path := host + "/annotated"
	f, logs := debugFetcher(t, s, nil)
	ctx := testCtx(t)
	var m *direct.Module
	for _, v := range []string{"v1.0.0", "v1.1.0"} {
		var err error
		if m, err = f.Download(ctx, path, v); err != nil {
			t.Fatal(err)
		}
	}
	if !logs.taken(path, "v1.1.0") {
		t.Fatal("annotated@v1.1.0 did not go through the tagged path")
	}
	sameFiles(t, m, reference(t, s, path+"@v1.1.0")[path+"@v1.1.0"])
}

// TestTaggedPathAfterARestart: a new Fetcher on the same Dir (Agora
// restarted) takes the tagged path for a module's next version at once,
// recalling where the module is from the .info files the go command left
// in the shared module cache.
func TestTaggedPathAfterARestart(t *testing.T) {
	s := modtest.NewGitServer(t, host)
	r := s.NewRepo(t, "again")
	r.Tag(t, "v1.0.0", r.Commit(t, "v1.0.0", map[string]string{"go.mod": "module git.example.test/again\n\ngo 1.21\n", "a.go": "package again\n"}))
	r.Tag(t, "v1.1.0", r.Commit(t, "v1.1.0", map[string]string{"a.go": "package again\n\nconst A = 1\n"}))
	r.Tag(t, "v1.2.0", r.Commit(t, "v1.2.0", map[string]string{"a.go": "package again\n\nconst A = 2\n"}))
	dir := t.TempDir()
	sameDir := func(o *direct.Options) { o.Dir = dir }
	ctx := testCtx(t)

	first, logs := debugFetcher(t, s, sameDir)
	if _, err := first.Download(ctx, host+"/again", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	if logs.taken(host+"/again", "v1.0.0") {
		t.Fatal("the first version went through the tagged path (the control: nothing was known yet)")
	}

	second, logs := debugFetcher(t, s, sameDir)
	m, err := second.Download(ctx, host+"/again", "v1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if !logs.taken(host+"/again", "v1.1.0") {
		t.Error("after the restart, v1.1.0 did not go through the tagged path")
	}
	ref := reference(t, s, host+"/again@v1.1.0")
	sameFiles(t, m, ref[host+"/again@v1.1.0"])

	// The settings changed meanwhile: the host is no longer insecure, so
	// the plain-HTTP repository the cache names is not used (the go
	// command refuses it too).
	third, logs3 := debugFetcher(t, s, func(o *direct.Options) { o.Dir = dir; o.Insecure = "" })
	if _, err := third.Download(ctx, host+"/again", "v1.2.0"); err == nil {
		t.Error("v1.2.0 downloaded from a plain-HTTP repository of a host no longer insecure")
	}
	if logs3.taken(host+"/again", "v1.2.0") {
		t.Error("v1.2.0 went through the tagged path from a plain-HTTP repository of a host no longer insecure")
	}

	// A module the cache knows nothing of still goes to the go command.
	other := s.NewRepo(t, "fresh")
	other.Tag(t, "v1.0.0", other.Commit(t, "v1.0.0", map[string]string{"go.mod": "module git.example.test/fresh\n\ngo 1.21\n", "f.go": "package fresh\n"}))
	if _, err := second.Download(ctx, host+"/fresh", "v1.0.0"); err != nil {
		t.Fatal(err)
	}
	if logs.taken(host+"/fresh", "v1.0.0") {
		t.Error("fresh@v1.0.0, never fetched, went through the tagged path")
	}
}
