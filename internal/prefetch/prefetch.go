// Package prefetch fills a mirror with what projects need: for each go.mod
// or go.work it asks the go command, pointed at the mirror, for the module
// graph (go list -m all: the build list `go mod download all` fetches,
// with every go.mod of the graph fetched through the mirror on the way);
// go.sum files and lists of module@version lines name versions directly.
// Then it downloads every version's zip through the mirror, in parallel,
// asking first with Disable-Module-Fetch whether the mirror holds it
// already, and reports what was fetched, already present, or failed.
package prefetch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"

	"github.com/agora-mirror/agora/internal/gosum"
	"github.com/agora-mirror/agora/internal/humanize"
)

// Options configure Run.
type Options struct {
	// Server is the mirror's base URL.
	Server string
	// Env is the go command's environment; nil means this process's.
	// GOPROXY and GOMODCACHE are set by Run.
	Env []string
	// Concurrency bounds parallel downloads; zero means 8.
	Concurrency int
	// Progress receives progress and the summary; nil for none.
	Progress io.Writer
	// Terminal draws a progress bar on Progress instead of a line per
	// version.
	Terminal bool
	// Client makes the requests; nil means a client with no timeout
	// (fills of large zips take long).
	Client *http.Client
}

// Outcome of one version.
const (
	Fetched = "fetched"
	Present = "present"
	Failed  = "failed"
)

// Item is a version and what became of it.
type Item struct {
	Path, Version string
	Outcome       string
	Detail        string // why it failed
	Bytes         int64
}

// Result is what Run did.
type Result struct {
	Items []Item
	// RootErrors are inputs whose module graph could not be listed.
	RootErrors []string
}

// Count returns how many items had the outcome.
func (r Result) Count(outcome string) int {
	n := 0
	for _, it := range r.Items {
		if it.Outcome == outcome {
			n++
		}
	}
	return n
}

// Run prefetches what inputs need: files (go.mod, go.work, go.sum, or
// lists of module@version lines), directories (searched for go.mod and
// go.work files), or "-" for a list on stdin.
func Run(ctx context.Context, inputs []string, stdin io.Reader, o Options) (Result, error) {
	var res Result
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	cache, err := os.MkdirTemp("", "agora-prefetch-modcache-")
	if err != nil {
		return res, err
	}
	defer removeModCache(cache)
	o.Env = append(slices.Clone(o.Env), "GOPROXY="+o.Server, "GOMODCACHE="+cache)

	targets := make(map[module.Version]bool)
	var roots []string // go.mod and go.work files
	label := make(map[string]string)
	var listed []module.Version
	var listNames []string
	for _, in := range inputs {
		if in == "-" {
			vs, err := readList(stdin, "stdin")
			if err != nil {
				return res, err
			}
			listed = append(listed, vs...)
			listNames = append(listNames, "stdin")
			continue
		}
		fi, err := os.Stat(in)
		if err != nil {
			return res, err
		}
		switch base := filepath.Base(in); {
		case fi.IsDir():
			found, err := findRoots(in)
			if err != nil {
				return res, err
			}
			roots = append(roots, found...)
		case base == "go.mod" || base == "go.work":
			roots = append(roots, in)
		case base == "go.sum" || strings.HasSuffix(base, ".sum"):
			if err := readGoSum(in, targets); err != nil {
				return res, err
			}
		default:
			f, err := os.Open(in)
			if err != nil {
				return res, err
			}
			vs, err := readList(f, in)
			f.Close()
			if err != nil {
				return res, err
			}
			listed = append(listed, vs...)
			listNames = append(listNames, in)
		}
	}
	if len(listed) > 0 {
		// The graph of listed versions: that of a module requiring
		// them (one per version of a path).
		for _, group := range distinctPaths(listed) {
			dir, err := os.MkdirTemp("", "agora-prefetch-list-")
			if err != nil {
				return res, err
			}
			defer os.RemoveAll(dir)
			var b strings.Builder
			b.WriteString("module agora.prefetch/list\n\ngo 1.21\n\nrequire (\n")
			for _, v := range group {
				fmt.Fprintf(&b, "\t%s %s\n", v.Path, v.Version)
				targets[v] = true
			}
			b.WriteString(")\n")
			if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(b.String()), 0o644); err != nil {
				return res, err
			}
			roots = append(roots, filepath.Join(dir, "go.mod"))
			label[filepath.Join(dir, "go.mod")] = "the versions listed in " + strings.Join(listNames, ", ")
		}
	}
	for _, root := range roots {
		name := root
		if l, ok := label[root]; ok {
			name = l
		}
		fmt.Fprintf(o.Progress, "listing the module graph of %s\n", name)
		vs, err := buildList(ctx, root, o.Env)
		if err != nil {
			res.RootErrors = append(res.RootErrors, fmt.Sprintf("%s: %v", name, err))
			fmt.Fprintf(o.Progress, "failed to list the module graph of %s: %v\n", name, err)
			continue
		}
		for _, v := range vs {
			targets[v] = true
		}
	}
	list := make([]module.Version, 0, len(targets))
	for v := range targets {
		list = append(list, v)
	}
	module.Sort(list)
	res.Items = download(ctx, list, o)
	summarize(o.Progress, res)
	return res, ctx.Err()
}

