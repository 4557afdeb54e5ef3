package modtest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	modzip "golang.org/x/mod/zip"
)

const sumdbName = "sum.agora.test"

// pseudoVersion is a pseudo-version used by several tests; its commit
// hash is abcdef123456.
const pseudoVersion = "v0.0.0-20240305060708-abcdef123456"

func helloMod(t *testing.T, version, greeting string) *Built {
	return MustBuild(t, Module{
		Path:    "example.com/hello",
		Version: version,
		Files: map[string]string{
			"go.mod":   "module example.com/hello\n\ngo 1.21\n",
			"hello.go": "package hello\n\n// Hello greets.\nfunc Hello() string { return \"" + greeting + "\" }\n",
		},
	})
}

func fixtures(t *testing.T) (v100, v110, old *Built) {
	v100 = helloMod(t, "v1.0.0", "hello")
	v110 = helloMod(t, "v1.1.0", "hello, world")
	old = MustBuild(t, Module{
		Path:    "example.com/old",
		Version: "v2.0.0+incompatible",
		Files:   map[string]string{"old.go": "package old\n\nconst Name = \"old\"\n"},
	})
	return v100, v110, old
}

func goCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// downloadJSON is the part of `go mod download -json` output we check.
type downloadJSON struct {
	Path, Version, Error, Info, GoMod, Zip, Sum, GoModSum string
}

func goDownload(t *testing.T, env []string, query string) (downloadJSON, error) {
	t.Helper()
	out, err := RunGo(goCtx(t), t.TempDir(), env, "mod", "download", "-json", query)
	var d downloadJSON
	if jerr := json.Unmarshal([]byte(out), &d); jerr != nil && err == nil {
		t.Fatalf("parsing go mod download output: %v\n%s", jerr, out)
	}
	if err == nil && d.Error != "" {
		err = errors.New(d.Error)
	}
	return d, err
}

func TestBuild(t *testing.T) {
	v100, _, old := fixtures(t)

	for _, b := range []*Built{v100, old} {
		zf := filepath.Join(t.TempDir(), "m.zip")
		if err := os.WriteFile(zf, b.Zip, 0o666); err != nil {
			t.Fatal(err)
		}
		if _, err := modzip.CheckZip(b.ModuleVersion(), zf); err != nil {
			t.Errorf("%s@%s: CheckZip: %v", b.Path, b.Version, err)
		}
		if !strings.HasPrefix(b.ZipHash, "h1:") || !strings.HasPrefix(b.ModHash, "h1:") {
			t.Errorf("%s@%s: hashes %q %q lack h1: prefix", b.Path, b.Version, b.ZipHash, b.ModHash)
		}
		var info struct {
			Version string
			Time    time.Time
		}
		if err := json.Unmarshal(b.Info, &info); err != nil || info.Version != b.Version || !info.Time.Equal(DefaultTime) {
			t.Errorf("%s@%s: bad info %s (%v)", b.Path, b.Version, b.Info, err)
		}
	}
	if got, want := string(old.Mod), "module example.com/old\n"; got != want {
		t.Errorf("synthesized go.mod = %q, want %q", got, want)
	}
	if got, want := string(v100.Mod), v100.Files["go.mod"]; got != want {
		t.Errorf("go.mod = %q, want %q", got, want)
	}

	p := MustBuild(t, Module{Path: "example.com/p", Version: pseudoVersion})
	if want := time.Date(2024, 3, 5, 6, 7, 8, 0, time.UTC); !p.Time.Equal(want) {
		t.Errorf("pseudo-version time = %v, want %v", p.Time, want)
	}

	if _, err := Build(Module{Path: "example.com/x", Version: "v1.0"}); err == nil {
		t.Errorf("Build accepted non-canonical version")
	}
	if _, err := Build(Module{Path: "example.com/x", Version: "v1.0.0", Files: map[string]string{"../evil": ""}}); err == nil {
		t.Errorf("Build accepted bad file name")
	}
}

