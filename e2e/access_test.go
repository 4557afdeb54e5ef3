package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	if code, hdr, _ := req(info, basic(corp)); code != 200 || !strings.HasPrefix(hdr.Get("Cache-Control"), "private") {
		t.Errorf("the corp token (Basic): %d, Cache-Control %q (a protected answer must be private)", code, hdr.Get("Cache-Control"))
	}
	if code, _, _ := req(info, bearer(corp)); code != 200 {
		t.Errorf("the corp token (Bearer): %d", code)
	}
	if code, hdr, _ := req("/example.com/hello/@v/v1.0.0.info", nil); code != 200 || !strings.HasPrefix(hdr.Get("Cache-Control"), "public") {
		t.Errorf("a public module without a token: %d, Cache-Control %q", code, hdr.Get("Cache-Control"))
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

	// The catalog never names a protected module to a client without a
	// token, not even as the next page's cursor.
	for _, q := range []string{"/catalog?limit=1", "/catalog?limit=1&after=corp.example", "/catalog?q=corp"} {
		if _, _, body := req(q, nil); strings.Contains(body, "corp.example") {
			t.Errorf("%s without a token names a protected module:\n%s", q, body)
		}
	}

	// agora status needs a token that may read everything.
	ops := strings.TrimSpace(mustAgoraOut(t, "token", "create", "--data-dir", dir, "-name", "ops", "-allow", "*"))
	tlsEnv := []string{"SSL_CERT_FILE=" + certFile}
	if out, err := agoraCmd(t, tlsEnv, "status", "-server", a.URL); err == nil || !strings.Contains(out, "401") {
		t.Errorf("agora status without a token: %v\n%s", err, out)
	}
	if out, err := agoraCmd(t, tlsEnv, "status", "-server", a.URL, "-token", corp); err == nil || !strings.Contains(out, "403") {
		t.Errorf("agora status with a token for some modules only: %v\n%s", err, out)
	}
	if out, err := agoraCmd(t, tlsEnv, "status", "-server", a.URL, "-token", ops); err != nil || !strings.Contains(out, "held:") {
		t.Errorf("agora status with an operator's token: %v\n%s", err, out)
	}

	// Brute force: after 10 failures the address is refused for a while,
	// for any token not seen valid lately (a guesser cannot name one);
	// clients whose tokens were seen valid (behind the same proxy) go on.
	late := strings.TrimSpace(mustAgoraOut(t, "token", "create", "--data-dir", dir, "-name", "late", "-allow", "example.org/*, corp.example"))
	for i := range 10 {
		if code, _, _ := req(info, basic("agora_guess"+string(rune('a'+i)))); code != 401 {
			t.Fatalf("wrong token %d: %d, want 401", i, code)
		}
	}
	code, hdr, _ = req(info, basic("agora_guess_more"))
	if code != 429 || hdr.Get("Retry-After") == "" {
		t.Errorf("a wrong token after 10 failures: %d (Retry-After %q), want 429", code, hdr.Get("Retry-After"))
	}
	if code, _, _ := req(info, basic(late)); code != 429 {
		t.Errorf("a token never seen valid, after 10 failures: %d, want 429", code)
	}
	if code, _, _ := req(info, basic(corp)); code != 200 {
		t.Errorf("a token seen valid before, after 10 failures from the address: %d, want 200", code)
	}

	for _, tok := range []string{corp, other, ops, late} {
		if strings.Contains(a.logs.String(), tok) {
			t.Errorf("a token appears in the logs")
		}
	}
	list := mustAgoraOut(t, "token", "list", "--data-dir", dir)
	if !strings.Contains(list, "late\texample.org/*,corp.example\t") {
		t.Errorf("token patterns are not stored trimmed:\n%s", list)
	}
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

// TestClientsBehindATrustedProxy: with Agora behind a proxy listed in
// trusted_proxies, one client's failed authentications block that client
// (the one X-Forwarded-For names), not the others behind the proxy, and
// request logs name the clients.
func TestClientsBehindATrustedProxy(t *testing.T) {
	f := newFixture(t)
	f.add(t, modtest.Module{Path: "corp.example/secret", Version: "v1.0.0", Files: helloFiles("corp.example/secret", "secret")})
	a := startAgora(t, "", nil, append(f.agoraArgs(""), "--auth", "corp.example", "--log-client-addr=true", "--trusted-proxies", "127.0.0.1")...)
	const info = "/corp.example/secret/@v/v1.0.0.info"
	wrong := func(client string) int {
		h := http.Header{"X-Forwarded-For": {client}}
		h.Set("Authorization", "Bearer agora_guess")
		code, _, _ := do(t, http.MethodGet, a.URL+info, h)
		return code
	}
	for i := range 10 {
		if code := wrong("203.0.113.1"); code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i, code)
		}
	}
	if code := wrong("203.0.113.1"); code != http.StatusTooManyRequests {
		t.Errorf("the guessing client after 10 failures: %d, want 429", code)
	}
	if code := wrong("203.0.113.2"); code != http.StatusUnauthorized {
		t.Errorf("another client behind the same proxy: %d, want 401 (its own first failure)", code)
	}
	// Log lines reach a.logs a little after the answers.
	for _, c := range []string{"client=203.0.113.1", "client=203.0.113.2"} {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(a.logs.String(), c) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !strings.Contains(a.logs.String(), c) {
			t.Errorf("no request log line with %s", c)
		}
	}
}