// findRoots returns the go.mod and go.work files under dir, leaving out
// vendor, testdata and hidden directories.
func findRoots(dir string) ([]string, error) {
	var roots []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir && (d.Name() == "vendor" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && (d.Name() == "go.mod" || d.Name() == "go.work") {
			roots = append(roots, p)
		}
		return nil
	})
	return roots, err
}

// readGoSum adds the versions a go.sum lists.
func readGoSum(name string, targets map[module.Version]bool) error {
	lines, err := gosum.Read(name)
	for _, l := range lines {
		if !l.GoMod { // a go.mod line's zip is not needed (graph pruning); the go.mod is fetched with the zip's versions
			targets[l.Version] = true
		}
	}
	return err
}

// readList reads module@version lines; blank lines and # comments are
// skipped.
func readList(r io.Reader, name string) ([]module.Version, error) {
	var vs []module.Version
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		p, v, ok := strings.Cut(line, "@")
		if !ok || module.Check(p, v) != nil || module.CanonicalVersion(v) != v {
			return nil, fmt.Errorf("%s:%d: %q: want module@version (a canonical version)", name, n, line)
		}
		vs = append(vs, module.Version{Path: p, Version: v})
	}
	return vs, sc.Err()
}

// distinctPaths splits versions into groups with each path at most once.
func distinctPaths(vs []module.Version) [][]module.Version {
	var groups [][]module.Version
	for _, v := range vs {
		placed := false
		for i, g := range groups {
			if !slices.ContainsFunc(g, func(x module.Version) bool { return x.Path == v.Path }) {
				groups[i] = append(g, v)
				placed = true
				break
			}
		}
		if !placed {
			groups = append(groups, []module.Version{v})
		}
	}
	return groups
}

// listed is a module as `go list -m -json` prints it.
type listed struct {
	Path, Version string
	Main          bool
	Replace       *listed
	Error         *struct{ Err string }
}

// buildList runs `go list -m -json all` for a go.mod or go.work file. A
// go.mod is listed through a copy of it and its go.sum (-modfile), with
// -mod=mod so that missing go.sum lines may be added (to the copy): the
// project's own files are never changed.
func buildList(ctx context.Context, root string, env []string) ([]module.Version, error) {
	dir := filepath.Dir(root)
	args := []string{"list", "-m", "-json", "all"}
	if filepath.Base(root) == "go.mod" {
		tmp, err := os.MkdirTemp("", "agora-prefetch-modfile-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		for _, f := range [][2]string{{"go.mod", "prefetch.mod"}, {"go.sum", "prefetch.sum"}} {
			data, err := os.ReadFile(filepath.Join(dir, f[0]))
			if errors.Is(err, fs.ErrNotExist) && f[0] == "go.sum" {
				continue
			}
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(tmp, f[1]), data, 0o644); err != nil {
				return nil, err
			}
		}
		args = []string{"list", "-mod=mod", "-modfile=" + filepath.Join(tmp, "prefetch.mod"), "-m", "-json", "all"}
		env = append(slices.Clone(env), "GOWORK=off")
	} else {
		env = append(slices.Clone(env), "GOWORK="+root) // workspaces take no -mod flag
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Env = dir, env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m all: %v\n%s", err, strings.TrimSpace(stderr.String()))
	}
	var vs []module.Version
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var m listed
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list -m all: %v", err)
		}
		if m.Main {
			continue
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s", m.Path, m.Error.Err)
		}
		v := module.Version{Path: m.Path, Version: m.Version}
		if m.Replace != nil {
			if m.Replace.Version == "" {
				continue // replaced by a directory
			}
			v = module.Version{Path: m.Replace.Path, Version: m.Replace.Version}
		}
		if v.Version != "" {
			vs = append(vs, v)
		}
	}
	return vs, nil
}

