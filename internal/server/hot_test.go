package server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agora-mirror/agora/internal/access"
	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/modtest"
	"github.com/agora-mirror/agora/internal/store"
)

const (
	pubInfo    = "/example.com/pub/@v/v1.0.0.info"
	pubMod     = "/example.com/pub/@v/v1.0.0.mod"
	pubZip     = "/example.com/pub/@v/v1.0.0.zip"
	secretInfo = "/corp.example/secret/@v/v1.0.0.info"
	secretZip  = "/corp.example/secret/@v/v1.0.0.zip"
)

// observed records the requests a Handler reports.
type observed struct {
	mu   sync.Mutex
	reqs []string // "endpoint status cache"
}

func (o *observed) Request(endpoint string, code int, bytes int64, d time.Duration, cache string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reqs = append(o.reqs, strings.Join([]string{endpoint, http.StatusText(code), cache}, " "))
}

func (o *observed) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.reqs) == 0 {
		return ""
	}
	return o.reqs[len(o.reqs)-1]
}

// hotServer is an http.Server on a HotListener, with a count of the
// connections net/http was handed.
type hotServer struct {
	dir    string // the disk store
	h      *Handler
	obs    *observed
	addr   string
	srv    *http.Server
	hot    *HotListener
	handed atomic.Int32
	token  string
}

// newHotServer starts a hotServer; opts change the Handler's options.
func newHotServer(t *testing.T, opts ...func(*Options)) *hotServer {
	t.Helper()
	dir := t.TempDir()
	pub := modtest.MustBuild(t, modtest.Module{Path: "example.com/pub", Version: "v1.0.0",
		Files: map[string]string{"go.mod": "module example.com/pub\n", "a.go": "package pub\n"}})
	secret := modtest.MustBuild(t, modtest.Module{Path: "corp.example/secret", Version: "v1.0.0",
		Files: map[string]string{"go.mod": "module corp.example/secret\n", "a.go": "package secret\n"}})
	if err := modtest.WriteTree(dir+"/mod", pub, secret); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	md := modtest.Meta(t)
	s := &hotServer{dir: dir, obs: new(observed), token: access.NewToken()}
	if err := md.CreateToken(context.Background(), meta.Token{Name: "corp", Hash: access.Hash(s.token), Patterns: "corp.example"}); err != nil {
		t.Fatal(err)
	}
	o := Options{Mirror: mirror.New(mirror.Options{Store: st, Catalog: md}), Observer: s.obs,
		Access: access.New(access.Options{Protected: "corp.example", Tokens: md})}
	for _, f := range opts {
		f(&o)
	}
	s.h = New(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.handed.Add(1)
			}
		}}
	s.hot = NewHotListener(s.h, ln, time.Minute, 10*time.Second)
	go s.srv.Serve(s.hot)
	t.Cleanup(func() { s.srv.Close() })
	// Answer each file once through net/http, which puts it in memory
	// (or, for the zip, remembers that it is held).
	for _, p := range []string{pubInfo, pubMod, pubZip} {
		if code, _, _ := s.handler(p, ""); code != 200 {
			t.Fatalf("%s: %d", p, code)
		}
	}
	return s
}

// handler answers path through ServeHTTP alone.
func (s *hotServer) handler(path, token string) (int, http.Header, []byte) {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		r.SetBasicAuth("agora", token)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w.Code, w.Header(), w.Body.Bytes()
}

// exchange writes raw to a new connection, then reads n responses (to
// GET requests, or HEAD when head is set) from it.
func (s *hotServer) exchange(t *testing.T, raw string, n int, head bool) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []*http.Response
	for range n {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("reading response %d of %q: %v", len(out)+1, raw, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
	}
	return out
}

func body(t *testing.T, r *http.Response) []byte {
	t.Helper()
	b, _ := io.ReadAll(r.Body)
	return b
}

func get(path string, headers ...string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: agora.test\r\n" + strings.Join(headers, "") + "\r\n"
}