// TestGoCommandWithUpstream checks the fixtures against the real go
// command: the proxy bytes, the hashes and the checksum database.
func TestGoCommandWithUpstream(t *testing.T) {
	v100, v110, old := fixtures(t)
	db := NewSumDB(t, sumdbName)
	db.Add(v100)
	db.Add(v110)
	db.Add(old)
	u := NewUpstream(t, v100, v110, old)
	u.ServeSumDB(db)
	env := GoEnv(t, "GOPROXY="+u.URL, "GOSUMDB="+db.VerifierKey)

	for _, b := range []*Built{v110, old} {
		d, err := goDownload(t, env, b.Path+"@"+b.Version)
		if err != nil {
			t.Fatal(err)
		}
		if d.Sum != b.ZipHash || d.GoModSum != b.ModHash {
			t.Errorf("%s@%s: go reports Sum=%s GoModSum=%s, want %s %s", b.Path, b.Version, d.Sum, d.GoModSum, b.ZipHash, b.ModHash)
		}
	}
	// Each go process asks once whether the proxy serves the database.
	if n := u.Count("/sumdb/" + sumdbName + "/supported"); n != 2 {
		t.Errorf("supported requested %d times, want 2", n)
	}
	if n := u.Count("/example.com/hello/@v/v1.1.0.zip"); n != 1 {
		t.Errorf("zip requested %d times, want 1", n)
	}
	if !slices.Contains(db.Requests(), "/lookup/example.com/hello@v1.1.0") {
		t.Errorf("sumdb requests %q lack the lookup", db.Requests())
	}

	out, err := RunGo(goCtx(t), t.TempDir(), env, "list", "-m", "-versions", "example.com/hello")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(out), "example.com/hello v1.0.0 v1.1.0"; got != want {
		t.Errorf("go list -m -versions = %q, want %q", got, want)
	}
}

func TestGoCommandRejectsTampering(t *testing.T) {
	v100, v110, _ := fixtures(t)
	db := NewSumDB(t, sumdbName)
	// The checksum database vouches for v1.1.0's zip hash under v1.0.0.
	db.SetHashes(v100.Path, v100.Version, v110.ZipHash, v100.ModHash)
	u := NewUpstream(t, v100)
	u.ServeSumDB(db)
	env := GoEnv(t, "GOPROXY="+u.URL, "GOSUMDB="+db.VerifierKey)

	_, err := goDownload(t, env, "example.com/hello@v1.0.0")
	if err == nil {
		t.Fatal("go mod download succeeded despite a wrong checksum")
	}
	if msg := err.Error(); !strings.Contains(msg, "SECURITY ERROR") && !strings.Contains(msg, "checksum mismatch") {
		t.Fatalf("unexpected error: %v", err)
	}

	// A module unknown to the database is a 404 from the lookup.
	resp, err := http.Get(db.URL + "/lookup/example.com/nope@v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("lookup of unknown module: status %d, want 404", resp.StatusCode)
	}
}

func TestGoCommandQueries(t *testing.T) {
	p := MustBuild(t, Module{Path: "example.com/Pseudo", Version: pseudoVersion,
		Files: map[string]string{"go.mod": "module example.com/Pseudo\n", "p.go": "package p\n"}})
	u := NewUpstream(t, p)
	u.SetBranch(p.Path, "main", p.Version)
	env := GoEnv(t, "GOPROXY="+u.URL)
	for _, q := range []string{"abcdef1", "main", "latest"} {
		if q == "latest" {
			u.SetLatest(true)
		}
		d, err := goDownload(t, env, p.Path+"@"+q)
		if err != nil {
			t.Fatalf("@%s: %v", q, err)
		}
		if d.Version != p.Version || d.Sum != p.ZipHash {
			t.Errorf("@%s: got %s %s, want %s %s", q, d.Version, d.Sum, p.Version, p.ZipHash)
		}
	}
	if u.Count("/example.com/!pseudo/@v/abcdef1.info") != 1 {
		t.Errorf("requests: %q", u.Requests())
	}
}

