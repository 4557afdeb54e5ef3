package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/agora-mirror/agora/internal/modtest"
)

type downloaded struct {
	Path, Version, Sum, GoModSum, Zip, Error string
}

func parseDownload(t *testing.T, out string) []downloaded {
	t.Helper()
	var res []downloaded
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var d downloaded
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("parsing go mod download -json output: %v\n%s", err, out)
		}
		res = append(res, d)
	}
	return res
}

func TestGoModDownloadVerifiesThroughAgora(t *testing.T) {
	f := newFixture(t)
	a := startAgora(t, "", nil, f.agoraArgs("")...)
	env := f.goEnv(t, a)
	out := mustGo(t, "", env, "mod", "download", "-json",
		"example.com/hello@v1.1.0", "example.com/old@v2.0.0+incompatible", "github.com/Upper/Case@v1.0.0",
		"example.com/hello/v2@v2.0.0", "example.com/hello@v1.1.1-0.20240301000000-abcdef123456")
	for _, d := range parseDownload(t, out) {
		b := f.mod(t, d.Path+"@"+d.Version)
		if d.Error != "" || d.Sum != b.ZipHash || d.GoModSum != b.ModHash {
			t.Errorf("%s@%s: error %q, sums %s %s; want %s %s", d.Path, d.Version, d.Error, d.Sum, d.GoModSum, b.ZipHash, b.ModHash)
		}
	}
	// The client's checksum database requests went through Agora.
	if !strings.Contains(a.logs.String(), "/sumdb/"+dbName+"/lookup/example.com/hello@v1.1.0") {
		t.Errorf("agora saw no checksum database lookup from the client")
	}
}

func TestGoGetTidyAndBuildThroughAgora(t *testing.T) {
	f := newFixture(t)
	a := startAgora(t, "", nil, f.agoraArgs("")...)
	env := f.goEnv(t, a)
	dir := t.TempDir()
	mustGo(t, dir, env, "mod", "init", "example.com/app")
	writeFile(t, dir, "main.go", `package main

import (
	"fmt"

	"example.com/hello"
	"github.com/Upper/Case"
)

func main() { fmt.Println(hello.Hello(), Case.Hello()) }
`)
	mustGo(t, dir, env, "get", "example.com/hello@v1.1.0")
	mustGo(t, dir, env, "mod", "tidy")
	mustGo(t, dir, env, "build", "-o", "app", ".")
	gosum := readFile(t, dir, "go.sum")
	for _, pv := range []string{"example.com/hello@v1.1.0", "github.com/Upper/Case@v1.0.0"} {
		b := f.mod(t, pv)
		if !strings.Contains(gosum, b.GoSum()) {
			t.Errorf("go.sum lacks %s lines:\n%s", pv, gosum)
		}
	}
}

func TestVersionListNeverHasPseudoVersions(t *testing.T) {
	f := newFixture(t)
	f.Up.SetListPseudo(true) // as some real upstreams do
	a := startAgora(t, "", nil, f.agoraArgs("")...)
	env := f.goEnv(t, a)
	out := mustGo(t, "", env, "list", "-m", "-versions", "example.com/hello")
	if got, want := strings.TrimSpace(out), "example.com/hello v1.0.0 v1.1.0 v1.2.0-pre.1"; got != want {
		t.Errorf("go list -m -versions = %q, want %q", got, want)
	}
	_, _, body := get(t, a.URL+"/example.com/hello/@v/list")
	if strings.Contains(body, "-0.2024") {
		t.Errorf("list has a pseudo-version:\n%s", body)
	}
}

func TestLatestWithoutUpstreamLatest(t *testing.T) {
	f := newFixture(t) // the upstream answers 404 for every @latest
	f.Up.SetListPseudo(true)
	a := startAgora(t, "", nil, f.agoraArgs("")...)
	env := f.goEnv(t, a)
	cases := []struct{ module, want string }{
		{"example.com/hello", "v1.1.0"}, // the highest release, not the pre-release
		{"example.com/onlypseudo", "v0.0.0-20240102030405-0123456789ab"},
	}
	for _, c := range cases {
		code, _, body := get(t, a.URL+"/"+c.module+"/@latest")
		if code != 200 || !strings.Contains(body, `"Version":"`+c.want+`"`) {
			t.Errorf("%s/@latest = %d %s, want version %s", c.module, code, body, c.want)
		}
		out := mustGo(t, "", env, "list", "-m", c.module+"@latest")
		if got := strings.TrimSpace(out); got != c.module+" "+c.want {
			t.Errorf("go list -m %s@latest = %q, want version %s", c.module, got, c.want)
		}
	}
}

