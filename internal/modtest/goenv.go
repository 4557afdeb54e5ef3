package modtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	realCacheOnce sync.Once
	realCache     string
)

// realGOCACHE returns the build cache of the go command as configured
// outside the test, or "" if there is none.
func realGOCACHE() string {
	realCacheOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOCACHE").Output()
		if err != nil {
			return
		}
		c := strings.TrimSpace(string(out))
		if c != "off" && filepath.IsAbs(c) {
			realCache = c
		}
	})
	return realCache
}

// GoEnv returns a clean environment for running the real go command in a
// test. HOME, GOPATH and GOMODCACHE (GOPATH/pkg/mod) live in a fresh
// t.TempDir(); GOCACHE is the real build cache (from `go env GOCACHE`)
// so builds stay fast, or a temporary one if there is none. It also sets
// GOFLAGS=-modcacherw (so the temporary module cache can be removed),
// GOTOOLCHAIN=local, empty GONOSUMDB, GOPRIVATE, GONOPROXY and
// GOINSECURE, GIT_TERMINAL_PROMPT=0, GIT_CONFIG_NOSYSTEM=1, and PATH from
// the current process. To keep tests off the network by default it also
// sets GOPROXY=off and GOSUMDB=off; pass the real values in extra.
//
// extra holds KEY=VALUE entries that are added last and override the
// defaults. Nothing else is inherited from os.Environ.
func GoEnv(t testing.TB, extra ...string) []string {
	t.Helper()
	tmp := t.TempDir()
	home := filepath.Join(tmp, "home")
	gopath := filepath.Join(tmp, "gopath")
	for _, d := range []string{home, gopath} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatalf("modtest.GoEnv: %v", err)
		}
	}
	// Telemetry off: otherwise the go command starts a child process
	// that outlives it and writes under HOME while the test cleans up.
	modeDir := filepath.Join(home, ".config", "go", "telemetry")
	if err := os.MkdirAll(modeDir, 0o777); err != nil {
		t.Fatalf("modtest.GoEnv: %v", err)
	}
	if err := os.WriteFile(filepath.Join(modeDir, "mode"), []byte("off"), 0o666); err != nil {
		t.Fatalf("modtest.GoEnv: %v", err)
	}
	gocache := realGOCACHE()
	if gocache == "" {
		gocache = filepath.Join(tmp, "gocache")
	}
	env := []string{
		"HOME=" + home,
		"GOPATH=" + gopath,
		"GOMODCACHE=" + filepath.Join(gopath, "pkg", "mod"),
		"GOCACHE=" + gocache,
		"GOFLAGS=-modcacherw",
		"GOTOOLCHAIN=local",
		"GOPROXY=off",
		"GOSUMDB=off",
		"GONOSUMDB=",
		"GOPRIVATE=",
		"GONOPROXY=",
		"GOINSECURE=",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"PATH=" + os.Getenv("PATH"),
	}
	return mergeEnv(env, extra)
}

// mergeEnv appends extra to env; a later entry replaces an earlier one
// with the same key, keeping the earlier one's position.
func mergeEnv(env, extra []string) []string {
	out := make([]string, 0, len(env)+len(extra))
	index := make(map[string]int)
	for _, kv := range append(append([]string(nil), env...), extra...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// RunGo runs `go args...` in dir with exactly the environment env and
// returns its combined stdout and stderr. If the command fails, the error
// names the command and includes the output.
func RunGo(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