func TestWriteTree(t *testing.T) {
	v100, v110, old := fixtures(t)
	dir := t.TempDir()
	if err := WriteTree(dir, v100, old); err != nil {
		t.Fatal(err)
	}
	if err := WriteTree(dir, v110); err != nil {
		t.Fatal(err)
	}
	env := GoEnv(t, "GOPROXY=file://"+filepath.ToSlash(dir), "GOSUMDB=off")
	for _, b := range []*Built{v100, old} {
		d, err := goDownload(t, env, b.Path+"@"+b.Version)
		if err != nil {
			t.Fatal(err)
		}
		if d.Sum != b.ZipHash || d.GoModSum != b.ModHash {
			t.Errorf("%s@%s: go reports %s %s, want %s %s", b.Path, b.Version, d.Sum, d.GoModSum, b.ZipHash, b.ModHash)
		}
	}
	out, err := RunGo(goCtx(t), t.TempDir(), env, "list", "-m", "-versions", "example.com/hello")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(out), "example.com/hello v1.0.0 v1.1.0"; got != want {
		t.Errorf("go list -m -versions = %q, want %q", got, want)
	}
}

func get(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

func TestUpstreamProtocol(t *testing.T) {
	v100, v110, old := fixtures(t)
	pre := helloMod(t, "v1.2.0-rc.1", "soon")
	p := MustBuild(t, Module{Path: "example.com/hello", Version: pseudoVersion})
	u := NewUpstream(t, v100, v110, old, pre, p)

	check := func(method, path string, wantCode int, wantType, wantBody string) http.Header {
		t.Helper()
		code, h, body := get(t, method, u.URL+path)
		if code != wantCode || body != wantBody || (wantType != "" && h.Get("Content-Type") != wantType) {
			t.Errorf("%s %s = %d %q %q, want %d %q %q", method, path, code, h.Get("Content-Type"), body, wantCode, wantType, wantBody)
		}
		return h
	}

	check("GET", "/example.com/hello/@v/list", 200, "text/plain; charset=utf-8", "v1.0.0\nv1.1.0\nv1.2.0-rc.1\n")
	u.SetListPseudo(true)
	check("GET", "/example.com/hello/@v/list", 200, "", pseudoVersion+"\nv1.0.0\nv1.1.0\nv1.2.0-rc.1\n")
	u.SetListPseudo(false)
	check("GET", "/example.com/old/@v/list", 200, "", "v2.0.0+incompatible\n")
	check("GET", "/example.com/old/@v/v2.0.0+incompatible.mod", 200, "text/plain; charset=utf-8", "module example.com/old\n")
	check("GET", "/example.com/hello/@v/v1.0.0.info", 200, "application/json", string(v100.Info))
	check("GET", "/example.com/hello/@v/v1.0.0.zip", 200, "application/zip", string(v100.Zip))
	h := check("HEAD", "/example.com/hello/@v/v1.0.0.zip", 200, "application/zip", "")
	if h.Get("Content-Length") != strconv.Itoa(len(v100.Zip)) {
		t.Errorf("HEAD Content-Length = %q, want %d", h.Get("Content-Length"), len(v100.Zip))
	}
	check("GET", "/example.com/hello/@v/abcdef12.info", 200, "", string(p.Info))
	check("GET", "/example.com/hello/@v/abcdef12.mod", 404, "", "not found: /example.com/hello/@v/abcdef12.mod")
	check("GET", "/example.com/nope/@v/list", 404, "text/plain; charset=utf-8", "not found: /example.com/nope/@v/list")
	check("GET", "/example.com/hello/@v/v9.9.9.info", 404, "", "not found: /example.com/hello/@v/v9.9.9.info")

	check("GET", "/example.com/hello/@latest", 404, "", "not found: /example.com/hello/@latest")
	u.SetLatest(true)
	check("GET", "/example.com/hello/@latest", 200, "application/json", string(v110.Info))
	u.Remove("example.com/hello", "v1.0.0")
	u.Remove("example.com/hello", "v1.1.0")
	check("GET", "/example.com/hello/@latest", 200, "", string(pre.Info))
	u.Remove("example.com/hello", "v1.2.0-rc.1")
	check("GET", "/example.com/hello/@latest", 200, "", string(p.Info))
	check("GET", "/example.com/hello/@v/list", 200, "", "")
	u.Remove("example.com/hello", pseudoVersion)
	u.SetNotFoundStatus(http.StatusGone)
	check("GET", "/example.com/hello/@v/list", 410, "", "not found: /example.com/hello/@v/list")
	u.Add(v100)
	check("GET", "/example.com/hello/@v/list", 200, "", "v1.0.0\n")

	// Case encoding.
	upper := MustBuild(t, Module{Path: "example.com/Upper", Version: "v1.0.0-Beta"})
	u.Add(upper)
	check("GET", "/example.com/!upper/@v/v1.0.0-!beta.info", 200, "", string(upper.Info))
	check("GET", "/example.com/!upper/@v/list", 200, "", "v1.0.0-Beta\n")

	// Fault injection and request accounting.
	u.Handle("/example.com/hello/@v/list", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusBadGateway)
	})
	check("GET", "/example.com/hello/@v/list", 502, "", "boom\n")
	u.Handle("/example.com/hello/@v/list", nil)
	check("GET", "/example.com/hello/@v/list", 200, "", "v1.0.0\n")
	if n := u.Count("/example.com/hello/@v/list"); n != 7 {
		t.Errorf("Count(list) = %d, want 7", n)
	}
	u.Reset()
	if n := len(u.Requests()); n != 0 {
		t.Errorf("after Reset, %d requests logged", n)
	}

	// Checksum database passthrough.
	check("GET", "/sumdb/"+sumdbName+"/supported", 410, "", "not found: /sumdb/"+sumdbName+"/supported")
	db := NewSumDB(t, sumdbName)
	db.Add(v100)
	u.ServeSumDB(db)
	check("GET", "/sumdb/"+sumdbName+"/supported", 200, "", "")
	code, _, body := get(t, "GET", u.URL+"/sumdb/"+sumdbName+"/lookup/example.com/hello@v1.0.0")
	if code != 200 || !strings.Contains(body, v100.GoSum()) {
		t.Errorf("proxied lookup = %d %q", code, body)
	}
	if got := db.Requests(); !slices.Equal(got, []string{"/lookup/example.com/hello@v1.0.0"}) {
		t.Errorf("sumdb requests = %q", got)
	}

	// Going down.
	u.Close()
	if _, err := http.Get(u.URL + "/example.com/hello/@v/list"); err == nil {
		t.Errorf("request succeeded after Close")
	}
	u.Close()
}

