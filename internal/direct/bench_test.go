package direct_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agora-mirror/agora/internal/direct"
	"github.com/agora-mirror/agora/internal/modtest"
)

// The repository of BenchmarkTwentyVersions: a long history, a few MB of
// source-like text, releases at regular intervals.
const (
	longRepo      = "long"
	longCommits   = 1200 // commits on main
	longTagEvery  = 40   // a release every 40 commits: 30 releases, v1.0.0 ... v1.29.0
	longVersions  = 20   // the benchmark fetches the last 20 of them
	longFiles     = 150  // files of the first commit
	longLines     = 240  // lines of each of those (about 12 KB each)
	longAddEvery  = 6    // a new file every 6 commits
	longAddLines  = 160  // lines of each added file
	longChanged   = 2    // files changed by each commit
	longEditLines = 4    // lines replaced in each changed file (2 more are appended)
)

// BenchmarkTwentyVersions downloads the last 20 releases of one
// repository with a long history (1,200 commits, 30 releases, 351 files
// and 3.2 MB of Go-like text at the last release), one after another, in
// two ways:
//
//   - shared: Agora's way, one [direct.Fetcher] (one module and VCS cache)
//     for all 20. Each iteration starts with a new Fetcher on an empty
//     directory, so every iteration clones from nothing.
//   - freshGOPATH: the Athens way, a new Fetcher on a new, empty directory
//     (GOPATH, GOMODCACHE, GOCACHE and HOME) for each of the 20 versions.
//     Athens's go-get fetcher runs `go mod download -json path@version`
//     with a new temporary GOPATH (and GOCACHE inside it) per version and
//     deletes it afterwards; a new Fetcher per version runs the very same
//     command with the same environment as shared, so only the cache
//     differs. Deleting each directory is not timed.
//
// Each op is 20 downloads. Besides ns/op it reports s/20versions (the
// download time alone: Fetcher creation and the 20 Downloads),
// fetches/20versions and bytes/20versions (git fetches, that is
// upload-pack requests that negotiate objects, and the bytes they
// answered), requests/20versions (every HTTP request the git server saw,
// go-get meta and ls-refs included), s/first-version and s/later-version
// (the first download of an iteration, and the mean of the other 19), and
// s/cached-version: one more Download, untimed and uncounted otherwise, of
// the last version, already in the cache (it costs unzipping the zip
// again: Download removes the go command's extracted copy).
//
// Between iterations (untimed) the directories are removed and the file
// system is synced, so one iteration's writes and deletions are not paid
// by the next. It needs git with git-http-backend and is skipped without
// it. The repository is built only when the benchmark runs (a few
// seconds, with git fast-import). With -v it also logs the time of every
// download and a `go mod download -x` trace of four downloads (see
// traceDownloads).
func BenchmarkTwentyVersions(b *testing.B) {
	if _, err := exec.LookPath("git"); err != nil {
		b.Skip("git is not installed: BenchmarkTwentyVersions needs git and git-http-backend")
	}
	s := modtest.NewGitServer(b, host)
	start := time.Now()
	tags, stats := buildLongHistory(b, s)
	versions := tags[len(tags)-longVersions:]
	path := host + "/" + longRepo
	b.Logf("repository %s: %s, built in %v; fetching %s ... %s",
		path, stats, time.Since(start).Round(time.Millisecond), versions[0], versions[len(versions)-1])

	b.Run("shared", func(b *testing.B) {
		root := b.TempDir()
		var m benchMeter
		exec.Command("sync").Run()
		m.start(s)
		for b.Loop() {
			b.StopTimer()
			dir := mkdirTemp(b, root)
			b.StartTimer()
			t0 := time.Now()
			f := benchFetcher(b, s, dir)
			for i, v := range versions {
				m.download(b, f, path, v, i == 0)
			}
			m.total += time.Since(t0)
			b.StopTimer()
			m.stop(b, s)
			m.cached(b, f, path, versions[len(versions)-1])
			removeAndSync(dir)
			m.start(s)
			b.StartTimer()
		}
		m.report(b)
	})

	b.Run("freshGOPATH", func(b *testing.B) {
		root := b.TempDir()
		var m benchMeter
		exec.Command("sync").Run()
		m.start(s)
		for b.Loop() {
			var f *direct.Fetcher
			var dir string
			for i, v := range versions {
				b.StopTimer()
				if dir != "" {
					removeAndSync(dir)
				}
				dir = mkdirTemp(b, root)
				b.StartTimer()
				t1 := time.Now()
				f = benchFetcher(b, s, dir)
				m.download(b, f, path, v, i == 0)
				m.total += time.Since(t1)
			}
			b.StopTimer()
			m.stop(b, s)
			m.cached(b, f, path, versions[len(versions)-1])
			removeAndSync(dir)
			m.start(s)
			b.StartTimer()
		}
		m.report(b)
	})

	if testing.Verbose() {
		traceDownloads(b, s, path, versions)
	}
}

