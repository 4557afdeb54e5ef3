package direct

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/version"
	"io"
	"io/fs"
	"os"
	"os/exec"
	pathpkg "path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
	"golang.org/x/sync/errgroup"

	"github.com/agora-mirror/agora/internal/gosum"
)

// Size limits of the go command (cmd/go/internal/modfetch/codehost) that
// the tagged path applies the same way.
const (
	maxArchive = 500 << 20 // codehost.MaxZipFile: git archive's output
	maxGoMod   = 16 << 20  // codehost.MaxGoMod
	maxLicense = 16 << 20  // codehost.MaxLICENSE
)

// The tagged path.
//
// Downloading one version with the go command costs about the same
// whatever its cache holds: a process, an ls-remote, a shallow fetch of
// the one tag, git archive, and a zip built, hashed and extracted. For a
// tagged version of a module whose repository is already known, the
// Fetcher instead builds the files itself from its own bare clone of the
// repository, exactly as the go command's codeRepo does (findDir, GoMod,
// Zip in cmd/go/internal/modfetch/coderepo.go): the tag's commit and
// committer time, go.mod read from the module's directory, and the zip
// made by golang.org/x/mod/zip from `git archive` of that directory with
// export-subst and export-ignore disabled and line endings untouched, plus
// the repository's LICENSE for a module in a subdirectory that has none.
// The first fetch into that clone takes every release tag of the module
// at once (shallow), so later versions need no network at all.
//
// A repository becomes known when the go command has downloaded a tagged
// version of the module from git: the Origin of that version's .info names
// the repository URL and the module's directory in it, so the go
// command's own rules (go-get meta tags, GOINSECURE, GOVCS) decide where
// the repository is, never the Fetcher. The .info files the go command
// keeps in the shared module cache (of downloads, and of queries that
// resolved to a tag) are read again the first time a module is asked for
// (origin), so what was known survives a restart; a plain-HTTP URL among
// them is used only while its module is still in Options.Insecure.
//
// Anything the tagged path does not handle exactly as the go command
// would is left to the go command: pseudo-versions and queries,
// +incompatible versions, gopkg.in paths, a major version whose
// repository has a major-version subdirectory (v2/go.mod), a go.mod that
// is missing, is not a regular file or declares another path, a go
// version newer than this Agora's, a zip the rules of x/mod/zip refuse,
// and any git failure. Those go through the go command, which decides
// the answer and the error.

// gitOrigin is where a module's tagged versions are in git.
type gitOrigin struct {
	url    string // the repository, as the go command fetched it
	subdir string // the module's directory in it ("" for the root)
}

// tagRef is the ref of the module's tag for vers ("" for the prefix of
// them all): the go command's codeRepo tags a module in directory d as
// d/vX.Y.Z.
func (o gitOrigin) tagRef(vers string) string {
	if o.subdir == "" {
		return "refs/tags/" + vers
	}
	return "refs/tags/" + o.subdir + "/" + vers
}

// infoFile is a .info file as the go command writes it for a version
// downloaded from version control (modfetch.RevInfo with its
// codehost.Origin); the field order is the go command's.
type infoFile struct {
	Version string
	Time    time.Time
	Origin  *originJSON `json:",omitempty"`
}

type originJSON struct {
	VCS    string `json:",omitempty"`
	URL    string `json:",omitempty"`
	Subdir string `json:",omitempty"`
	Hash   string `json:",omitempty"`
	Ref    string `json:",omitempty"`
}

// taggedEligible reports whether the tagged path may serve path@vers at
// all: a canonical tagged release whose module path has no gopkg.in
// suffix and no +incompatible build.
func taggedEligible(path, vers string) bool {
	if semver.Canonical(vers) != vers || module.IsPseudoVersion(vers) || semver.Build(vers) != "" {
		return false
	}
	if module.Check(path, vers) != nil {
		return false
	}
	_, pathMajor, ok := module.SplitPathVersion(path)
	return ok && !strings.HasPrefix(pathMajor, ".")
}

// learn records where path's versions are, from the .info file of a
// version the go command downloaded (originOf).
func (f *Fetcher) learn(path, vers, infoName string) {
	if o, ok := f.originOf(path, vers, infoName); ok {
		f.mu.Lock()
		f.origins[path] = o
		f.mu.Unlock()
	}
}