// download gets each version's zip through the mirror.
func download(ctx context.Context, list []module.Version, o Options) []Item {
	items := make([]Item, len(list))
	p := newProgress(o.Progress, o.Terminal, len(list))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(o.Concurrency, max(len(list), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				items[i] = fetch(ctx, o, list[i])
				p.done(items[i])
			}
		}()
	}
	for i := range list {
		next <- i
	}
	close(next)
	wg.Wait()
	p.finish()
	return items
}

// fetch asks the mirror whether it holds v's zip, and downloads it through
// the mirror if not.
func fetch(ctx context.Context, o Options, v module.Version) Item {
	it := Item{Path: v.Path, Version: v.Version}
	ep, err := module.EscapePath(v.Path)
	if err == nil {
		var ev string
		ev, err = module.EscapeVersion(v.Version)
		ep += "/@v/" + ev + ".zip"
	}
	if err != nil {
		it.Outcome, it.Detail = Failed, err.Error()
		return it
	}
	u := strings.TrimSuffix(o.Server, "/") + "/" + ep
	// Held already? (Disable-Module-Fetch: answer from what is held.)
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		it.Outcome, it.Detail = Failed, err.Error()
		return it
	}
	req.Header.Set("Disable-Module-Fetch", "true")
	if resp, err := o.Client.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			it.Outcome, it.Bytes = Present, resp.ContentLength
			return it
		}
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		it.Outcome, it.Detail = Failed, err.Error()
		return it
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		it.Outcome, it.Detail = Failed, err.Error()
		return it
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		it.Outcome, it.Detail = Failed, fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		return it
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		it.Outcome, it.Detail = Failed, err.Error()
		return it
	}
	it.Outcome, it.Bytes = Fetched, n
	return it
}

// progress reports downloads: a bar redrawn in place on a terminal, else a
// line per version.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
	total    int
	counts   map[string]int
	last     time.Time
}

func newProgress(w io.Writer, terminal bool, total int) *progress {
	return &progress{w: w, terminal: terminal, total: total, counts: make(map[string]int)}
}

func (p *progress) done(it Item) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[it.Outcome]++
	if !p.terminal {
		detail := fmt.Sprintf("(%s)", humanize.Bytes(it.Bytes))
		if it.Outcome == Failed {
			detail = "(" + firstLine(it.Detail) + ")"
		}
		fmt.Fprintf(p.w, "%-7s %s@%s %s\n", it.Outcome, it.Path, it.Version, detail)
		return
	}
	if n := p.counts[Fetched] + p.counts[Present] + p.counts[Failed]; n < p.total && time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw()
}

func (p *progress) draw() {
	n := p.counts[Fetched] + p.counts[Present] + p.counts[Failed]
	const width = 30
	filled := width
	if p.total > 0 {
		filled = n * width / p.total
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d  fetched %d  present %d  failed %d ",
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), n, p.total, p.counts[Fetched], p.counts[Present], p.counts[Failed])
}

func (p *progress) finish() {
	if p.terminal {
		p.mu.Lock()
		p.draw()
		fmt.Fprintln(p.w)
		p.mu.Unlock()
	}
}

func summarize(w io.Writer, r Result) {
	var bytes int64
	for _, it := range r.Items {
		if it.Outcome == Fetched {
			bytes += it.Bytes
		}
	}
	fmt.Fprintf(w, "%d module versions: %d fetched (%s), %d already present, %d failed\n",
		len(r.Items), r.Count(Fetched), humanize.Bytes(bytes), r.Count(Present), r.Count(Failed))
	for _, it := range r.Items {
		if it.Outcome == Failed {
			fmt.Fprintf(w, "  failed %s@%s: %s\n", it.Path, it.Version, firstLine(it.Detail))
		}
	}
	for _, e := range r.RootErrors {
		fmt.Fprintf(w, "  could not list: %s\n", firstLine(e))
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// removeModCache removes a module cache, whose files the go command makes
// read-only.
func removeModCache(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	os.RemoveAll(dir)
}