// benchMeter adds up what the iterations of one sub-benchmark cost.
type benchMeter struct {
	total   time.Duration   // the 20 downloads of each iteration (Fetcher creation included)
	first   time.Duration   // the first download of each iteration
	later   time.Duration   // the 19 others
	last    time.Duration   // the latest download alone
	each    []time.Duration // the downloads of the current iteration, for -v
	cachedT time.Duration   // downloads of a version already in the cache
	n       int             // iterations

	packs, reqs   int   // counted so far
	bytes         int64 // counted so far
	packs0, reqs0 int   // at the start of the current iteration
	bytes0        int64
}

func (m *benchMeter) start(s *modtest.GitServer) {
	m.packs0, m.bytes0, m.reqs0 = s.UploadPacks(longRepo), s.UploadPackBytes(longRepo), len(s.Requests())
}

func (m *benchMeter) stop(b *testing.B, s *modtest.GitServer) {
	if testing.Verbose() {
		var each []string
		for _, d := range m.each {
			each = append(each, fmt.Sprintf("%.2f", d.Seconds()))
		}
		b.Logf("iteration %d, seconds per download: %s", m.n+1, strings.Join(each, " "))
	}
	m.packs += s.UploadPacks(longRepo) - m.packs0
	m.bytes += s.UploadPackBytes(longRepo) - m.bytes0
	m.reqs += len(s.Requests()) - m.reqs0
	m.n++
}

func (m *benchMeter) download(b *testing.B, f *direct.Fetcher, path, version string, first bool) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t := time.Now()
	mod, err := f.Download(ctx, path, version)
	m.last = time.Since(t)
	if first {
		m.each = m.each[:0]
	}
	m.each = append(m.each, m.last)
	if err != nil {
		b.Fatalf("Download %s@%s: %v", path, version, err)
	}
	if mod.Version != version {
		b.Fatalf("Download %s@%s gave version %s", path, version, mod.Version)
	}
	if first {
		m.first += m.last
	} else {
		m.later += m.last
	}
}

// cached downloads version, already in f's cache, once more, outside the
// timed and counted part of the iteration.
func (m *benchMeter) cached(b *testing.B, f *direct.Fetcher, path, version string) {
	b.Helper()
	last := m.last
	t := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := f.Download(ctx, path, version); err != nil {
		b.Fatalf("Download %s@%s again: %v", path, version, err)
	}
	m.cachedT += time.Since(t)
	m.last = last
}

func (m *benchMeter) report(b *testing.B) {
	if m.n == 0 {
		return
	}
	n := float64(m.n)
	b.ReportMetric(m.total.Seconds()/n, "s/20versions")
	b.ReportMetric(float64(m.packs)/n, "fetches/20versions")
	b.ReportMetric(float64(m.bytes)/n, "bytes/20versions")
	b.ReportMetric(float64(m.reqs)/n, "requests/20versions")
	b.ReportMetric(m.first.Seconds()/n, "s/first-version")
	b.ReportMetric(m.later.Seconds()/n/float64(longVersions-1), "s/later-version")
	b.ReportMetric(m.cachedT.Seconds()/n, "s/cached-version")
}