// originOf returns where path's versions are according to the .info
// file of path@vers, when that version is a tag in git whose name the
// tagged path would have derived itself, and the repository's URL is one
// the go command would fetch from under the Fetcher's settings now
// (prober.mayFetch: the file may have been written under other settings,
// before a restart).
func (f *Fetcher) originOf(path, vers, infoName string) (gitOrigin, bool) {
	if !taggedEligible(path, vers) {
		return gitOrigin{}, false
	}
	data, err := os.ReadFile(infoName)
	if err != nil {
		return gitOrigin{}, false
	}
	var inf infoFile
	if json.Unmarshal(data, &inf) != nil || inf.Origin == nil {
		return gitOrigin{}, false
	}
	o := gitOrigin{url: inf.Origin.URL, subdir: inf.Origin.Subdir}
	if inf.Origin.VCS != "git" || o.url == "" || inf.Origin.Ref != o.tagRef(vers) || !f.probe.mayFetch(path, o.url) {
		return gitOrigin{}, false
	}
	return o, true
}

// origin returns where path's tagged versions are, if known: learned
// from a download of this Fetcher or, the first time path is asked for,
// recalled from the .info files the go command left in the module cache
// (by a query or download of this Fetcher, or of an earlier one on the
// same Dir, before a restart).
func (f *Fetcher) origin(path string) (gitOrigin, bool) {
	f.mu.Lock()
	o, ok := f.origins[path]
	recalled := f.recalled[path]
	f.mu.Unlock()
	if ok || recalled {
		return o, ok
	}
	looked := f.recall(path)
	f.mu.Lock()
	defer f.mu.Unlock()
	if looked {
		f.recalled[path] = true
	}
	o, ok = f.origins[path]
	return o, ok
}

// recall learns where path's versions are from the .info files of its
// versions in the go command's download cache: from the highest version
// that tells, unless the Fetcher has learned it meanwhile. It reports
// whether the cache holds anything for path.
func (f *Fetcher) recall(path string) bool {
	epath, err := module.EscapePath(path)
	if err != nil {
		return false
	}
	dir := filepath.Join(f.modCache, "cache", "download", filepath.FromSlash(epath), "@v")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	var best string
	var bestOrigin gitOrigin
	for _, e := range entries {
		ev, ok := strings.CutSuffix(e.Name(), ".info")
		if !ok {
			continue
		}
		vers, err := module.UnescapeVersion(ev)
		if err != nil || (best != "" && semver.Compare(vers, best) <= 0) {
			continue
		}
		if o, ok := f.originOf(path, vers, filepath.Join(dir, e.Name())); ok {
			best, bestOrigin = vers, o
		}
	}
	if best != "" {
		f.mu.Lock()
		if _, known := f.origins[path]; !known {
			f.origins[path] = bestOrigin
		}
		f.mu.Unlock()
	}
	return true
}

// gitRepo is the Fetcher's bare clone of one repository. Its mutex
// serialises the work of the tagged path on it and guards remote and
// listed.
type gitRepo struct {
	mu     sync.Mutex
	dir    string
	remote map[string]string // the server's tags (ref -> object), read at listed
	listed time.Time
}

// repo returns the clone for url (created on disk by initRepo).
func (f *Fetcher) repo(url string) *gitRepo {
	f.mu.Lock()
	r, ok := f.repos[url]
	if !ok {
		sum := sha256.Sum256([]byte(url))
		r = &gitRepo{dir: filepath.Join(f.gitRoot, hex.EncodeToString(sum[:12]))}
		f.repos[url] = r
	}
	f.mu.Unlock()
	return r
}

// tagged downloads path@vers by the tagged path. ok is false when the
// tagged path does not apply or failed; the caller then runs the go
// command, whose answer (and error) is authoritative.
func (f *Fetcher) tagged(ctx context.Context, path, vers string) (m *Module, ok bool) {
	if !taggedEligible(path, vers) {
		return nil, false
	}
	o, known := f.origin(path)
	if !known {
		return nil, false
	}
	if m := f.goCached(path, vers); m != nil {
		return m, true
	}
	goCmd, err := f.goVersion(ctx) // before taking a slot: it runs the go command
	if err != nil {
		f.log.Debug("direct: tagged path not taken", "module", path, "version", vers, "reason", err.Error())
		return nil, false
	}
	// One version of a repository at a time, and waiting for it without
	// holding one of the Fetcher's slots.
	r := f.repo(o.url)
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case f.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	defer func() { <-f.sem }()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	start := time.Now()
	m, err = f.buildTagged(ctx, r, o, path, vers, goCmd)
	if err != nil {
		f.log.Debug("direct: tagged path not taken; the go command decides", "module", path, "version", vers, "reason", err.Error())
		return nil, false
	}
	f.log.Debug("direct: tagged path", "module", path, "version", vers,
		"duration", time.Since(start).Round(time.Millisecond))
	return m, true
}