func TestHotPathAnswersAsTheHandlerDoes(t *testing.T) {
	s := newHotServer(t)
	for _, p := range []string{pubInfo, pubMod, pubZip} {
		wantCode, wantHeader, wantBody := s.handler(p, "")
		handed := s.handed.Load()
		resp := s.exchange(t, get(p, "User-Agent: Go-http-client/1.1\r\n", "Accept-Encoding: gzip\r\n"), 1, false)[0]
		if n := s.handed.Load() - handed; n != 0 {
			t.Fatalf("%s: the connection went to net/http", p)
		}
		if got := body(t, resp); resp.StatusCode != wantCode || !bytes.Equal(got, wantBody) {
			t.Errorf("%s: %d %q, the handler gives %d %q", p, resp.StatusCode, got, wantCode, wantBody)
		}
		if resp.ContentLength != int64(len(wantBody)) {
			t.Errorf("%s: Content-Length %d, want %d", p, resp.ContentLength, len(wantBody))
		}
		for k := range wantHeader {
			if !slices.Equal(resp.Header[k], wantHeader[k]) {
				t.Errorf("%s: %s = %q, the handler gives %q", p, k, resp.Header[k], wantHeader[k])
			}
		}
		if _, err := time.Parse(http.TimeFormat, resp.Header.Get("Date")); err != nil {
			t.Errorf("%s: Date %q: %v", p, resp.Header.Get("Date"), err)
		}
		if len(resp.Header) != len(wantHeader)+1 { // + Date, which httptest leaves out
			t.Errorf("%s: headers %v, the handler gives %v and Date", p, resp.Header, wantHeader)
		}
		endpoint := strings.TrimPrefix(p[strings.LastIndex(p, "."):], ".")
		if got, want := s.obs.last(), endpoint+" OK hit"; got != want {
			t.Errorf("%s: observed %q, want %q", p, got, want)
		}
	}

	// HEAD: the headers, no body.
	for _, p := range []string{pubInfo, pubZip} {
		handed := s.handed.Load()
		resp := s.exchange(t, "HEAD "+p+" HTTP/1.1\r\nHost: agora.test\r\n\r\n", 1, true)[0]
		_, _, wantBody := s.handler(p, "")
		if got := body(t, resp); resp.StatusCode != 200 || resp.ContentLength != int64(len(wantBody)) || len(got) != 0 {
			t.Errorf("HEAD %s: %d, length %d, body %q", p, resp.StatusCode, resp.ContentLength, got)
		}
		if s.handed.Load() != handed {
			t.Errorf("HEAD %s: the connection went to net/http", p)
		}
	}

	// A zip no longer held (removed from the store) is net/http's again.
	if err := os.Remove(filepath.Join(s.dir, "mod", filepath.FromSlash(pubZip))); err != nil {
		t.Fatal(err)
	}
	handed := s.handed.Load()
	if resp := s.exchange(t, get(pubZip), 1, false)[0]; resp.StatusCode != http.StatusNotFound {
		t.Errorf("removed zip: %d, want 404", resp.StatusCode)
	}
	if s.handed.Load() == handed {
		t.Error("removed zip: answered without net/http")
	}
}