// benchFetcher returns a Fetcher on dir reaching s through its proxy, as
// newFetcher does for tests.
func benchFetcher(b *testing.B, s *modtest.GitServer, dir string) *direct.Fetcher {
	b.Helper()
	env := map[string]string{"PATH": os.Getenv("PATH")}
	for _, kv := range s.ProxyEnv() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	o := direct.Options{Dir: dir, Insecure: host, Timeout: 10 * time.Minute}
	f, err := direct.New(direct.WithGetenv(o, func(k string) string { return env[k] }))
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// removeAndSync removes a Fetcher's directory and flushes the file system
// (sync), while the timer is stopped, so that writing back and discarding
// one iteration's hundreds of megabytes does not land in the next one's
// measurement.
func removeAndSync(dir string) {
	os.RemoveAll(dir)
	exec.Command("sync").Run()
}

func mkdirTemp(b *testing.B, root string) string {
	b.Helper()
	dir, err := os.MkdirTemp(root, "fetcher-")
	if err != nil {
		b.Fatal(err)
	}
	return dir
}

// historyStats describes the repository buildLongHistory made.
type historyStats struct {
	commits, tags, files int
	lastBytes            int64 // bytes of the files at the last commit
	packBytes            int64 // size of the served repository's packs
}

func (h historyStats) String() string {
	return fmt.Sprintf("%d commits, %d tags, %d files and %.1f MB at the last commit, %.1f MB of packs",
		h.commits, h.tags, h.files, float64(h.lastBytes)/1e6, float64(h.packBytes)/1e6)
}

// buildLongHistory creates repository longRepo on s with longCommits
// commits of Go-like source text on main, made with one run of git
// fast-import in the repository's working clone and pushed to the served
// bare repository in one push. Every commit changes longChanged files
// (some lines replaced, some appended) and every longAddEvery-th commit
// adds a file, so the tree grows along the history; every longTagEvery-th
// commit is tagged v1.<n>.0. Everything is deterministic. It returns the
// tags in order.
func buildLongHistory(b *testing.B, s *modtest.GitServer) ([]string, historyStats) {
	b.Helper()
	repo := s.NewRepo(b, longRepo)
	home := b.TempDir()
	gitEnv := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + filepath.Join(home, "gitconfig"),
		"GIT_TERMINAL_PROMPT=0",
	}
	git := func(stdin func(*bufio.Writer) error, args ...string) string {
		b.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = repo.Dir
		cmd.Env = gitEnv
		var stderr strings.Builder
		cmd.Stderr = &stderr
		var out strings.Builder
		cmd.Stdout = &out
		var in *bufio.Writer
		var closeIn func() error
		if stdin != nil {
			w, err := cmd.StdinPipe()
			if err != nil {
				b.Fatal(err)
			}
			in, closeIn = bufio.NewWriterSize(w, 1<<20), w.Close
		}
		if err := cmd.Start(); err != nil {
			b.Fatalf("git %s: %v", strings.Join(args, " "), err)
		}
		var werr error
		if stdin != nil {
			werr = stdin(in)
			if err := in.Flush(); werr == nil {
				werr = err
			}
			closeIn()
		}
		if err := cmd.Wait(); err != nil || werr != nil {
			b.Fatalf("git %s: %v %v\n%s", strings.Join(args, " "), err, werr, stderr.String())
		}
		return strings.TrimSpace(out.String())
	}

	var tags []string
	var stats historyStats
	git(func(w *bufio.Writer) error {
		g := newSourceGen(1)
		type file struct {
			name  string
			lines []string
		}
		var files []*file
		newFile := func(lines int) *file {
			n := len(files)
			f := &file{name: fmt.Sprintf("pkg%02d/f%03d.go", n%12, n)}
			f.lines = append(f.lines, fmt.Sprintf("package pkg%02d", n%12), "")
			for range lines {
				f.lines = append(f.lines, g.line())
			}
			files = append(files, f)
			return f
		}
		put := func(path, content string) {
			fmt.Fprintf(w, "M 100644 inline %s\ndata %d\n%s\n", path, len(content), content)
		}
		content := func(f *file) string { return strings.Join(f.lines, "\n") + "\n" }
		base := time.Date(2022, time.January, 1, 0, 0, 0, 0, time.UTC).Unix()
		for c := 1; c <= longCommits; c++ {
			msg := fmt.Sprintf("change %d\n", c)
			fmt.Fprintf(w, "commit refs/heads/main\nmark :%d\ncommitter Agora Test <test@agora.invalid> %d +0000\ndata %d\n%s",
				c, base+int64(c)*3600, len(msg), msg)
			if c == 1 {
				put("go.mod", "module "+host+"/"+longRepo+"\n\ngo 1.21\n")
				for range longFiles {
					f := newFile(longLines)
					put(f.name, content(f))
				}
			} else {
				for range longChanged {
					f := files[g.rng.Intn(len(files))]
					for range longEditLines {
						f.lines[2+g.rng.Intn(len(f.lines)-2)] = g.line()
					}
					f.lines = append(f.lines, g.line(), g.line())
					put(f.name, content(f))
				}
				if c%longAddEvery == 0 {
					f := newFile(longAddLines)
					put(f.name, content(f))
				}
			}
			w.WriteString("\n")
			if c%longTagEvery == 0 {
				tag := fmt.Sprintf("v1.%d.0", len(tags))
				fmt.Fprintf(w, "reset refs/tags/%s\nfrom :%d\n\n", tag, c)
				tags = append(tags, tag)
			}
		}
		stats.commits, stats.tags, stats.files = longCommits, len(tags), len(files)+1
		for _, f := range files {
			stats.lastBytes += int64(len(content(f)))
		}
		_, err := w.WriteString("done\n")
		return err
	}, "fast-import", "--quiet", "--done")
	git(nil, "push", "-q", "origin", "refs/heads/main:refs/heads/main", "refs/tags/*:refs/tags/*")

	bare := git(nil, "remote", "get-url", "origin")
	packs, _ := filepath.Glob(filepath.Join(bare, "objects", "pack", "*.pack"))
	for _, p := range packs {
		if fi, err := os.Stat(p); err == nil {
			stats.packBytes += fi.Size()
		}
	}
	return tags, stats
}