// errNotTagged is why the tagged path left a version to the go command
// when git itself did not fail.
var errNotTagged = errors.New("left to the go command")

// buildTagged makes path@vers's files under the Fetcher's tagged
// directory, laid out as the go command's download cache, and returns
// them. Files made before are reused.
func (f *Fetcher) buildTagged(ctx context.Context, r *gitRepo, o gitOrigin, path, vers, goCmd string) (*Module, error) {
	m, base, err := downloadFiles(f.taggedRoot, path, vers)
	if err != nil {
		return nil, err
	}

	if err := f.initRepo(ctx, r); err != nil {
		return nil, err
	}
	tag := o.tagRef(vers)
	t, err := f.currentTag(ctx, r, o, vers)
	if err != nil {
		return nil, err
	}
	hash := t.commit
	if m.complete(base, hash) {
		return m, nil
	}
	// findDir: the module's go.mod, in its directory.
	_, pathMajor, _ := module.SplitPathVersion(path)
	goModName := pathpkg.Join(o.subdir, "go.mod")
	names := []string{goModName, "LICENSE"}
	if pathMajor != "" {
		names = append(names, pathpkg.Join(o.subdir, pathMajor[1:], "go.mod"))
	}
	entries, err := f.lsTree(ctx, r, hash, names)
	if err != nil {
		return nil, err
	}
	if pathMajor != "" {
		if _, ok := entries[names[2]]; ok {
			return nil, fmt.Errorf("%w: %s has a %s subdirectory with a go.mod", errNotTagged, tag, pathMajor[1:])
		}
	}
	gm, ok := entries[goModName]
	if !ok || gm.mode != "100644" && gm.mode != "100755" {
		return nil, fmt.Errorf("%w: %s has no go.mod file in %q", errNotTagged, tag, o.subdir)
	}
	gomod, err := f.blob(ctx, r, gm.object, maxGoMod)
	if err != nil {
		return nil, err
	}
	if mp := modfile.ModulePath(gomod); mp != path {
		return nil, fmt.Errorf("%w: go.mod declares %q", errNotTagged, mp)
	}
	// The go command refuses a zip whose go.mod needs a newer Go than its
	// own (gover.TooNewError in codeRepo.Zip); so does this, and leaves
	// anything it cannot compare to the go command too.
	if v := goModGo(gomod); v != "" && (!version.IsValid("go"+v) || version.Compare("go"+v, goCmd) > 0) {
		return nil, fmt.Errorf("%w: go.mod requires go %s, the go command is %s", errNotTagged, v, goCmd)
	}

	var license []byte
	rootLicense := false // also when empty: the go command adds it whenever it can read it
	if le, ok := entries["LICENSE"]; ok && o.subdir != "" && le.kind == "blob" {
		if license, err = f.blob(ctx, r, le.object, maxLicense); err != nil {
			return nil, err
		}
		rootLicense = true
	}

	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return nil, err
	}
	sum, err := f.archiveZip(ctx, r, hash, o.subdir, module.Version{Path: path, Version: vers}, rootLicense, license, m.Zip)
	if err != nil {
		return nil, err
	}
	info, err := json.Marshal(infoFile{
		Version: vers,
		Time:    t.time,
		Origin:  &originJSON{VCS: "git", URL: o.url, Subdir: o.subdir, Hash: hash, Ref: tag},
	})
	if err != nil {
		return nil, err
	}
	for _, w := range []struct {
		name string
		data []byte
	}{{m.GoMod, gomod}, {m.Info, info}, {base + ".ziphash", []byte(sum)}} {
		if err := writeFileAtomic(w.name, w.data, 0o644); err != nil {
			return nil, err
		}
	}
	modSum, err := gosum.ModHash(gomod)
	if err != nil {
		return nil, err
	}
	m.Sum, m.GoModSum = sum, modSum
	return m, nil
}