func TestQueriesResolveToCanonicalVersions(t *testing.T) {
	f := newFixture(t)
	f.Up.SetBranch("example.com/hello", "main", "v1.1.1-0.20240301000000-abcdef123456")
	a := startAgora(t, "", nil, f.agoraArgs("")...)
	for _, q := range []string{"main", "abcdef1"} {
		code, hdr, body := get(t, a.URL+"/example.com/hello/@v/"+q+".info")
		if code != 200 || !strings.Contains(body, "v1.1.1-0.20240301000000-abcdef123456") {
			t.Errorf("query %s: %d %s", q, code, body)
		}
		if cc := hdr.Get("Cache-Control"); strings.Contains(cc, "immutable") {
			t.Errorf("query %s: Cache-Control %q marks a moving answer immutable", q, cc)
		}
	}
	env := f.goEnv(t, a)
	dir := t.TempDir()
	mustGo(t, dir, env, "mod", "init", "example.com/app")
	mustGo(t, dir, env, "get", "example.com/hello@main")
	if gomod := readFile(t, dir, "go.mod"); !strings.Contains(gomod, "example.com/hello v1.1.1-0.20240301000000-abcdef123456") {
		t.Errorf("go get @main wrote:\n%s", gomod)
	}
}

func TestToolchainModuleServed(t *testing.T) {
	f := newFixture(t)
	tc := f.add(t, modtest.Module{Path: "golang.org/toolchain", Version: "v0.0.1-go1.99.0.linux-amd64",
		Files: map[string]string{"bin/go": "#!/bin/sh\necho fake go\n", "VERSION": "go1.99.0\n"}})
	a := startAgora(t, "", nil, f.agoraArgs("")...)
	code, _, body := get(t, a.URL+"/golang.org/toolchain/@v/v0.0.1-go1.99.0.linux-amd64.zip")
	if code != 200 || body != string(tc.Zip) {
		t.Errorf("toolchain zip = %d, %d bytes; want the zip", code, len(body))
	}
	out := mustGo(t, "", f.goEnv(t, a), "mod", "download", "-json", "golang.org/toolchain@v0.0.1-go1.99.0.linux-amd64")
	if d := parseDownload(t, out)[0]; d.Sum != tc.ZipHash {
		t.Errorf("toolchain download: %+v", d)
	}
}

func TestOffServesOnlyWhatIsHeld(t *testing.T) {
	f := newFixture(t)
	data := t.TempDir()
	a := startAgora(t, data, nil, f.agoraArgs("")...)
	mustGo(t, "", f.goEnv(t, a), "mod", "download", "example.com/hello@v1.0.0")
	a.stop(t)
	a = startAgora(t, data, nil, "--upstream", "off", "--sumdb", f.DB.VerifierKey)
	f.Up.Reset()
	out := mustGo(t, "", f.goEnv(t, a), "mod", "download", "-json", "example.com/hello@v1.0.0")
	if d := parseDownload(t, out)[0]; d.Sum != f.mod(t, "example.com/hello@v1.0.0").ZipHash {
		t.Errorf("held version with upstream off: %+v", d)
	}
	if code, _, body := get(t, a.URL+"/example.com/hello/@v/list"); code != 200 || body != "v1.0.0\n" {
		t.Errorf("list with upstream off = %d %q, want the held version", code, body)
	}
	if code, _, body := get(t, a.URL+"/example.com/hello/@v/v1.1.0.info"); code != 404 || !strings.Contains(body, "off") {
		t.Errorf("version not held, upstream off = %d %q, want 404 saying fetching is off", code, body)
	}
	if n := len(f.Up.Requests()); n != 0 {
		t.Errorf("upstream asked %d times with upstream off: %v", n, f.Up.Requests())
	}
}