// sourceGen makes deterministic lines that look (and compress) roughly
// like Go source: identifiers from a fixed vocabulary, keywords, numbers.
type sourceGen struct {
	rng   *rand.Rand
	words []string
}

func newSourceGen(seed int64) *sourceGen {
	g := &sourceGen{rng: rand.New(rand.NewSource(seed))}
	syll := []string{"ba", "co", "de", "fi", "gu", "ha", "ji", "ko", "lu", "ma", "ne", "po", "qu", "ra", "se", "ti", "vo", "wa", "xe", "zu"}
	for range 400 {
		var sb strings.Builder
		for j := range 2 + g.rng.Intn(3) {
			s := syll[g.rng.Intn(len(syll))]
			if j > 0 && g.rng.Intn(2) == 0 {
				s = strings.ToUpper(s[:1]) + s[1:]
			}
			sb.WriteString(s)
		}
		g.words = append(g.words, sb.String())
	}
	return g
}

func (g *sourceGen) word() string { return g.words[g.rng.Intn(len(g.words))] }

func (g *sourceGen) line() string {
	switch g.rng.Intn(8) {
	case 0:
		return fmt.Sprintf("\t// %s %s %s %s the %s.", g.word(), g.word(), g.word(), g.word(), g.word())
	case 1:
		return fmt.Sprintf("\tif %s != nil {\n\t\treturn %s, fmt.Errorf(\"%s: %%w\", %s)\n\t}", g.word(), g.word(), g.word(), g.word())
	case 2:
		return fmt.Sprintf("func (%s *%s) %s(%s int) error {", g.word()[:1], g.word(), g.word(), g.word())
	case 3:
		return fmt.Sprintf("\t%s := %s.%s(%s, %d)", g.word(), g.word(), g.word(), g.word(), g.rng.Intn(10000))
	case 4:
		return "}"
	default:
		return fmt.Sprintf("\t%s.%s = append(%s.%s, %s[%d])", g.word(), g.word(), g.word(), g.word(), g.word(), g.rng.Intn(100))
	}
}

// traceDownloads logs, for -v, what `go mod download -x` shows of four
// downloads with one GOPATH: a version in a fresh GOPATH, the next
// version (a new tag in a warm GOPATH), the first version again (cached),
// and the first version again after its extracted directory was removed,
// which is what a cached version costs a [direct.Fetcher] (Download
// removes that directory). For each it gives the wall time, the time of
// the git commands the go command ran (their sum, and each one of 5 ms or
// more); the rest is the go command's own work: start-up, the go-get
// lookup, building, hashing and extracting the zip.
func traceDownloads(b *testing.B, s *modtest.GitServer, path string, versions []string) {
	env := modtest.GoEnv(b, append(s.ProxyEnv(), "GOPROXY=direct", "GOSUMDB=off", "GOPRIVATE="+host)...)
	var modCache string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GOMODCACHE="); ok {
			modCache = v
		}
	}
	for _, step := range []struct {
		what, version string
		unextract     bool
	}{
		{"fresh GOPATH", versions[0], false},
		{"warm GOPATH, new tag", versions[1], false},
		{"cached version", versions[0], false},
		{"cached version, extracted directory removed", versions[0], true},
	} {
		if step.unextract {
			if err := os.RemoveAll(filepath.Join(modCache, path+"@"+step.version)); err != nil {
				b.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		t := time.Now()
		out, err := modtest.RunGo(ctx, b.TempDir(), env, "mod", "download", "-x", "-json", path+"@"+step.version)
		wall := time.Since(t)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		var sum time.Duration
		var cmds []string
		for _, line := range strings.Split(out, "\n") {
			secs, cmd, ok := strings.Cut(strings.TrimSpace(line), "s # cd ")
			if !ok {
				continue
			}
			d, err := time.ParseDuration(secs + "s")
			if err != nil {
				continue
			}
			sum += d
			if d >= 5*time.Millisecond {
				_, git, _ := strings.Cut(cmd, "; ")
				cmds = append(cmds, fmt.Sprintf("%6.3fs %s", d.Seconds(), git))
			}
		}
		b.Logf("go mod download -x %s@%s, %s: %.3fs, git commands %.3fs, the rest %.3fs\n%s",
			path, step.version, step.what, wall.Seconds(), sum.Seconds(), (wall - sum).Seconds(), strings.Join(cmds, "\n"))
	}
}