func TestHotPathHandsOtherRequestsToNetHTTP(t *testing.T) {
	s := newHotServer(t)

	// Pipelined: two hot answers, one for net/http, then net/http keeps the
	// connection and answers the fourth too.
	handed := s.handed.Load()
	rs := s.exchange(t, get(pubInfo)+get(pubMod)+get("/healthz")+get(pubInfo), 4, false)
	for i, want := range []string{pubInfo, pubMod, "/healthz", pubInfo} {
		wantCode, _, wantBody := s.handler(want, "")
		if got := body(t, rs[i]); rs[i].StatusCode != wantCode || !bytes.Equal(got, wantBody) {
			t.Errorf("pipelined %d (%s): %d %q, want %d %q", i, want, rs[i].StatusCode, got, wantCode, wantBody)
		}
	}
	if n := s.handed.Load() - handed; n != 1 {
		t.Errorf("pipelined: %d connections handed to net/http, want 1", n)
	}

	// A request head arriving in pieces is still answered.
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	req := get(pubInfo)
	io.WriteString(c, req[:10])
	time.Sleep(50 * time.Millisecond)
	io.WriteString(c, req[10:])
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("split head: %v %v", resp, err)
	}
	c.Close()

	// What the hot path does not take goes to net/http, which answers it
	// as it would without the hot path.
	long := "X-Long: " + strings.Repeat("a", hotHeadMax) + "\r\n"
	cases := []struct {
		name, raw string
		want      int
	}{
		{"no Host", "GET " + pubInfo + " HTTP/1.1\r\n\r\n", http.StatusBadRequest},
		{"two Hosts", "GET " + pubInfo + " HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", http.StatusBadRequest},
		{"bad Host", "GET " + pubInfo + " HTTP/1.1\r\nHost: a b\r\n\r\n", http.StatusBadRequest},
		{"folded header", get(pubInfo, "X-A: a\r\n b\r\n"), http.StatusOK}, // net/http unfolds it
		{"control character", get(pubInfo, "X-A: a\x01b\r\n"), http.StatusBadRequest},
		{"HTTP/1.0", "GET " + pubInfo + " HTTP/1.0\r\n\r\n", http.StatusOK},
		{"Connection: close", get(pubInfo, "Connection: close\r\n"), http.StatusOK},
		{"a body", get(pubInfo, "Content-Length: 2\r\n") + "xy", http.StatusOK},
		{"chunked", get(pubInfo, "Transfer-Encoding: chunked\r\n") + "0\r\n\r\n", http.StatusOK},
		{"query", get(pubInfo + "?x=1"), http.StatusOK},
		{"escaped", get("/example.com/pub/@v/v1.0.0%2Einfo"), http.StatusOK},
		{"long head", get(pubInfo, long), http.StatusOK},
		{"POST", "POST " + pubInfo + " HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", http.StatusMethodNotAllowed},
		{"protected, no token", get(secretInfo), http.StatusUnauthorized},
		{"protected zip, no token", get(secretZip), http.StatusUnauthorized},
		{"not held", get("/example.com/pub/@v/v9.9.9.info"), http.StatusNotFound},
		{"zip range", get(pubZip, "Range: bytes=0-9\r\n"), http.StatusPartialContent},
		{"zip condition", get(pubZip, "If-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT\r\n"), http.StatusOK},
	}
	// The protected files are in memory, or their zip remembered as
	// held, once answered with the token.
	for _, p := range []string{secretInfo, secretZip} {
		if code, _, _ := s.handler(p, s.token); code != 200 {
			t.Fatalf("%s with the token: %d", p, code)
		}
	}
	for _, c := range cases {
		handed := s.handed.Load()
		resp := s.exchange(t, c.raw, 1, false)[0]
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d (%q)", c.name, resp.StatusCode, c.want, body(t, resp))
		}
		if n := s.handed.Load() - handed; n != 1 {
			t.Errorf("%s: answered without net/http", c.name)
		}
	}
}

func TestHotListenerCloseEndsIdleConnections(t *testing.T) {
	s := newHotServer(t)
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, get(pubInfo))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	// The connection now waits, idle, in the hot path.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := s.hot.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Shutdown, reading the idle connection: %v, want EOF", err)
	}
	if _, err := net.DialTimeout("tcp", s.addr, time.Second); err == nil {
		t.Error("the listener still accepts after Shutdown")
	}
}

