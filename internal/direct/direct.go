// Package direct fetches module versions straight from version control,
// by running the go command in direct mode (GOPROXY=direct), so that the
// .info, .mod and .zip files and their h1: hashes are byte for byte what
// the go command itself makes from the repository.
//
// A [Fetcher] owns one persistent module cache (GOMODCACHE, with the go
// command's VCS clones under cache/vcs) shared by all its go processes, so
// a repository is cloned once and later versions cost an incremental
// fetch. For releases of a module whose git repository it has learned
// from a version the go command fetched, it skips the go command and
// makes the files itself from its own bare clone, by the go command's
// rules (the tagged path, see tagged.go), so that later releases cost a
// git archive and no network. It owns the environment those processes see, built from nothing
// but its [Options]: a private HOME with the netrc and git configuration,
// no prompts, no checksum database, no telemetry. It owns the processes:
// each runs in an empty directory outside any module, in its own process
// group that is killed as a whole on cancellation or timeout, with a bound
// on how many run at once. And it owns the meaning of their failures,
// reported as [*Error] with a [Kind] decided from structure (exit status,
// JSON fields, a probe of the repository), never from message text, and
// with every credential removed.
//
// The package knows nothing of Agora's store, of HTTP serving or of
// upstream proxies: callers copy the files it names out of its module
// cache and decide what to serve.
package direct

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// Defaults for zero [Options] fields.
const (
	// DefaultMaxConcurrent is the number of go processes that may run at
	// once when Options.MaxConcurrent is 0.
	DefaultMaxConcurrent = 4
	// DefaultTimeout bounds one go process when Options.Timeout is 0.
	DefaultTimeout = 10 * time.Minute
)

// killGrace is how long a cancelled go process and its children have to
// exit after SIGTERM before they are killed.
const killGrace = 2 * time.Second

// probeListTimeout bounds the version list asked for when classifying a
// failure.
const probeListTimeout = 2 * time.Minute

// versionsTTL is how long a successful version list is used by the
// failure probe ([Fetcher.Versions] itself always asks afresh).
const versionsTTL = 15 * time.Second

// Options configure a [Fetcher].
type Options struct {
	// Dir holds the Fetcher's state: the shared GOPATH and module cache
	// (with the go command's VCS cache), the build cache, a private HOME
	// and the working directories of running go processes. It is created
	// if needed, and must not be shared with another Fetcher's options
	// (a second Fetcher on the same Dir would overwrite HOME's files).
	Dir string
	// GoBin is the go command; "" means "go" found on PATH.
	GoBin string
	// Insecure lists hosts that may be fetched over plain HTTP, in
	// GOINSECURE syntax (comma-separated module path prefix globs).
	Insecure string
	// Netrc is a netrc file with credentials for the go command and git
	// (machine/login/password lines). It is read once, by [New], into the
	// private HOME; "" means none.
	Netrc string
	// Tokens maps a host name (without port) to an HTTPS access token.
	// Each becomes the netrc entry "machine <host> login x-access-token
	// password <token>", placed before the entries of Netrc so that it
	// wins, and git and the go command send it as HTTP Basic
	// authentication. x-access-token is the user name GitHub requires for
	// app installation tokens and accepts with personal access tokens;
	// GitLab, Gitea and Forgejo personal access tokens take any user name.
	// A host that needs a particular user name (Bitbucket's x-token-auth,
	// GitLab's oauth2 for OAuth tokens) is configured through Netrc.
	Tokens map[string]string
	// SSHKey is a private key file used for ssh:// and scp-style URLs. A
	// relative name is taken from the working directory of [New]'s caller,
	// as are SSHKnownHosts and GitConfig.
	SSHKey string
	// SSHKnownHosts is the known_hosts file for ssh; hosts not in it are
	// refused. Empty means ssh's own defaults. (ssh finds ~/.ssh through
	// the password database, not HOME: without SSHKey and SSHKnownHosts
	// it uses the keys and known hosts of the user Agora runs as.)
	SSHKnownHosts string
	// GitSSHCommand replaces the ssh command git runs (GIT_SSH_COMMAND)
	// entirely; SSHKey and SSHKnownHosts are then ignored.
	GitSSHCommand string
	// GitConfig is a git configuration file that the private global
	// configuration includes, so every git the Fetcher runs reads it, as
	// it is at that moment: url.<base>.insteadOf rewrites (a host's
	// repositories fetched over ssh instead of HTTPS, or through a
	// company's Git front end), http.<url>.* settings. "" means none.
	GitConfig string
	// MaxConcurrent bounds the go processes running at once; 0 means
	// DefaultMaxConcurrent.
	MaxConcurrent int
	// Timeout bounds one go process; 0 means DefaultTimeout.
	Timeout time.Duration
	// Logger receives a debug line per go process; nil means no logging.
	Logger *slog.Logger

	// getenv reads Agora's own environment (proxy and CA settings);
	// nil means os.Getenv. Tests set it through export_test.go.
	getenv func(string) string
}

