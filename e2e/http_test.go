package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEndpointsHeadersAndConditionalRequests(t *testing.T) {
	f := newFixture(t)
	a := startAgora(t, "", nil, f.agoraArgs("")...)
	b := f.mod(t, "example.com/hello@v1.1.0")
	cases := []struct {
		path, ctype, cache, body string
	}{
		{"/example.com/hello/@v/list", "text/plain; charset=utf-8", "max-age=60", "v1.0.0\nv1.1.0\nv1.2.0-pre.1\n"},
		{"/example.com/hello/@v/v1.1.0.info", "application/json", "immutable", `{"Version":"v1.1.0","Time":"2024-01-02T03:04:05Z"}` + "\n"},
		{"/example.com/hello/@v/v1.1.0.mod", "text/plain; charset=utf-8", "immutable", string(b.Mod)},
		{"/example.com/hello/@v/v1.1.0.zip", "application/zip", "immutable", string(b.Zip)},
		{"/example.com/hello/@latest", "application/json", "max-age=60", `{"Version":"v1.1.0","Time":"2024-01-02T03:04:05Z"}` + "\n"},
		{"/github.com/!upper/!case/@v/v1.0.0.mod", "text/plain; charset=utf-8", "immutable", string(f.mod(t, "github.com/Upper/Case@v1.0.0").Mod)},
		{"/sumdb/" + dbName + "/supported", "text/plain; charset=utf-8", "", ""},
	}
	for _, c := range cases {
		for _, method := range []string{"GET", "HEAD"} {
			code, hdr, body := do(t, method, a.URL+c.path, nil)
			want := c.body
			if method == "HEAD" {
				want = ""
			}
			if code != 200 || body != want {
				t.Errorf("%s %s = %d %q, want 200 %q", method, c.path, code, body, want)
			}
			if got := hdr.Get("Content-Type"); got != c.ctype {
				t.Errorf("%s %s: Content-Type %q, want %q", method, c.path, got, c.ctype)
			}
			if got := hdr.Get("Content-Length"); got != fmt.Sprint(len(c.body)) {
				t.Errorf("%s %s: Content-Length %q, want %d", method, c.path, got, len(c.body))
			}
			if got := hdr.Get("Cache-Control"); !strings.Contains(got, c.cache) {
				t.Errorf("%s %s: Cache-Control %q, want %q", method, c.path, got, c.cache)
			}
		}
	}

	zipURL := a.URL + "/example.com/hello/@v/v1.1.0.zip"
	_, hdr, _ := get(t, zipURL)
	etag := hdr.Get("ETag")
	if etag == "" {
		t.Fatal("zip has no ETag")
	}
	code, _, _ := do(t, "GET", zipURL, http.Header{"If-None-Match": {etag}})
	if code != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag = %d, want 304", code)
	}
	code, hdr, body := do(t, "GET", zipURL, http.Header{"Range": {"bytes=10-19"}})
	if code != http.StatusPartialContent || body != string(b.Zip[10:20]) || hdr.Get("Content-Range") == "" {
		t.Errorf("Range request = %d %q (Content-Range %q), want 206 with bytes 10-19", code, body, hdr.Get("Content-Range"))
	}

	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		code, hdr, _ := do(t, method, zipURL, nil)
		if code != http.StatusMethodNotAllowed || hdr.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s = %d (Allow %q), want 405 with Allow: GET, HEAD", method, code, hdr.Get("Allow"))
		}
	}
	if code, _, _ := get(t, a.URL+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
}

// rawRequest sends a request line exactly as given (no client-side
// cleaning or escaping) and returns the status code.
func rawRequest(t *testing.T, addr, line string, headers ...string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := line + "\r\nHost: agora.test\r\n" + strings.Join(headers, "") + "Connection: close\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: reading response: %v", line, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestHostileRequestsGet4xxAndTouchNothingOutsideTheStore(t *testing.T) {
	f := newFixture(t)
	root := t.TempDir()
	data := filepath.Join(root, "data")
	secret := filepath.Join(root, "secret.zip")
	writeFile(t, root, "secret.zip", "SECRET")
	a := startAgora(t, data, nil, f.agoraArgs("")...)
	addr := strings.TrimPrefix(a.URL, "http://")
	long := strings.Repeat("a", 10000)
	lines := []string{
		"GET /../secret.zip HTTP/1.1",
		"GET /example.com/../../secret.zip HTTP/1.1",
		"GET /example.com/hello/@v/../../../../secret.zip HTTP/1.1",
		"GET /example.com/%2e%2e/%2e%2e/@v/v1.0.0.zip HTTP/1.1",
		"GET /example.com/hello/@v/%2e%2e%2fsecret.zip HTTP/1.1",
		"GET /example.com/hello/@v/..%5c..%5csecret.zip HTTP/1.1",
		"GET /example.com/hello/@v/%252e%252e%252fsecret.zip HTTP/1.1",
		"GET //" + root + "/secret.zip HTTP/1.1",
		"GET /" + root + "/@v/v1.0.0.zip HTTP/1.1",
		"GET /example.com/hello%00/@v/v1.0.0.zip HTTP/1.1",
		"GET /example.com/hello/@v/v1.0.0%00.zip HTTP/1.1",
		"GET /example.com/Hello/@v/v1.0.0.info HTTP/1.1",
		"GET /example.com/hello!/@v/v1.0.0.info HTTP/1.1",
		"GET /example.com/h%ffello/@v/v1.0.0.info HTTP/1.1",
		"GET /example.com/hello/@v/v1.0.mod HTTP/1.1",
		"GET /example.com/hello/@v/v01.0.0.zip HTTP/1.1",
		"GET /example.com/hello/@v/v1.0.0+meta.zip HTTP/1.1",
		"GET /example.com/hello/@v/v1.0.0.tar HTTP/1.1",
		"GET /example.com/hello/@v/ HTTP/1.1",
		"GET /" + long + "/@v/list HTTP/1.1",
		"GET /example.com/hello/@v/list?" + strings.Repeat("q=1&", 20000) + " HTTP/1.1",
		"GET /sumdb/" + dbName + "/lookup/../../secret.zip HTTP/1.1",
		"GET /sumdb/" + dbName + "/tile/8/0/../../../secret.zip HTTP/1.1",
		"GET /sumdb/other.db/supported HTTP/1.1",
		"BREW /example.com/hello/@v/list HTTP/1.1",
		"DELETE /example.com/hello/@v/v1.0.0.zip HTTP/1.1",
	}
	for _, line := range lines {
		code := rawRequest(t, addr, line)
		if code < 400 || code > 499 {
			t.Errorf("%.120q = %d, want 4xx", line, code)
		}
	}
	if code := rawRequest(t, addr, "GET /example.com/hello/@v/list HTTP/1.1", "X-Big: "+strings.Repeat("b", 100<<10)+"\r\n"); code < 400 || code > 499 {
		t.Errorf("request with a 100 kB header = %d, want 4xx", code)
	}
	if got, _ := os.ReadFile(secret); string(got) != "SECRET" {
		t.Errorf("file outside the store changed: %q", got)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 2 {
		t.Errorf("files appeared beside the store: %v", entries)
	}
	if files := storeFiles(t, data); len(files) != 0 {
		t.Errorf("hostile requests stored files: %v", files)
	}
	for _, r := range f.Up.Requests() {
		if strings.Contains(r, "secret") || strings.Contains(r, "..") {
			t.Errorf("a hostile path reached the upstream: %s", r)
		}
	}
}