// downloadFiles returns the Module naming path@vers's files in a module
// cache at root laid out as the go command's
// (<root>/cache/download/<escaped path>/@v/<escaped version>.info|.mod|.zip),
// and the name they share before the extension.
func downloadFiles(root, path, vers string) (*Module, string, error) {
	esc, err := module.EscapePath(path)
	if err != nil {
		return nil, "", err
	}
	escVers, err := module.EscapeVersion(vers)
	if err != nil {
		return nil, "", err
	}
	base := filepath.Join(root, "cache", "download", filepath.FromSlash(esc), "@v", escVers)
	return &Module{Path: path, Version: vers, Info: base + ".info", GoMod: base + ".mod", Zip: base + ".zip"}, base, nil
}

// complete reports whether m's files are all there (.ziphash, written
// last, included) and, when commit is not "", were made from that commit;
// it fills in the hashes.
func (m *Module) complete(base, commit string) bool {
	sum, err := os.ReadFile(base + ".ziphash")
	if err != nil {
		return false
	}
	gomod, err := os.ReadFile(m.GoMod)
	if err != nil {
		return false
	}
	if _, err := os.Stat(m.Zip); err != nil {
		return false
	}
	if commit == "" {
		if _, err := os.Stat(m.Info); err != nil {
			return false
		}
	} else {
		data, err := os.ReadFile(m.Info)
		var inf infoFile
		if err != nil || json.Unmarshal(data, &inf) != nil || inf.Origin == nil || inf.Origin.Hash != commit {
			return false
		}
	}
	modSum, err := gosum.ModHash(gomod)
	if err != nil {
		return false
	}
	m.Sum, m.GoModSum = strings.TrimSpace(string(sum)), modSum
	return true
}

// remoteTTL is how long the tag list of a repository (git ls-remote) is
// trusted: a tag fetched ahead of its first request is checked against a
// list at most this old, and fetched again if it has moved.
var remoteTTL = 30 * time.Second // a variable for tests

// currentTag returns path@vers's tag as the repository has it now (as
// the go command, which asks the server at every download), fetching the
// tag (with newer releases) when the clone lacks it or holds an older
// object under its name. The repository's tag list is asked for at most
// every remoteTTL.
func (f *Fetcher) currentTag(ctx context.Context, r *gitRepo, o gitOrigin, vers string) (tagRef, error) {
	tag := o.tagRef(vers)
	t, err := f.resolveTag(ctx, r, tag)
	if err != nil {
		return tagRef{}, err
	}
	if t.object != "" && time.Since(r.listed) < remoteTTL && r.remote[tag] == t.object {
		return t, nil
	}
	if err := f.listRemote(ctx, r, o); err != nil {
		return tagRef{}, err
	}
	want, ok := r.remote[tag]
	if !ok {
		return tagRef{}, fmt.Errorf("%w: the repository has no tag %s", errNotTagged, tag)
	}
	if t.object == want {
		return t, nil
	}
	if err := f.fetchTags(ctx, r, o, vers); err != nil {
		return tagRef{}, err
	}
	if t, err = f.resolveTag(ctx, r, tag); err != nil {
		return tagRef{}, err
	}
	if t.object != want {
		return tagRef{}, fmt.Errorf("%w: tag %s is %q after fetching, the server lists %s", errNotTagged, tag, t.object, want)
	}
	return t, nil
}

// listRemote reads the repository's tags (git ls-remote) into r.remote.
func (f *Fetcher) listRemote(ctx context.Context, r *gitRepo, o gitOrigin) error {
	var out bytes.Buffer
	if err := f.git(ctx, r.dir, nil, &out, "ls-remote", "--quiet", "--tags", "--refs", "--end-of-options", o.url); err != nil {
		return err
	}
	remote := make(map[string]string)
	for line := range strings.Lines(out.String()) {
		if object, ref, ok := strings.Cut(strings.TrimSpace(line), "\t"); ok {
			remote[ref] = object
		}
	}
	r.remote, r.listed = remote, time.Now()
	return nil
}

// goCached returns path@vers as the go command left it in the shared
// module cache (a version it downloaded before the repository was known),
// or nil.
func (f *Fetcher) goCached(path, vers string) *Module {
	m, base, err := downloadFiles(f.modCache, path, vers)
	if err != nil || !m.complete(base, "") {
		return nil
	}
	return m
}