// A Fetcher runs the go command in direct mode against one shared module
// cache. Its methods are safe for concurrent use.
type Fetcher struct {
	goBin    string
	modCache string
	workRoot string
	env      []string
	timeout  time.Duration
	sem      chan struct{}
	log      *slog.Logger
	secrets  *redactor
	probe    *prober

	mu       sync.Mutex
	versions map[string]versionsEntry // successful lists, for the probe
	origins  map[string]gitOrigin     // module path -> its repository, for the tagged path
	recalled map[string]bool          // module paths whose origin was looked for in the module cache
	repos    map[string]*gitRepo      // repository URL -> the Fetcher's clone

	gitRoot    string // the tagged path's bare clones
	taggedRoot string // the files the tagged path made, laid out as a module cache

	goVer string // the go command's version, for the tagged path (guarded by mu)
}

type versionsEntry struct {
	list []string
	at   time.Time
}

// Module is a module version downloaded into the shared module cache.
// The files belong to the cache: callers copy them and must not change
// or remove them.
type Module struct {
	// Path and Version name the module version; Version is canonical even
	// when a query (a branch name, a commit prefix) was asked for.
	Path, Version string
	// Info, GoMod and Zip are the paths of the version's .info, .mod and
	// .zip files: <cache>/cache/download/<escaped path>/@v/<escaped
	// version>.info|.mod|.zip.
	Info, GoMod, Zip string
	// Sum is the go.sum hash of the zip, GoModSum that of the go.mod file
	// ("h1:...").
	Sum, GoModSum string
}

