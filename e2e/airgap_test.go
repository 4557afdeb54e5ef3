package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agora-mirror/agora/internal/bundle"
	"github.com/agora-mirror/agora/internal/modtest"
)

// agoraCmd runs an agora subcommand to completion and returns its output.
func agoraCmd(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := execAgora(t, args...)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// execAgora returns the command for an agora subcommand, with a clean
// environment.
func execAgora(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(agoraBin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	return cmd
}

func mustAgora(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, err := agoraCmd(t, env, args...)
	if err != nil {
		t.Fatalf("agora %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// project writes a main module that imports the given fixture modules
// and returns its directory.
func project(t *testing.T, requires map[string]string, imports ...string) string {
	t.Helper()
	dir := t.TempDir()
	var gomod strings.Builder
	gomod.WriteString("module example.com/app\n\ngo 1.21\n\nrequire (\n")
	for p, v := range requires {
		gomod.WriteString("\t" + p + " " + v + "\n")
	}
	gomod.WriteString(")\n")
	writeFile(t, dir, "go.mod", gomod.String())
	var src strings.Builder
	src.WriteString("package main\n\nimport (\n\t\"fmt\"\n")
	for i, imp := range imports {
		src.WriteString("\tm" + string(rune('a'+i)) + " \"" + imp + "\"\n")
	}
	src.WriteString(")\n\nfunc main() {\n")
	for i := range imports {
		src.WriteString("\tfmt.Println(m" + string(rune('a'+i)) + ".Hello())\n")
	}
	src.WriteString("}\n")
	writeFile(t, dir, "main.go", src.String())
	return dir
}

// rewriteBundle copies a bundle, passing each entry through edit (which
// returns the new content, or nil to drop the entry).
func rewriteBundle(t *testing.T, src, dst string, edit func(name string, data []byte) []byte) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if data = edit(hdr.Name, data); data == nil {
			continue
		}
		hdr.Size = int64(len(data))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	if err := os.WriteFile(dst, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// editManifest returns a bundle manifest changed by edit.
func editManifest(t *testing.T, data []byte, edit func(*bundle.Manifest)) []byte {
	t.Helper()
	var m bundle.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// appendTarEntry adds an entry at the end of a tar file.
func appendTarEntry(t *testing.T, file, name string, data []byte) {
	t.Helper()
	in, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Drop the end-of-archive blocks, add the entry, close again.
	var out bytes.Buffer
	tr := tar.NewReader(bytes.NewReader(in))
	tw := tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		d, _ := io.ReadAll(tr)
		tw.WriteHeader(hdr)
		tw.Write(d)
	}
	tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))})
	tw.Write(data)
	tw.Close()
	os.WriteFile(file, out.Bytes(), 0o644)
}

// snapshot lists every file under dir with its size, to show that a
// failed import changed nothing.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(rel, ".tmp") {
			return nil
		}
		info, _ := d.Info()
		out = append(out, fmt.Sprintf("%s %d", rel, info.Size()))
		return nil
	})
	slices.Sort(out)
	return out
}