// goModGo returns the go directive of a go.mod file, or "": the first
// line that is "go" and a version, found as the go command's
// gover.GoModLookup does (a line scan, so that a go.mod that does not
// parse still has its go version read).
func goModGo(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, "go")
		if !ok || rest == "" || rest[0] != ' ' && rest[0] != '\t' {
			continue
		}
		rest, _, _ = strings.Cut(rest, "//")
		return strings.TrimSpace(rest)
	}
	return ""
}

// goVersion returns the version of the go command the Fetcher runs
// ("go1.26.8"), asked with `go env GOVERSION` until once answered.
func (f *Fetcher) goVersion(ctx context.Context) (string, error) {
	f.mu.Lock()
	v := f.goVer
	f.mu.Unlock()
	if v != "" {
		return v, nil
	}
	res := f.run(ctx, "goversion", "", "", "env", "GOVERSION")
	if res.err != nil {
		return "", fmt.Errorf("go env GOVERSION: %w", res.err)
	}
	if v = strings.TrimSpace(string(res.stdout)); !version.IsValid(v) {
		return "", fmt.Errorf("%w: the go command reports version %q", errNotTagged, v)
	}
	f.mu.Lock()
	f.goVer = v
	f.mu.Unlock()
	return v, nil
}

// cleanGitRoot removes what git and the tagged path leave behind when
// the process dies mid-command (lock files that would make every later
// git command in that clone fail, spooled archives): no git process of
// the Fetcher runs yet when New calls it. A clone's objects directory,
// which grows with every fetch (small fetches are unpacked into loose
// objects), is not walked: the commands the tagged path runs lock refs,
// shallow and config, outside it.
func cleanGitRoot(root string) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "objects" && filepath.Dir(filepath.Dir(p)) == root {
			return fs.SkipDir
		}
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".lock") ||
			filepath.Dir(p) == root && strings.HasPrefix(d.Name(), "archive-")) {
			os.Remove(p)
		}
		return nil
	})
}

// initRepo creates r's bare repository if it does not exist yet, with
// export-subst and export-ignore disabled for git archive, as the go
// command does (golang.org/issue/27153).
func (f *Fetcher) initRepo(ctx context.Context, r *gitRepo) error {
	attrs := filepath.Join(r.dir, "info", "attributes")
	if _, err := os.Stat(attrs); err == nil {
		return nil
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	if err := f.git(ctx, r.dir, nil, nil, "init", "--bare", "--quiet"); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(attrs), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(attrs, []byte("\n* -export-subst -export-ignore\n"), 0o644)
}

// maxBatch bounds the tags fetched at once by the tagged path.
const maxBatch = 50

// fetchTags fetches the tag of path@vers into r with one shallow fetch,
// together with the module's releases of the same major version that are
// newer than vers and not held as the server lists them (r.remote, read
// just before), up to maxBatch tags in all: builds move forward, so those
// are the versions likely to be asked for next.
func (f *Fetcher) fetchTags(ctx context.Context, r *gitRepo, o gitOrigin, vers string) error {
	var local bytes.Buffer
	if err := f.git(ctx, r.dir, nil, &local, "for-each-ref", "--format=%(refname) %(objectname)", "refs/tags/"); err != nil {
		return err
	}
	held := make(map[string]string)
	for line := range strings.Lines(local.String()) {
		if ref, object, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			held[ref] = object
		}
	}
	prefix := o.tagRef("")
	var newer []string
	for ref, object := range r.remote {
		v, isTag := strings.CutPrefix(ref, prefix)
		if !isTag || semver.Canonical(v) != v || semver.Major(v) != semver.Major(vers) ||
			semver.Compare(v, vers) <= 0 || held[ref] == object {
			continue
		}
		newer = append(newer, v)
	}
	semver.Sort(newer)
	refs := []string{vers}
	refs = append(refs, newer[:min(len(newer), maxBatch-1)]...)
	var specs strings.Builder
	for _, v := range refs {
		fmt.Fprintf(&specs, "+%s%s:%s%s\n", prefix, v, prefix, v)
	}
	return f.git(ctx, r.dir, strings.NewReader(specs.String()), nil,
		"fetch", "--quiet", "--no-tags", "--depth=1", "--stdin", "--end-of-options", o.url)
}