// TestClientAddressInRequestLogs: with log_client_addr, a request's log
// line names the client: the peer, or, from a trusted proxy, the client
// its X-Forwarded-For header names (in any case of the name); the same on
// the hot path and through net/http, and per request on a connection a
// proxy reuses for several clients.
func TestClientAddressInRequestLogs(t *testing.T) {
	const list = "/example.com/pub/@v/list"
	for _, c := range []struct {
		name       string
		trusted    []netip.Prefix
		want, next string // the clients of a connection's first and second requests
	}{
		{"no trusted proxy (the header is ignored)", nil, "127.0.0.1", "127.0.0.1"},
		{"from a trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.9", "203.0.113.10"},
	} {
		t.Run(c.name, func(t *testing.T) {
			logs := new(modtest.SyncBuffer)
			s := newHotServer(t, func(o *Options) {
				o.LogClientAddr = true
				o.TrustedProxies = c.trusted
				o.Logger = slog.New(slog.NewTextHandler(logs, nil))
			})
			// lines returns the log lines for path; a line is written
			// after the answer, so callers wait for the one they expect.
			lines := func(path string) []string {
				var out []string
				for line := range strings.Lines(logs.String()) {
					if strings.Contains(line, " path="+path+" ") {
						out = append(out, line)
					}
				}
				return out
			}
			waitLines := func(path string, n int) []string {
				deadline := time.Now().Add(5 * time.Second)
				for len(lines(path)) < n && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				got := lines(path)
				if len(got) < n {
					t.Fatalf("%d log lines for %s, want %d:\n%s", len(got), path, n, logs.String())
				}
				return got
			}
			check := func(line, want string) {
				t.Helper()
				if !strings.HasSuffix(line, " client="+want+"\n") {
					t.Errorf("log line %q, want client=%s", line, want)
				}
			}

			// The hot path: two requests of two clients on one connection.
			before := len(lines(pubInfo))
			s.exchange(t, get(pubInfo, "X-Forwarded-For: 198.51.100.1\r\n", "x-forwarded-for: 203.0.113.9\r\n")+
				get(pubInfo, "X-Forwarded-For: 203.0.113.10\r\n"), 2, false)
			got := waitLines(pubInfo, before+2)
			check(got[before], c.want)
			check(got[before+1], c.next)
			// net/http.
			s.exchange(t, get(list, "X-Forwarded-For: 198.51.100.1\r\n", "x-forwarded-for: 203.0.113.9\r\n"), 1, false)
			check(waitLines(list, 1)[0], c.want)
			if n := s.handed.Load(); n != 1 {
				t.Errorf("%d connections handed to net/http, want 1 (the list's; the .info is the hot path's)", n)
			}
		})
	}
}

func TestParseHot(t *testing.T) {
	for _, c := range []struct {
		head string
		ok   bool
	}{
		{"GET /a/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"HEAD /a/@v/v1.0.0.mod HTTP/1.1\r\nhost: x\r\nCONNECTION: Keep-Alive\r\nContent-Length: 0\r\n\r\n", true},
		{"GET /a/@v/v1.0.0.zip HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET /a/@v/v1.0.0.ziq HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET /a/@v/list HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET  /a/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"GET /a/@v/v1.0.0.info HTTP/1.1 \r\nHost: x\r\n\r\n", false},
		{"GET /a/@v/v1.0.0.info HTTP/1.1\r\nHost : x\r\n\r\n", false},
		{"GET /a/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", false},
		{"GET /a/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n", false},
		{"GET /a/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\nX: \x7f\r\n\r\n", false},
		{"GET /a/\xff/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"get /a/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\n\r\n", false},
	} {
		if _, _, _, ok := parseHot([]byte(c.head)); ok != c.ok {
			t.Errorf("parseHot(%q) ok = %v, want %v", c.head, ok, c.ok)
		}
	}
}

// FuzzParseHot: a request head the hot path takes is one net/http reads
// the same way: the same method and path, no body, and a connection that
// stays open.
func FuzzParseHot(f *testing.F) {
	f.Add("GET /a/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\n\r\n")
	f.Add("HEAD /a/@v/v1.0.0.mod HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
	f.Add("GET /a/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	f.Add("GET /a/@v/v1.0.0.info HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		// What the hot path passes to parseHot: the head, up to the
		// first blank line.
		i := strings.Index(in, "\r\n\r\n")
		if i < 0 {
			return
		}
		head := in[:i+4]
		method, target, _, ok := parseHot([]byte(head))
		if !ok {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			t.Fatalf("parseHot took %q, net/http refuses it: %v", head, err)
		}
		if r.Method != method || r.URL.Path != string(target) || r.RequestURI != string(target) {
			t.Errorf("parseHot read %s %s from %q, net/http %s %s", method, target, head, r.Method, r.RequestURI)
		}
		if r.ContentLength != 0 || len(r.TransferEncoding) != 0 || r.Close {
			t.Errorf("parseHot took %q: net/http sees length %d, encoding %v, close %v",
				head, r.ContentLength, r.TransferEncoding, r.Close)
		}
	})
}
