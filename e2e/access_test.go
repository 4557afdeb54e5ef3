package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agora-mirror/agora/internal/modtest"
)

// TestAccessControl: with auth = corp.example, a token allowed corp.example
// reads it (and public modules), another token gets 403, no token gets 401;
// the go command works with a netrc file and with GOAUTH; failed attempts
// are rate limited; no token appears in the logs.
func TestAccessControl(t *testing.T) {
	f := newFixture(t)
	secret := f.add(t, modtest.Module{Path: "corp.example/secret", Version: "v1.0.0", Files: helloFiles("corp.example/secret", "secret")})
	certFile, keyFile, tlsClient := modtest.TLSFiles(t)
	dir := t.TempDir()
	a := startAgora(t, dir, nil, append(f.agoraArgs(""), "--auth", "corp.example", "--tls-cert", certFile, "--tls-key", keyFile)...)
	a.URL = "https://" + strings.TrimPrefix(a.URL, "http://")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsClient}}

	corp := strings.TrimSpace(mustAgoraOut(t, "token", "create", "--data-dir", dir, "-name", "corp-ci", "-allow", "corp.example"))
	other := strings.TrimSpace(mustAgoraOut(t, "token", "create", "--data-dir", dir, "-name", "other", "-allow", "example.org/*"))
	if !strings.HasPrefix(corp, "agora_") || corp == other {
		t.Fatalf("tokens %q and %q", corp, other)
	}

	req := func(path string, set func(*http.Request)) (int, http.Header, string) {
		t.Helper()
		r, _ := http.NewRequest(http.MethodGet, a.URL+path, nil)
		if set != nil {
			set(r)
		}
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, resp.Header, b.String()
	}
	basic := func(tok string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth("agora", tok) } }
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	info := "/corp.example/secret/@v/v1.0.0.info"

	code, hdr, body := req(info, nil)
	if code != 401 || !strings.Contains(hdr.Get("WWW-Authenticate"), "Basic") || !strings.Contains(body, "netrc") {
		t.Errorf("no token: %d %v %s", code, hdr.Get("WWW-Authenticate"), body)
	}
	if code, _, body := req(info, basic(other)); code != 403 || !strings.Contains(body, `"other"`) {
		t.Errorf("a token for other modules: %d %s", code, body)
	}
	if code, _, _ := req(info, basic(corp)); code != 200 {
		t.Errorf("the corp token (Basic): %d", code)
	}
	if code, _, _ := req(info, bearer(corp)); code != 200 {
		t.Errorf("the corp token (Bearer): %d", code)
	}
	if code, _, _ := req("/example.com/hello/@v/v1.0.0.info", nil); code != 200 {
		t.Errorf("a public module without a token: %d", code)
	}
	if code, _, _ := req("/sumdb/"+f.DB.Name+"/lookup/corp.example/secret@v1.0.0", nil); code != 401 {
		t.Errorf("checksum database lookup of a protected module without a token: %d", code)
	}

	// The go command, with a netrc file and with a GOAUTH command.
	netrc := filepath.Join(t.TempDir(), "netrc")
	// The go command matches netrc machines against host:port when the
	// URL has a port.
	writeFile(t, filepath.Dir(netrc), "netrc", "machine "+strings.TrimPrefix(a.URL, "https://")+" login agora password "+corp+"\n")
	goEnv := func(extra ...string) []string {
		return modtest.GoEnv(t, append([]string{"GOPROXY=" + a.URL, "GOSUMDB=" + f.DB.VerifierKey, "SSL_CERT_FILE=" + certFile}, extra...)...)
	}
	out := mustGo(t, "", goEnv("NETRC="+netrc), "mod", "download", "-json", "corp.example/secret@v1.0.0", "example.com/hello@v1.0.0")
	if !strings.Contains(out, secret.ZipHash) {
		t.Errorf("go mod download with netrc:\n%s", out)
	}
	if _, _, body := req("/index", nil); strings.Contains(body, "corp.example") || !strings.Contains(body, "example.com/hello") {
		t.Errorf("the index shows a protected module to a client without a token, or hides a public one:\n%s", body)
	}
	if _, _, body := req("/index", basic(corp)); !strings.Contains(body, "corp.example/secret") {
		t.Errorf("the index hides a module from a token allowed it:\n%s", body)
	}
	script := filepath.Join(t.TempDir(), "goauth.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n\\nAuthorization: Bearer %s\\n\\n' '"+a.URL+"' '"+corp+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out = mustGo(t, "", goEnv("GOAUTH="+script), "mod", "download", "-json", "corp.example/secret@v1.0.0")
	if !strings.Contains(out, secret.ZipHash) {
		t.Errorf("go mod download with GOAUTH:\n%s", out)
	}
	if out, err := runGo(t, "", goEnv("GOAUTH=off"), "mod", "download", "corp.example/secret@v1.0.0"); err == nil || !strings.Contains(out, "401") {
		t.Errorf("go mod download without credentials: %v\n%s", err, out)
	}

	// agora status needs a token when access control is on.
	tlsEnv := []string{"SSL_CERT_FILE=" + certFile}
	if out, err := agoraCmd(t, tlsEnv, "status", "-server", a.URL); err == nil || !strings.Contains(out, "401") {
		t.Errorf("agora status without a token: %v\n%s", err, out)
	}
	if out, err := agoraCmd(t, tlsEnv, "status", "-server", a.URL, "-token", corp); err != nil || !strings.Contains(out, "held:") {
		t.Errorf("agora status with a token: %v\n%s", err, out)
	}

	// Brute force: after 10 failures a client is refused for a while,
	// even with a good token.
	for i := range 10 {
		if code, _, _ := req(info, basic("agora_guess"+string(rune('a'+i)))); code != 401 {
			t.Fatalf("wrong token %d: %d, want 401", i, code)
		}
	}
	code, hdr, _ = req(info, basic(corp))
	if code != 429 || hdr.Get("Retry-After") == "" {
		t.Errorf("after 10 failures: %d (Retry-After %q), want 429", code, hdr.Get("Retry-After"))
	}

	for _, tok := range []string{corp, other} {
		if strings.Contains(a.logs.String(), tok) {
			t.Errorf("a token appears in the logs")
		}
	}
	list := mustAgoraOut(t, "token", "list", "--data-dir", dir)
	if strings.Contains(list, corp) || !strings.Contains(list, "corp-ci\tcorp.example") {
		t.Errorf("token list:\n%s", list)
	}
}

// mustAgoraOut runs an agora subcommand and returns its standard output.
func mustAgoraOut(t *testing.T, args ...string) string {
	t.Helper()
	cmd := execAgora(t, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("agora %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