// TestAirGap: a project's module graph is prefetched into an online Agora,
// exported, and imported into an offline Agora with no upstream at all,
// from which the go command downloads, builds and verifies the project with
// the test checksum database verified through the offline Agora.
func TestAirGap(t *testing.T) {
	f := newFixture(t)
	// A graph: the project needs example.com/top, which needs
	// example.com/dep.
	f.add(t, modtest.Module{Path: "example.com/dep", Version: "v1.0.0", Files: helloFiles("example.com/dep", "dep")})
	f.add(t, modtest.Module{Path: "example.com/top", Version: "v1.2.0", Files: map[string]string{
		"go.mod": "module example.com/top\n\ngo 1.21\n\nrequire example.com/dep v1.0.0\n",
		"top.go": "// Package top greets through dep.\npackage top\n\nimport \"example.com/dep\"\n\n// Hello greets.\nfunc Hello() string { return \"top \" + dep.Hello() }\n",
	}})
	requires := map[string]string{"example.com/top": "v1.2.0", "example.com/hello": "v1.1.0"}
	imports := []string{"example.com/top", "example.com/hello"}
	online := startAgora(t, "", nil, f.agoraArgs("")...)
	app := project(t, requires, imports...)

	// Against the running server.
	out := mustAgora(t, f.goEnv(t, online), "prefetch", "--server", online.URL, filepath.Join(app, "go.mod"))
	t.Logf("prefetch:\n%s", out)
	if !strings.Contains(out, "3 module versions: 3 fetched") {
		t.Errorf("prefetch summary:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(app, "go.sum")); !os.IsNotExist(err) {
		t.Errorf("prefetch wrote the project's go.sum (%v)", err)
	}
	online.stop(t)
	// Directly on the store, with a workspace (a directory holding a
	// go.work) and a list file: the graph is held; one more version is
	// fetched.
	ws := t.TempDir()
	writeFile(t, ws, "go.work", "go 1.21\n\nuse "+app+"\n")
	list := filepath.Join(t.TempDir(), "more.txt")
	writeFile(t, filepath.Dir(list), "more.txt", "# extra\ngithub.com/Upper/Case@v1.0.0\n")
	out = mustAgora(t, f.goEnv(t, online), append([]string{"prefetch", "--data-dir", online.DataDir}, append(f.agoraArgs(""), filepath.Join(ws, "go.work"), list)...)...)
	if !strings.Contains(out, "4 module versions: 1 fetched") || !strings.Contains(out, "3 already present") {
		t.Errorf("prefetch on the store:\n%s", out)
	}

	bundleFile := filepath.Join(t.TempDir(), "modules.agora")
	out = mustAgora(t, nil, "export", "--data-dir", online.DataDir, "--sumdb", f.DB.VerifierKey, "-o", bundleFile,
		"-since", "2000-01-01T00:00:00Z")
	t.Logf("export: %s", out)

	offDir := t.TempDir()
	out = mustAgora(t, nil, "import", "--data-dir", offDir, "--sumdb", f.DB.VerifierKey, bundleFile)
	if !strings.Contains(out, "4 versions added") {
		t.Errorf("import: %s", out)
	}
	// The online world is gone: only the offline Agora remains.
	f.Up.Close()
	offline := startAgora(t, offDir, nil, "--upstream", "off", "--offline", "true", "--sumdb", f.DB.VerifierKey)

	env := f.goEnv(t, offline, "GOFLAGS=-mod=mod")
	fresh := project(t, requires, imports...)
	mustGo(t, fresh, env, "mod", "download", "all")
	mustGo(t, fresh, env, "build", "-o", filepath.Join(t.TempDir(), "app"), ".")
	if out := mustGo(t, fresh, env, "mod", "verify"); !strings.Contains(out, "all modules verified") {
		t.Errorf("go mod verify: %s", out)
	}
	sum := readFile(t, fresh, "go.sum")
	for _, pv := range []string{"example.com/hello@v1.1.0", "example.com/top@v1.2.0", "example.com/dep@v1.0.0"} {
		b := f.mod(t, pv)
		if !strings.Contains(sum, b.Path+" "+b.Version+" "+b.ZipHash) {
			t.Errorf("go.sum lacks %s's hash:\n%s", pv, sum)
		}
	}
	// What the bundle lacks is a 404, not an attempt to go out; the
	// Disable-Module-Fetch header does the same per request online.
	code, _, body := get(t, offline.URL+"/example.com/hello/@v/v1.0.0.info")
	if code != 404 || !strings.Contains(body, "offline") {
		t.Errorf("a version not imported: %d %s", code, body)
	}
	code, _, body = get(t, offline.URL+"/example.com/hello/@v/list")
	if code != 200 || body != "v1.1.0\n" {
		t.Errorf("offline list = %d %q, want only the imported version", code, body)
	}
	if code, _, body := get(t, offline.URL+"/sumdb/"+f.DB.Name+"/latest"); code != 200 || !strings.Contains(body, f.DB.Name) {
		t.Errorf("offline sumdb latest = %d %q", code, body)
	}
}

// TestDisableModuleFetch: the header makes an online Agora answer from what
// it holds only.
func TestDisableModuleFetch(t *testing.T) {
	f := newFixture(t)
	a := startAgora(t, "", nil, f.agoraArgs("")...)
	hdr := http.Header{"Disable-Module-Fetch": {"true"}}
	if code, _, body := do(t, http.MethodGet, a.URL+"/example.com/hello/@v/v1.0.0.info", hdr); code != 404 || !strings.Contains(body, "Disable-Module-Fetch") {
		t.Errorf("not held, with the header: %d %s", code, body)
	}
	if n := len(f.Up.Requests()); n != 0 {
		t.Errorf("the upstream was asked %d times", n)
	}
	if code, _, _ := get(t, a.URL+"/example.com/hello/@v/v1.0.0.info"); code != 200 {
		t.Fatalf("without the header: %d", code)
	}
	if code, _, _ := do(t, http.MethodGet, a.URL+"/example.com/hello/@v/v1.0.0.info", hdr); code != 200 {
		t.Errorf("held, with the header: %d", code)
	}
}

// TestImportRejectsBadBundles: a flipped byte in a zip, a forged hash and a
// truncated bundle are each refused whole, and the store is unchanged.
func TestImportRejectsBadBundles(t *testing.T) {
	f := newFixture(t)
	online := startAgora(t, "", nil, f.agoraArgs("")...)
	mustGo(t, "", f.goEnv(t, online), "mod", "download", "example.com/hello@v1.1.0", "example.com/hello/v2@v2.0.0")
	good := filepath.Join(t.TempDir(), "good.agora")
	mustAgora(t, nil, "export", "--data-dir", online.DataDir, "--sumdb", f.DB.VerifierKey, "-o", good,
		"example.com/hello@v1.1.0", "example.com/hello/v2@v2.0.0")

	other := modtest.MustBuild(t, modtest.Module{Path: "example.com/hello", Version: "v1.1.0",
		Files: helloFiles("example.com/hello", "forged")})
	dir := t.TempDir()
	bad := map[string]func(string) string{
		"flipped byte in a zip": func(name string) string {
			rewriteBundle(t, good, name, func(n string, data []byte) []byte {
				if strings.HasSuffix(n, "v2.0.0.zip") {
					data[len(data)/2] ^= 0x01
				}
				return data
			})
			return name
		},
		"forged hash": func(name string) string {
			// Another zip for v1.1.0, with a manifest that agrees
			// with it: only the checksum database proof can tell.
			rewriteBundle(t, good, name, func(n string, data []byte) []byte {
				switch {
				case n == bundle.ManifestName:
					data = editManifest(t, data, func(m *bundle.Manifest) {
						for i := range m.Versions {
							if m.Versions[i].Version == "v1.1.0" {
								m.Versions[i].ZipHash = other.ZipHash
							}
						}
					})
				case strings.HasSuffix(n, "hello/@v/v1.1.0.zip"):
					data = other.Zip
				}
				return data
			})
			return name
		},
		"public module marked pinned": func(name string) string {
			// Without proofs, and claiming none are needed: a
			// mirror with a checksum database must refuse it.
			rewriteBundle(t, good, name, func(n string, data []byte) []byte {
				switch {
				case n == bundle.ManifestName:
					data = editManifest(t, data, func(m *bundle.Manifest) {
						for i := range m.Versions {
							m.Versions[i].Verification = "pinned"
						}
						m.SumDB, m.TreeHead, m.SumDBFiles = "", "", nil
					})
				case strings.HasPrefix(n, "sumdb/"):
					return nil
				}
				return data
			})
			return name
		},
		"unproven checksum database file": func(name string) string {
			extra := "sumdb/" + f.DB.Name + "/tile/8/0/007"
			rewriteBundle(t, good, name, func(n string, data []byte) []byte {
				if n == bundle.ManifestName {
					data = editManifest(t, data, func(m *bundle.Manifest) { m.SumDBFiles = append(m.SumDBFiles, extra) })
				}
				return data
			})
			appendTarEntry(t, name, extra, bytes.Repeat([]byte{0xAA}, 8192))
			return name
		},
		"truncated": func(name string) string {
			data, err := os.ReadFile(good)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(name, data[:len(data)*2/3], 0o644)
			return name
		},
	}
	offDir := t.TempDir()
	args := []string{"--data-dir", offDir, "--sumdb", f.DB.VerifierKey}
	mustAgora(t, nil, "verify", "--data-dir", offDir, "--sumdb", f.DB.VerifierKey) // creates the empty store
	before := snapshot(t, offDir)
	for name, mk := range bad {
		t.Run(name, func(t *testing.T) {
			file := mk(filepath.Join(dir, strings.ReplaceAll(name, " ", "-")))
			out, err := agoraCmd(t, nil, append([]string{"import"}, append(args, file)...)...)
			if err == nil || !strings.Contains(out, "nothing was imported") {
				t.Fatalf("import of a bad bundle: %v\n%s", err, out)
			}
			t.Logf("refused: %s", out)
			if after := snapshot(t, offDir); !slices.Equal(before, after) {
				t.Errorf("the store changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
	// The good one still imports.
	if out := mustAgora(t, nil, append([]string{"import"}, append(args, good)...)...); !strings.Contains(out, "2 versions added") {
		t.Errorf("import of the good bundle: %s", out)
	}
}

// TestVerifyQuarantine: agora verify finds a corrupted stored zip and a
// missing go.mod; after quarantine, both versions are fetched again and
// pass.
func TestVerifyQuarantine(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	args := append([]string{"--data-dir", dir}, f.agoraArgs("")...)
	a := startAgora(t, dir, nil, f.agoraArgs("")...)
	mustGo(t, "", f.goEnv(t, a), "mod", "download", "example.com/hello@v1.1.0", "example.com/hello/v2@v2.0.0", "github.com/Upper/Case@v1.0.0")
	a.stop(t)
	if out := mustAgora(t, nil, append([]string{"verify"}, args...)...); !strings.Contains(out, "verified 3 versions: 3 ok") {
		t.Fatalf("verify of a good store: %s", out)
	}

	zipFile := filepath.Join(dir, "mod/example.com/hello/@v/v1.1.0.zip")
	data, err := os.ReadFile(zipFile)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	os.WriteFile(zipFile, data, 0o644)
	if err := os.Remove(filepath.Join(dir, "mod/example.com/hello/v2/@v/v2.0.0.mod")); err != nil {
		t.Fatal(err)
	}

	out, err := agoraCmd(t, nil, append([]string{"verify"}, args...)...)
	if err == nil || !strings.Contains(out, "corrupt example.com/hello@v1.1.0") || !strings.Contains(out, "missing example.com/hello/v2@v2.0.0") ||
		!strings.Contains(out, "1 ok, 2 with problems") {
		t.Fatalf("verify of a damaged store: %v\n%s", err, out)
	}
	out, _ = agoraCmd(t, nil, append([]string{"verify", "-quarantine"}, args...)...)
	if strings.Count(out, "quarantined") != 2 {
		t.Fatalf("verify -quarantine: %s", out)
	}
	if _, err := os.Stat(zipFile); !os.IsNotExist(err) {
		t.Errorf("the corrupt zip is still in place: %v", err)
	}

	f.Up.Reset()
	a = startAgora(t, dir, nil, f.agoraArgs("")...)
	out = mustGo(t, "", f.goEnv(t, a), "mod", "download", "-json", "example.com/hello@v1.1.0", "example.com/hello/v2@v2.0.0")
	if !strings.Contains(out, f.mod(t, "example.com/hello@v1.1.0").ZipHash) {
		t.Errorf("download after quarantine:\n%s", out)
	}
	for _, p := range []string{"/example.com/hello/@v/v1.1.0.zip", "/example.com/hello/v2/@v/v2.0.0.mod"} {
		if n := f.Up.Count(p); n != 1 {
			t.Errorf("upstream saw %d requests for %s after quarantine, want 1 (fetched again)", n, p)
		}
	}
	a.stop(t)
	if out := mustAgora(t, nil, append([]string{"verify"}, args...)...); !strings.Contains(out, "verified 3 versions: 3 ok") {
		t.Errorf("verify after the refetch: %s", out)
	}
}

// TestPrune: a dry run lists unused versions and changes nothing; -apply
// removes them, except what a listed go.sum needs; the index keeps them.
func TestPrune(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	a := startAgora(t, dir, nil, f.agoraArgs("")...)
	mustGo(t, "", f.goEnv(t, a), "mod", "download", "example.com/hello@v1.0.0", "example.com/hello@v1.1.0", "example.com/hello/v2@v2.0.0")
	a.stop(t)
	args := []string{"--data-dir", dir, "--sumdb", f.DB.VerifierKey, "-unused-for", "1ns"}
	before := snapshot(t, dir)
	out := mustAgora(t, nil, append([]string{"prune"}, args...)...)
	if strings.Count(out, "would remove example.com/") != 3 {
		t.Errorf("dry run: %s", out)
	}
	if after := snapshot(t, dir); !slices.Equal(before, after) {
		t.Errorf("a dry run changed the store")
	}
	gosum := filepath.Join(t.TempDir(), "go.sum")
	b := f.mod(t, "example.com/hello@v1.1.0")
	writeFile(t, filepath.Dir(gosum), "go.sum", b.Path+" "+b.Version+" "+b.ZipHash+"\n"+b.Path+" "+b.Version+"/go.mod "+b.ModHash+"\n")
	out = mustAgora(t, nil, append([]string{"prune", "-apply", "-keep", gosum}, args...)...)
	if strings.Count(out, "removed example.com/") != 2 || !strings.Contains(out, "kept 1") {
		t.Errorf("prune -apply: %s", out)
	}
	for _, gone := range []string{"mod/example.com/hello/@v/v1.0.0.zip", "mod/example.com/hello/v2/@v/v2.0.0.zip"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s: still there after prune (%v)", gone, err)
		}
	}
	off := startAgora(t, dir, nil, "--upstream", "off", "--sumdb", f.DB.VerifierKey)
	if code, _, body := get(t, off.URL+"/example.com/hello/@v/list"); code != 200 || body != "v1.1.0\n" {
		t.Errorf("list after prune = %d %q, want only the kept version", code, body)
	}
	if _, _, body := get(t, off.URL+"/index"); strings.Count(body, "\n") != 3 {
		t.Errorf("the index after prune lost entries:\n%s", body)
	}
}