// tagRef is a tag as a clone holds it.
type tagRef struct {
	object string    // what the tag names: a tag object, or the commit of a lightweight tag
	commit string    // the commit it points to
	time   time.Time // that commit's committer time, the version's time for the go command
}

// resolveTag returns tag as r holds it, with one git for-each-ref; a zero
// tagRef if r does not have the tag.
func (f *Fetcher) resolveTag(ctx context.Context, r *gitRepo, tag string) (tagRef, error) {
	var out bytes.Buffer
	// The starred fields are the peeled object's: set for an annotated
	// tag, empty for a lightweight one.
	if err := f.git(ctx, r.dir, nil, &out, "for-each-ref",
		"--format=%(objectname) %(*objectname) %(committerdate:unix) %(*committerdate:unix)", "--end-of-options", tag); err != nil {
		return tagRef{}, err
	}
	line, _, _ := strings.Cut(out.String(), "\n")
	fields := strings.Split(line, " ")
	if len(fields) != 4 || fields[0] == "" {
		return tagRef{}, nil
	}
	t := tagRef{object: fields[0], commit: fields[1]}
	secs := fields[3]
	if t.commit == "" {
		t.commit, secs = t.object, fields[2]
	}
	n, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return tagRef{}, fmt.Errorf("commit time of %s: %w", tag, err)
	}
	t.time = time.Unix(n, 0).UTC()
	return t, nil
}

// treeEntry is one line of git ls-tree.
type treeEntry struct{ mode, kind, object string }

// lsTree returns the entries of commit's tree for the given full paths
// that exist.
func (f *Fetcher) lsTree(ctx context.Context, r *gitRepo, commit string, names []string) (map[string]treeEntry, error) {
	var out bytes.Buffer
	args := append([]string{"ls-tree", "-z", "--full-tree", commit, "--"}, names...)
	if err := f.git(ctx, r.dir, nil, &out, args...); err != nil {
		return nil, err
	}
	entries := make(map[string]treeEntry)
	for line := range strings.SplitSeq(strings.TrimSuffix(out.String(), "\x00"), "\x00") {
		meta, name, ok := strings.Cut(line, "\t")
		fields := strings.Fields(meta)
		if !ok || len(fields) != 3 {
			continue
		}
		entries[name] = treeEntry{mode: fields[0], kind: fields[1], object: fields[2]}
	}
	return entries, nil
}

// blob returns the content of a blob, as `git cat-file blob` gives it (no
// attribute or line-ending conversion, as the go command's ReadFile).
func (f *Fetcher) blob(ctx context.Context, r *gitRepo, object string, limit int64) ([]byte, error) {
	w := &limitedBuffer{max: int(limit)}
	if err := f.git(ctx, r.dir, nil, w, "cat-file", "blob", object); err != nil {
		return nil, err
	}
	if w.truncated {
		return nil, fmt.Errorf("%w: blob %s is larger than %d bytes", errNotTagged, object, limit)
	}
	return w.Bytes(), nil
}