// New prepares o.Dir and returns a Fetcher. It fails if the go command
// cannot be found, the netrc, ssh key, known_hosts or git configuration
// file cannot be read (or git cannot parse the configuration), or a token
// or host is not usable in a netrc file.
func New(o Options) (*Fetcher, error) {
	if o.Dir == "" {
		return nil, errors.New("direct: Options.Dir is required")
	}
	getenv := o.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("direct: %w", err)
	}
	goBin := o.GoBin
	if goBin == "" {
		goBin = "go"
	}
	if goBin, err = exec.LookPath(goBin); err != nil {
		return nil, fmt.Errorf("direct: finding the go command: %w", err)
	}
	if goBin, err = filepath.Abs(goBin); err != nil {
		return nil, fmt.Errorf("direct: %w", err)
	}

	home := filepath.Join(dir, "home")
	gopath := filepath.Join(dir, "gopath")
	modCache := filepath.Join(dir, "modcache")
	goCache := filepath.Join(dir, "gocache")
	workRoot := filepath.Join(dir, "work")
	gitRoot := filepath.Join(dir, "git")
	taggedRoot := filepath.Join(dir, "tagged")
	for _, d := range []string{dir, gopath, modCache, goCache, workRoot, gitRoot, taggedRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("direct: %w", err)
		}
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, fmt.Errorf("direct: %w", err)
	}
	// Leftovers of go processes killed with Agora.
	if old, err := os.ReadDir(workRoot); err == nil {
		for _, e := range old {
			os.RemoveAll(filepath.Join(workRoot, e.Name()))
		}
	}
	cleanGitRoot(gitRoot)
	if f := moduleFileAbove(workRoot); f != "" {
		return nil, fmt.Errorf("direct: Options.Dir %s is inside a module or workspace (%s); the go command would use it", o.Dir, f)
	}

	// ssh and git read these files from the go process's working
	// directory, not ours: name them absolutely, and fail now rather than
	// at each fetch. (The ssh files are unused when GitSSHCommand is set.)
	type fileOption struct {
		name string
		p    *string
	}
	files := []fileOption{{"GitConfig", &o.GitConfig}}
	if o.GitSSHCommand == "" {
		files = append(files, fileOption{"SSHKey", &o.SSHKey}, fileOption{"SSHKnownHosts", &o.SSHKnownHosts})
	}
	for _, file := range files {
		if *file.p == "" {
			continue
		}
		abs, err := filepath.Abs(*file.p)
		if err == nil {
			err = readable(abs)
		}
		if err != nil {
			return nil, fmt.Errorf("direct: Options.%s: %w", file.name, err)
		}
		*file.p = abs
	}
	if o.GitConfig != "" {
		// git would fail every fetch on a file it cannot parse.
		cmd := exec.Command("git", "config", "--file", o.GitConfig, "--includes", "--list")
		cmd.Env = []string{"PATH=" + getenv("PATH"), "HOME=" + home, "GIT_CONFIG_NOSYSTEM=1"}
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("direct: Options.GitConfig: git config: %w: %s", err, bytes.TrimSpace(out))
		}
	}

	h, err := writeHome(home, o)
	if err != nil {
		return nil, fmt.Errorf("direct: %w", err)
	}

	env := []string{
		"PATH=" + getenv("PATH"),
		"HOME=" + home,
		"GOPATH=" + gopath,
		"GOMODCACHE=" + modCache,
		"GOCACHE=" + goCache,
		"GOENV=off",
		"GOWORK=off",
		"GO111MODULE=on",
		"GOTOOLCHAIN=local",
		"GOFLAGS=-modcacherw",
		"GOPROXY=direct",
		"GOSUMDB=off",
		"GONOSUMDB=",
		"GOPRIVATE=",
		"GONOPROXY=",
		"GOINSECURE=" + o.Insecure,
		// GOVCS is left to its default: with GOPRIVATE empty every module
		// counts as public, so only git and hg are run.
		"GOAUTH=netrc",
		"NETRC=" + h.netrc,
		"GIT_TERMINAL_PROMPT=0",
		"GCM_INTERACTIVE=never",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=" + h.gitconfig,
		"GIT_SSH_COMMAND=" + sshCommand(o),
	}
	// Proxies and certificate authorities come from Agora's own
	// environment: they describe the network, not the fetch.
	for _, k := range []string{
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
		"SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
	} {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}

	limit := o.MaxConcurrent
	if limit <= 0 {
		limit = DefaultMaxConcurrent
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &Fetcher{
		goBin:    goBin,
		modCache: modCache,
		workRoot: workRoot,
		env:      env,
		timeout:  timeout,
		sem:      make(chan struct{}, limit),
		log:      logger,
		secrets:  h.secrets,
		versions: make(map[string]versionsEntry),
		origins:  make(map[string]gitOrigin),
		recalled: make(map[string]bool),
		repos:    make(map[string]*gitRepo),

		gitRoot:    gitRoot,
		taggedRoot: taggedRoot,
	}
	f.probe = newProber(envMap(env), o.Insecure, h.creds)
	if o.GitConfig != "" {
		f.probe.rewrite = f.gitURL
	}
	return f, nil
}

// gitURL returns the URL git fetches when given url: url after the
// url.<base>.insteadOf rules of Options.GitConfig. ok is false when git
// cannot say.
func (f *Fetcher) gitURL(ctx context.Context, url string) (string, bool) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "git", "ls-remote", "--get-url", "--end-of-options", url)
	cmd.Dir = f.workRoot
	// Not the configuration of a repository around the data directory.
	cmd.Env = append(f.env[:len(f.env):len(f.env)], "GIT_CEILING_DIRECTORIES="+filepath.Dir(f.workRoot))
	cmd.Stdout = &out
	if err := f.execute(ctx, cmd, "git ls-remote", ""); err != nil {
		return "", false
	}
	u := strings.TrimSpace(out.String())
	return u, u != ""
}