func TestSumDBName(t *testing.T) {
	for _, name := range []string{"sum.agora.test", "localhost", "sum.example.com/sub"} {
		if err := checkSumDBName(name); err != nil {
			t.Errorf("%q rejected: %v", name, err)
		}
	}
	for _, name := range []string{"", "a+b", "a b", "x/", "x?y", "u@x", "x#y"} {
		if err := checkSumDBName(name); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
}

func TestGoEnv(t *testing.T) {
	t.Setenv("GOFLAGS", "-mod=vendor")
	t.Setenv("SOMETHING_ELSE", "1")
	env := GoEnv(t, "GOPROXY=http://127.0.0.1:1", "GOFLAGS=-modcacherw -x")
	m := make(map[string]string)
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := m[k]; dup {
			t.Errorf("duplicate %s", k)
		}
		m[k] = v
	}
	if m["GOPROXY"] != "http://127.0.0.1:1" || m["GOFLAGS"] != "-modcacherw -x" || m["GOTOOLCHAIN"] != "local" {
		t.Errorf("env = %q", env)
	}
	if _, ok := m["SOMETHING_ELSE"]; ok {
		t.Errorf("inherited SOMETHING_ELSE")
	}
	out, err := RunGo(goCtx(t), t.TempDir(), env, "env", "GOMODCACHE")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out); got != m["GOMODCACHE"] {
		t.Errorf("go env GOMODCACHE = %q, want %q", got, m["GOMODCACHE"])
	}
	if _, err := RunGo(goCtx(t), t.TempDir(), env, "no-such-command"); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("RunGo error lacks output: %v", err)
	}
}