// archiveZip writes the module zip of commit's directory subdir to
// zipName and returns its h1: hash. Like the go command's codeRepo.Zip it
// takes the files of `git archive` (here as tar, which holds the same
// files as the zip format the go command reads, uncompressed), without
// the directory prefix, adds license as LICENSE when addLicense is set
// and the directory has none, lets golang.org/x/mod/zip choose and check
// the files, and writes the zip with createZip.
func (f *Fetcher) archiveZip(ctx context.Context, r *gitRepo, commit, subdir string, mv module.Version, addLicense bool, license []byte, zipName string) (string, error) {
	spool, err := os.CreateTemp(f.gitRoot, "archive-*.tar")
	if err != nil {
		return "", err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	args := []string{"-c", "core.autocrlf=input", "-c", "core.eol=lf", "archive", "--format=tar", "--prefix=prefix/", "--end-of-options", commit}
	if subdir != "" {
		args = append(args, subdir)
	}
	lw := &limitedWriter{w: spool, n: maxArchive}
	if err := f.git(ctx, r.dir, nil, lw, args...); err != nil {
		return "", err
	}
	if lw.n < 0 {
		return "", fmt.Errorf("%w: git archive is larger than %d bytes", errNotTagged, maxArchive)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return "", err
	}

	prefix := "prefix/"
	if subdir != "" {
		prefix += subdir + "/"
	}
	var files []modzip.File
	haveLicense := false
	tr := tar.NewReader(spool)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("reading git archive: %w", err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, ok := strings.CutPrefix(h.Name, prefix)
		if !ok || name == "" || strings.HasSuffix(name, "/") || h.Typeflag == tar.TypeDir {
			continue
		}
		off, err := spool.Seek(0, io.SeekCurrent)
		if err != nil {
			return "", err
		}
		files = append(files, tarFile{name: name, info: h.FileInfo(), r: io.NewSectionReader(spool, off, h.Size)})
		if name == "LICENSE" {
			haveLicense = true
		}
	}
	if !haveLicense && addLicense {
		files = append(files, tarFile{name: "LICENSE", info: dataInfo{size: int64(len(license))}, r: bytes.NewReader(license)})
	}

	tmp, err := os.CreateTemp(filepath.Dir(zipName), "."+filepath.Base(zipName)+".tmp-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	// The zip is written and its hash computed from the same files at
	// once: the hash covers the files x/mod/zip keeps, named as in the zip.
	checked, err := modzip.CheckFiles(files)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errNotTagged, err)
	}
	byName := make(map[string]modzip.File, len(files))
	for _, f := range files {
		byName[f.Path()] = f
	}
	zipPrefix := mv.Path + "@" + mv.Version + "/"
	names := make([]string, len(checked.Valid))
	valid := make([]modzip.File, len(checked.Valid))
	for i, p := range checked.Valid {
		names[i] = zipPrefix + p
		valid[i] = byName[p]
	}
	var sum string
	var g errgroup.Group
	g.Go(func() error {
		var err error
		sum, err = dirhash.Hash1(names, func(name string) (io.ReadCloser, error) {
			return byName[strings.TrimPrefix(name, zipPrefix)].Open()
		})
		return err
	})
	if err := createZip(tmp, mv, valid); err != nil {
		g.Wait()
		return "", fmt.Errorf("%w: %w", errNotTagged, err)
	}
	if err := g.Wait(); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), zipName); err != nil {
		return "", err
	}
	return sum, nil
}

// tarFile is a file of the archive, for modzip.CheckFiles and createZip.
type tarFile struct {
	name string
	info fs.FileInfo
	r    io.ReaderAt
}

func (t tarFile) Path() string                { return t.name }
func (t tarFile) Lstat() (fs.FileInfo, error) { return t.info, nil }
func (t tarFile) Open() (io.ReadCloser, error) {
	return io.NopCloser(io.NewSectionReader(t.r, 0, t.info.Size())), nil
}

// dataInfo describes the LICENSE added from the repository's root.
type dataInfo struct{ size int64 }

func (d dataInfo) Name() string       { return "LICENSE" }
func (d dataInfo) Size() int64        { return d.size }
func (d dataInfo) Mode() fs.FileMode  { return 0o644 }
func (d dataInfo) ModTime() time.Time { return time.Time{} }
func (d dataInfo) IsDir() bool        { return false }
func (d dataInfo) Sys() any           { return nil }

// limitedWriter passes on at most n bytes; n goes negative once more
// were offered, and the rest is dropped.
type limitedWriter struct {
	w io.Writer
	n int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.n {
		l.n = -1
		return len(p), nil
	}
	l.n -= int64(len(p))
	return l.w.Write(p)
}

// git runs git on the bare repository dir with the Fetcher's environment
// (credentials, proxies, no prompts), reading stdin and writing its output
// to stdout (nil for none), in its own process group killed on
// cancellation.
func (f *Fetcher) git(ctx context.Context, dir string, stdin io.Reader, stdout io.Writer, args ...string) error {
	stderr := &tailBuffer{max: 8 << 10}
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(f.env[:len(f.env):len(f.env)], "GIT_DIR="+dir)
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	if err := f.execute(ctx, cmd, "git "+args[0], ""); err != nil {
		return &gitError{args: args[0], err: err, stderr: f.secrets.tail(stderr.Bytes())}
	}
	return nil
}

// gitError is a failed git command of the tagged path.
type gitError struct {
	args, stderr string
	err          error
}

func (e *gitError) Error() string {
	return fmt.Sprintf("git %s: %v: %s", e.args, e.err, e.stderr)
}

func (e *gitError) Unwrap() error { return e.err }