// moduleFileAbove returns a go.mod or go.work file in dir or one of its
// parents, or "".
func moduleFileAbove(dir string) string {
	for {
		for _, name := range []string{"go.mod", "go.work"} {
			p := filepath.Join(dir, name)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// downloadJSON is the output of `go mod download -json` for one module.
type downloadJSON struct {
	Path, Version, Error string
	Info, GoMod, Zip     string
	Dir                  string
	Sum, GoModSum        string
}

// listJSON is the part of `go list -m -json` output used here.
type listJSON struct {
	Path     string
	Version  string
	Versions []string
	Time     *time.Time
}

// Download runs `go mod download -json path@version` and returns where the
// version's files are in the module cache. version may be canonical (a
// tagged version or a pseudo-version) or a query the go command resolves
// (a branch name, a commit hash prefix); Module.Version is then the
// version it resolved to.
//
// The go command also extracts the zip into the cache; Download removes
// that copy again, as nothing here uses it.
func (f *Fetcher) Download(ctx context.Context, path, version string) (*Module, error) {
	const op = "download"
	if err := checkArgs(path, version); err != nil {
		return nil, &Error{Op: op, Module: path, Version: version, Kind: NotFound, Detail: err.Error()}
	}
	if m, ok := f.tagged(ctx, path, version); ok {
		return m, nil
	}
	res := f.run(ctx, op, path, version, "mod", "download", "-json", "--", path+"@"+version)
	var d downloadJSON
	jerr := json.Unmarshal(res.stdout, &d)
	if res.err == nil && jerr != nil {
		return nil, &Error{Op: op, Module: path, Version: version, Kind: Failed,
			Detail: "unreadable go mod download output: " + f.secrets.tail(res.stdout)}
	}
	if res.err == nil && d.Error == "" {
		if d.Info == "" || d.GoMod == "" || d.Zip == "" || d.Version == "" || d.Sum == "" {
			return nil, &Error{Op: op, Module: path, Version: version, Kind: Failed,
				Detail: "go mod download reported no files: " + f.secrets.tail(res.stdout)}
		}
		f.removeExtracted(d.Dir)
		f.learn(d.Path, d.Version, d.Info)
		return &Module{
			Path: d.Path, Version: d.Version,
			Info: d.Info, GoMod: d.GoMod, Zip: d.Zip,
			Sum: d.Sum, GoModSum: d.GoModSum,
		}, nil
	}
	detail := d.Error
	if s := strings.TrimSpace(string(res.stderr)); s != "" {
		detail = strings.TrimSpace(detail + "\n" + s)
	}
	if detail == "" {
		detail = string(res.stdout)
	}
	return nil, f.fail(ctx, res, op, path, version, detail)
}

// Versions runs `go list -m -json -versions -retracted path` and returns
// the module's tagged versions in semver order, retracted ones included
// (as a proxy's list does). Pseudo-versions are never listed. A
// repository that exists but has no tags for the module gives an empty
// list and no error.
func (f *Fetcher) Versions(ctx context.Context, path string) ([]string, error) {
	const op = "versions"
	if err := checkArgs(path, "latest"); err != nil {
		return nil, &Error{Op: op, Module: path, Kind: NotFound, Detail: err.Error()}
	}
	list, res := f.listVersions(ctx, path)
	if res.err == nil {
		return list, nil
	}
	return nil, f.fail(ctx, res, op, path, "", string(res.stderr))
}

// listVersions runs the go command for Versions and, on success, keeps
// the list for the failure probe.
func (f *Fetcher) listVersions(ctx context.Context, path string) ([]string, runResult) {
	res := f.run(ctx, "versions", path, "", "list", "-m", "-json", "-versions", "-retracted", "--", path)
	if res.err != nil {
		return nil, res
	}
	var l listJSON
	if err := json.Unmarshal(res.stdout, &l); err != nil {
		res.err = fmt.Errorf("parsing go list output: %w", err)
		return nil, res
	}
	list := l.Versions
	if list == nil {
		list = []string{}
	}
	f.mu.Lock()
	now := time.Now()
	if len(f.versions) > 1000 {
		for p, e := range f.versions {
			if now.Sub(e.at) > versionsTTL {
				delete(f.versions, p)
			}
		}
	}
	f.versions[path] = versionsEntry{list: list, at: now}
	f.mu.Unlock()
	return list, res
}

// Query runs `go list -m -json path@query` and returns the version the
// query resolves to and its time. query may be "latest", a branch name, a
// commit hash prefix, a version prefix ("v1.2") or a canonical version.
func (f *Fetcher) Query(ctx context.Context, path, query string) (string, time.Time, error) {
	const op = "query"
	if err := checkArgs(path, query); err != nil {
		return "", time.Time{}, &Error{Op: op, Module: path, Version: query, Kind: NotFound, Detail: err.Error()}
	}
	res := f.run(ctx, op, path, query, "list", "-m", "-json", "--", path+"@"+query)
	if res.err == nil {
		var l listJSON
		if err := json.Unmarshal(res.stdout, &l); err != nil || l.Version == "" || l.Time == nil {
			return "", time.Time{}, &Error{Op: op, Module: path, Version: query, Kind: Failed,
				Detail: "go list output without version and time: " + f.secrets.tail(res.stdout)}
		}
		return l.Version, l.Time.UTC(), nil
	}
	return "", time.Time{}, f.fail(ctx, res, op, path, query, string(res.stderr))
}

// checkArgs refuses what cannot name a module version, before any process
// is started: an invalid module path, or a version that is empty, could
// be taken for a flag, or holds characters no version or query has.
func checkArgs(path, version string) error {
	if err := module.CheckPath(path); err != nil {
		return err
	}
	if version == "" || strings.HasPrefix(version, "-") ||
		strings.ContainsAny(version, "@ \t\r\n\\:") {
		return fmt.Errorf("invalid version or query %q", version)
	}
	return nil
}

// removeExtracted removes the directory the go command unpacked a
// downloaded zip into, if it lies inside the module cache (and outside
// its cache/ directory). Nothing reads it, so a go process that finds it
// missing later simply unpacks it again.
func (f *Fetcher) removeExtracted(dir string) {
	if dir == "" {
		return
	}
	rel, err := filepath.Rel(f.modCache, dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") || rel == "cache" || strings.HasPrefix(rel, "cache"+string(filepath.Separator)) {
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		f.log.Warn("direct: removing extracted module", "dir", dir, "error", err)
	}
}

// cachedVersions returns the module's version list for the failure probe:
// the last successful list if it is recent, else a fresh one.
func (f *Fetcher) cachedVersions(ctx context.Context, path string) ([]string, error) {
	f.mu.Lock()
	e, ok := f.versions[path]
	f.mu.Unlock()
	if ok && time.Since(e.at) < versionsTTL {
		return e.list, nil
	}
	list, res := f.listVersions(ctx, path)
	return list, res.err
}

// fail turns a failed go process into an *Error, deciding its Kind (see
// [Kind] for the rules).
func (f *Fetcher) fail(ctx context.Context, res runResult, op, path, version, output string) error {
	e := &Error{Op: op, Module: path, Version: version, Detail: f.secrets.tail([]byte(output))}
	switch {
	case ctx.Err() != nil:
		e.err = ctx.Err()
		e.Kind = Failed
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			e.Kind = Timeout
		}
	case res.timedOut:
		e.err = context.DeadlineExceeded
		e.Kind = Timeout
		e.Detail = strings.TrimSpace(fmt.Sprintf("no result within %v; %s", f.timeout, e.Detail))
	default:
		e.Kind = f.classify(ctx, op, path, version)
		if ctx.Err() != nil { // the caller left during the probe
			e.err = ctx.Err()
		}
	}
	f.log.Debug("direct: go command failed", "op", op, "module", path, "version", version, "kind", e.Kind.String())
	return e
}

// classify decides why a go process for path failed when neither the
// caller nor the timeout stopped it.
//
// First it asks for the module's version list. If that works, the
// repository is reachable with the configured credentials, so a tagged
// version absent from the list, a pseudo-version or a query that failed
// does not exist: NotFound; a listed version that failed is Failed. If
// the list cannot be had either, the repository itself is probed over
// HTTP (see prober.repoKind).
func (f *Fetcher) classify(ctx context.Context, op, path, version string) Kind {
	if op != "versions" {
		lctx, cancel := context.WithTimeout(ctx, probeListTimeout)
		list, err := f.cachedVersions(lctx, path)
		cancel()
		if err == nil {
			if semver.IsValid(version) && semver.Canonical(version) == version && !module.IsPseudoVersion(version) {
				for _, v := range list {
					if v == version {
						return Failed
					}
				}
			}
			return NotFound
		}
		if ctx.Err() != nil {
			return Failed
		}
	}
	return f.probe.repoKind(ctx, path)
}

// runResult is what one go process left.
type runResult struct {
	stdout, stderr []byte
	err            error // nil when the process exited with status 0
	timedOut       bool  // stopped by the Fetcher's own timeout
}

// run runs the go command with args, within the concurrency bound and the
// timeout, in an empty working directory and its own process group.
func (f *Fetcher) run(ctx context.Context, op, path, version string, args ...string) runResult {
	select {
	case f.sem <- struct{}{}:
	case <-ctx.Done():
		return runResult{err: ctx.Err()}
	}
	defer func() { <-f.sem }()

	start := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	work, err := os.MkdirTemp(f.workRoot, "go-")
	if err != nil {
		return runResult{err: err}
	}
	defer os.RemoveAll(work)

	stdout := &limitedBuffer{max: 32 << 20}
	stderr := &tailBuffer{max: 64 << 10}
	cmd := exec.CommandContext(runCtx, f.goBin, args...)
	cmd.Dir = work
	cmd.Env = f.env
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	err = f.execute(runCtx, cmd, op, path)
	if err == nil && stdout.truncated {
		err = errors.New("go command output too large")
	}
	res := runResult{stdout: stdout.Bytes(), stderr: stderr.Bytes(), err: err}
	res.timedOut = err != nil && ctx.Err() == nil && errors.Is(runCtx.Err(), context.DeadlineExceeded)
	f.log.Debug("direct: go command", "op", op, "module", path, "version", version,
		"duration", time.Since(start).Round(time.Millisecond), "ok", err == nil)
	return res
}

// execute runs cmd, made with exec.CommandContext(ctx, ...), in its own
// process group. On cancellation or timeout (ctx) the whole group is stopped: the go command and its git,
// git-remote-http and ssh children. SIGTERM first, which git answers by
// removing its lock files (a SIGKILLed git leaves shallow.lock or a ref
// lock behind in a shared repository); stopGroup kills what is still
// there after killGrace, and also what a process that exited normally
// left behind.
func (f *Fetcher) execute(ctx context.Context, cmd *exec.Cmd, op, path string) error {
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = killGrace
	err := cmd.Run()
	if cmd.Process != nil && stopGroup(cmd.Process.Pid) && ctx.Err() == nil {
		f.log.Warn("direct: a process left others behind; stopped them", "op", op, "module", path, "command", filepath.Base(cmd.Path))
	}
	return err
}

// stopGroup ends what is left of process group pgid after its leader,
// the go command, has exited: SIGTERM, up to killGrace to exit, then
// SIGKILL. It reports whether anything was left. While the group has
// members its id cannot be given to another process, so the signals
// reach nothing else.
func stopGroup(pgid int) bool {
	if !groupAlive(pgid) {
		return false
	}
	syscall.Kill(-pgid, syscall.SIGTERM)
	for deadline := time.Now().Add(killGrace); time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		if !groupAlive(pgid) {
			return true
		}
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	return true
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	buf       []byte
	max       int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - len(b.buf); len(p) > room {
		b.buf = append(b.buf, p[:max(room, 0)]...)
		b.truncated = true
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *limitedBuffer) Bytes() []byte { return b.buf }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.max {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) Bytes() []byte {
	if len(b.buf) > b.max {
		return b.buf[len(b.buf)-b.max:]
	}
	return b.buf
}

// envMap indexes KEY=VALUE entries.
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}
