package upstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/agora-mirror/agora/internal/upstream"
)

const rel = "example.com/m/@v/v1.0.0.mod"

// testOptions keeps every test fast: short idle timeout, tiny backoff.
func testOptions() upstream.Options {
	return upstream.Options{
		Timeout:    200 * time.Millisecond,
		Backoff:    time.Millisecond,
		MaxBackoff: 5 * time.Millisecond,
	}
}

// server is a test upstream on 127.0.0.1 that counts its requests.
type server struct {
	URL string
	n   atomic.Int32

	mu    sync.Mutex
	paths []string
}

func (s *server) count() int { return int(s.n.Load()) }

// newServer starts a test upstream answering every request with h.
func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.n.Add(1)
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.Path)
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// statusServer answers every request with code; a 200 carries body.
func statusServer(t *testing.T, code int, body string) *server {
	return newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if code != http.StatusOK {
			http.Error(w, http.StatusText(code), code)
			return
		}
		io.WriteString(w, body)
	})
}

// refusedURL returns the URL of a port on 127.0.0.1 nobody listens on.
func refusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func parseChain(t *testing.T, list string) *upstream.Chain {
	t.Helper()
	c, err := upstream.ParseChain(list, testOptions())
	if err != nil {
		t.Fatalf("ParseChain(%q): %v", list, err)
	}
	return c
}

func TestChainFallbackRules(t *testing.T) {
	const refused = -1 // a's "status": connection refused
	tests := []struct {
		name    string
		aStatus int
		sep     string
		bStatus int
		askB    bool   // whether b must be asked
		from    string // "a" or "b" for success, "" for an error
		notFnd  bool   // for an error: whether it means "not found"
	}{
		{"a has it", 200, ",", 200, false, "a", false},
		{"comma: 404 moves on", 404, ",", 200, true, "b", false},
		{"comma: 410 moves on", 410, ",", 200, true, "b", false},
		{"comma: 400 moves on (Agora extension)", 400, ",", 200, true, "b", false},
		{"comma: 403 moves on (Agora extension)", 403, ",", 200, true, "b", false},
		{"comma: 500 is terminal", 500, ",", 200, false, "", false},
		{"comma: 502 is terminal", 502, ",", 200, false, "", false},
		{"comma: 429 is terminal", 429, ",", 200, false, "", false},
		{"comma: 401 is terminal", 401, ",", 200, false, "", false},
		{"comma: connection refused is terminal", refused, ",", 200, false, "", false},
		{"comma: both not found", 404, ",", 410, true, "", true},
		{"pipe: 500 moves on", 500, "|", 200, true, "b", false},
		{"pipe: 404 moves on", 404, "|", 200, true, "b", false},
		{"pipe: 401 moves on", 401, "|", 200, true, "b", false},
		{"pipe: connection refused moves on", refused, "|", 200, true, "b", false},
		{"pipe: failure outranks a later not found", 500, "|", 404, true, "", false},
		{"pipe: not found then failure is a failure", 404, "|", 500, true, "", false},
		{"pipe: both not found", 404, "|", 404, true, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var a *server
			aURL := refusedURL(t)
			if tc.aStatus != refused {
				a = statusServer(t, tc.aStatus, "from a")
				aURL = a.URL
			}
			b := statusServer(t, tc.bStatus, "from b")
			c := parseChain(t, aURL+tc.sep+b.URL)

			data, p, err := c.FetchBytes(context.Background(), rel, 0)
			if asked := b.count() > 0; asked != tc.askB {
				t.Errorf("b asked: %v, want %v", asked, tc.askB)
			}
			if a != nil && a.count() == 0 {
				t.Error("a was never asked")
			}
			switch tc.from {
			case "a", "b":
				if err != nil {
					t.Fatalf("FetchBytes: %v", err)
				}
				if want := "from " + tc.from; string(data) != want {
					t.Errorf("body = %q, want %q", data, want)
				}
				wantProxy := aURL
				if tc.from == "b" {
					wantProxy = b.URL
				}
				if p == nil || p.String() != wantProxy {
					t.Errorf("answering proxy = %v, want %s", p, wantProxy)
				}
			default:
				if err == nil {
					t.Fatalf("FetchBytes succeeded with %q, want an error", data)
				}
				if got := errors.Is(err, upstream.ErrNotFound); got != tc.notFnd {
					t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, got, tc.notFnd)
				}
				var nf *upstream.NotFoundError
				if got := errors.As(err, &nf); got != tc.notFnd {
					t.Errorf("error %v is a *NotFoundError: %v, want %v", err, got, tc.notFnd)
				}
				if p != nil {
					t.Errorf("answering proxy = %v along with an error", p)
				}
			}
		})
	}
}

func TestChainFailureNamesUpstreamAndStatus(t *testing.T) {
	a := statusServer(t, http.StatusInternalServerError, "")
	c := parseChain(t, a.URL)
	_, _, err := c.FetchBytes(context.Background(), rel, 0)
	var ue *upstream.Error
	if !errors.As(err, &ue) {
		t.Fatalf("error %v (%T) is not an *upstream.Error", err, err)
	}
	if ue.Status != 500 || ue.Source != a.URL || ue.Path != rel {
		t.Errorf("Error = {Source: %q, Path: %q, Status: %d}, want {%q, %q, 500}", ue.Source, ue.Path, ue.Status, a.URL, rel)
	}
	for _, want := range []string{a.URL, rel, "500"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestChainAllNotFoundNamesEveryUpstream(t *testing.T) {
	a := statusServer(t, http.StatusNotFound, "")
	b := statusServer(t, http.StatusGone, "")
	c := statusServer(t, http.StatusForbidden, "")
	chain := parseChain(t, a.URL+","+b.URL+"|"+c.URL)
	_, _, err := chain.FetchBytes(context.Background(), rel, 0)
	var nf *upstream.NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("error %v (%T) is not a *NotFoundError", err, err)
	}
	if nf.Path != rel {
		t.Errorf("NotFoundError.Path = %q, want %q", nf.Path, rel)
	}
	if len(nf.Answers) != 3 {
		t.Errorf("NotFoundError.Answers = %q, want one per upstream", nf.Answers)
	}
	msg := err.Error()
	for _, want := range []string{a.URL + ": 404", b.URL + ": 410", c.URL + ": 403", rel} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if a.count() != 1 || b.count() != 1 || c.count() != 1 {
		t.Errorf("requests = %d, %d, %d; want each upstream asked once (not found is not retried)", a.count(), b.count(), c.count())
	}
}

func TestChainOff(t *testing.T) {
	b := statusServer(t, 200, "from b")
	tests := []struct {
		list    string
		proxies int
	}{
		{"off", 0},
		{"", 0},
		{" , ", 0},
		{"off," + b.URL, 0},
		{"off|" + b.URL, 0},
	}
	for _, tc := range tests {
		c := parseChain(t, tc.list)
		if !c.Off() || len(c.Proxies()) != 0 {
			t.Errorf("ParseChain(%q): Off() = %v with %d proxies, want an off chain", tc.list, c.Off(), len(c.Proxies()))
		}
		if c.Direct {
			t.Errorf("ParseChain(%q).Direct = true", tc.list)
		}
		if got := c.String(); got != "off" {
			t.Errorf("ParseChain(%q).String() = %q, want %q", tc.list, got, "off")
		}
		_, p, err := c.FetchBytes(context.Background(), rel, 0)
		if !errors.Is(err, upstream.ErrOff) || !errors.Is(err, upstream.ErrNotFound) {
			t.Errorf("ParseChain(%q).Fetch: got %v, want ErrOff matching ErrNotFound", tc.list, err)
		}
		if p != nil {
			t.Errorf("ParseChain(%q).Fetch returned proxy %v", tc.list, p)
		}
	}
	if b.count() != 0 {
		t.Errorf("an upstream after off was asked %d times", b.count())
	}
}

func TestChainOffEndsTheList(t *testing.T) {
	a := statusServer(t, http.StatusNotFound, "")
	b := statusServer(t, 200, "from b")
	c := parseChain(t, a.URL+",off,"+b.URL)
	if got := len(c.Proxies()); got != 1 {
		t.Fatalf("chain has %d proxies, want 1", got)
	}
	_, _, err := c.FetchBytes(context.Background(), rel, 0)
	if !errors.Is(err, upstream.ErrNotFound) {
		t.Errorf("Fetch: got %v, want not found", err)
	}
	if b.count() != 0 {
		t.Errorf("upstream after off asked %d times", b.count())
	}
}

func TestChainDirect(t *testing.T) {
	a := statusServer(t, http.StatusNotFound, "")
	b := statusServer(t, 200, "from b")

	c := parseChain(t, "direct")
	if !c.Direct || !c.Off() {
		t.Errorf(`ParseChain("direct"): Direct = %v, Off() = %v; want true, true`, c.Direct, c.Off())
	}
	if got := c.String(); got != "direct" {
		t.Errorf(`ParseChain("direct").String() = %q`, got)
	}
	if _, _, err := c.FetchBytes(context.Background(), rel, 0); !errors.Is(err, upstream.ErrOff) {
		t.Errorf(`ParseChain("direct").Fetch: got %v, want ErrOff (direct is the caller's business)`, err)
	}

	c = parseChain(t, a.URL+",direct,"+b.URL)
	if !c.Direct {
		t.Error("Direct = false for a list holding direct")
	}
	if ps := c.Proxies(); len(ps) != 1 || ps[0].String() != a.URL {
		t.Errorf("Proxies() = %v, want just %s (direct ends the list)", ps, a.URL)
	}
	if got, want := c.String(), a.URL+",direct"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	_, _, err := c.FetchBytes(context.Background(), rel, 0)
	if !errors.Is(err, upstream.ErrNotFound) {
		t.Errorf("Fetch: got %v, want not found", err)
	}
	if b.count() != 0 {
		t.Errorf("upstream after direct asked %d times", b.count())
	}
}

func TestParseChainSyntax(t *testing.T) {
	tests := []struct {
		list string
		want string // String() of the chain, or "" when ParseChain must fail
	}{
		{"http://a.example", "http://a.example"},
		{"https://a.example/", "https://a.example"},
		{"https://a.example/base/", "https://a.example/base"},
		{"http://a.example,https://b.example", "http://a.example,https://b.example"},
		{"http://a.example|https://b.example", "http://a.example|https://b.example"},
		{"http://a.example|http://b.example,http://c.example", "http://a.example|http://b.example,http://c.example"},
		{" http://a.example , http://b.example ", "http://a.example,http://b.example"},
		{"http://a.example,,http://b.example", "http://a.example,http://b.example"},
		{"http://a.example,direct", "http://a.example,direct"},
		{"noproxy", ""},
		{"http://a.example,noproxy", ""},
		{"ftp://a.example", ""},
		{"file:///tmp/proxy", ""},
		{"a.example", ""},
		{"127.0.0.1:3000", ""},
		{"http://", ""},
		{"http://a.example:port", ""},
	}
	for _, tc := range tests {
		c, err := upstream.ParseChain(tc.list, testOptions())
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseChain(%q) = %v, want an error", tc.list, c)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseChain(%q): %v", tc.list, err)
			continue
		}
		if got := c.String(); got != tc.want {
			t.Errorf("ParseChain(%q).String() = %q, want %q", tc.list, got, tc.want)
		}
	}
}

func TestRetriesServerErrorsThenSucceeds(t *testing.T) {
	var n atomic.Int32
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "module example.com/m\n")
	})
	p, err := upstream.NewProxy(s.URL, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	data, err := p.FetchBytes(context.Background(), rel, 0)
	if err != nil {
		t.Fatalf("FetchBytes: %v", err)
	}
	if string(data) != "module example.com/m\n" {
		t.Errorf("body = %q", data)
	}
	if s.count() != 3 {
		t.Errorf("%d requests, want 3 (two 503s, then 200)", s.count())
	}
}

func TestRetriesTooManyRequestsWithRetryAfter(t *testing.T) {
	var n atomic.Int32
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		io.WriteString(w, "ok")
	})
	p, err := upstream.NewProxy(s.URL, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	data, err := p.FetchBytes(context.Background(), rel, 0)
	if err != nil || string(data) != "ok" {
		t.Fatalf("FetchBytes = %q, %v; want ok", data, err)
	}
	if s.count() != 2 {
		t.Errorf("%d requests, want 2", s.count())
	}
}

func TestRetryCounts(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		attempts int // Options.Attempts
		want     int // requests made
	}{
		{"503 is tried the default 3 times", 503, 0, 3},
		{"500 is tried Attempts times", 500, 2, 2},
		{"429 is retried", 429, 4, 4},
		{"404 is not retried", 404, 0, 1},
		{"410 is not retried", 410, 0, 1},
		{"403 is not retried", 403, 0, 1},
		{"401 is not retried", 401, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := statusServer(t, tc.status, "")
			o := testOptions()
			o.Attempts = tc.attempts
			p, err := upstream.NewProxy(s.URL, o)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.FetchBytes(context.Background(), rel, 0)
			var ue *upstream.Error
			if !errors.As(err, &ue) || ue.Status != tc.status {
				t.Errorf("error %v, want an *upstream.Error with status %d", err, tc.status)
			}
			if s.count() != tc.want {
				t.Errorf("%d requests, want %d", s.count(), tc.want)
			}
		})
	}
}

func TestConnectionRefusedIsRetriedAndReported(t *testing.T) {
	u := refusedURL(t)
	p, err := upstream.NewProxy(u, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.FetchBytes(context.Background(), rel, 0)
	var ue *upstream.Error
	if !errors.As(err, &ue) || ue.Status != 0 || ue.Err == nil {
		t.Fatalf("error %v, want an *upstream.Error for a network failure", err)
	}
	if errors.Is(err, upstream.ErrNotFound) {
		t.Errorf("connection refused matches ErrNotFound: %v", err)
	}
	if !strings.Contains(err.Error(), u) {
		t.Errorf("error %q does not name the upstream %s", err, u)
	}
}

// hijackHalf sends the headers of a 200 answer announcing all of body and
// then only its first half, and ends the connection: closing it, or with
// reset, resetting it.
func hijackHalf(t *testing.T, w http.ResponseWriter, body []byte, reset bool) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nContent-Length: %d\r\n\r\n", len(body))
	buf.Write(body[:len(body)/2])
	buf.Flush()
	if tc, ok := conn.(*net.TCPConn); ok && reset {
		tc.SetLinger(0) // close with RST
	}
	conn.Close()
}

func TestBodyCutMidwayIsRetriedFromScratch(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	for _, reset := range []bool{false, true} {
		name := "closed"
		if reset {
			name = "reset"
		}
		t.Run(name, func(t *testing.T) {
			var n atomic.Int32
			s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					hijackHalf(t, w, body, reset)
					return
				}
				w.Write(body)
			})
			p, err := upstream.NewProxy(s.URL, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			var calls int
			var got bytes.Buffer
			err = p.Fetch(context.Background(), rel, 0, func(r io.Reader) error {
				calls++
				got.Reset() // the sink starts afresh on each call
				_, err := io.Copy(&got, r)
				return err
			})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if calls != 2 {
				t.Errorf("sink called %d times, want 2", calls)
			}
			if !bytes.Equal(got.Bytes(), body) {
				t.Errorf("final content is %d bytes, want the full %d-byte body", got.Len(), len(body))
			}
			if s.count() != 2 {
				t.Errorf("%d requests, want 2", s.count())
			}
		})
	}
}

func TestTruncatedBodyIsAnError(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 1000)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		hijackHalf(t, w, body, false)
	})
	p, err := upstream.NewProxy(s.URL, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	data, err := p.FetchBytes(context.Background(), rel, 0)
	if err == nil {
		t.Fatalf("FetchBytes of a truncated body succeeded with %d bytes", len(data))
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("error %v does not match io.ErrUnexpectedEOF", err)
	}
	if !strings.Contains(err.Error(), s.URL) {
		t.Errorf("error %q does not name the upstream", err)
	}
	if s.count() != 3 {
		t.Errorf("%d requests, want 3 (each attempt truncated)", s.count())
	}

	// Through a chain the truncation is a failure, not "not found".
	b := statusServer(t, 200, "from b")
	c := parseChain(t, s.URL+","+b.URL)
	if _, _, err := c.FetchBytes(context.Background(), rel, 0); err == nil || errors.Is(err, upstream.ErrNotFound) {
		t.Errorf("chain Fetch: got %v, want a failure", err)
	}
	if b.count() != 0 {
		t.Error("after a truncated body with \",\", the next upstream was asked")
	}
}

func TestStalledBodyTimesOut(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("x"))
		w.(http.Flusher).Flush()
		select { // stall far longer than the timeout
		case <-r.Context().Done():
		case <-release:
		}
	})
	o := testOptions()
	o.Attempts = 2
	p, err := upstream.NewProxy(s.URL, o)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	err = p.Fetch(context.Background(), rel, 0, func(r io.Reader) error {
		var err error
		got, err = io.ReadAll(r)
		return err
	})
	if !errors.Is(err, upstream.ErrTimeout) {
		t.Fatalf("Fetch of a stalled body: got %v, want ErrTimeout", err)
	}
	if string(got) != "x" {
		t.Errorf("sink read %q before the stall, want %q", got, "x")
	}
	if s.count() != 2 {
		t.Errorf("%d requests, want 2 (a stall is retried)", s.count())
	}
}

func TestSlowDripWithinTimeoutSucceeds(t *testing.T) {
	// Each pause is well under the idle timeout; the whole transfer
	// takes longer than one timeout, which must not matter.
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range 8 {
			fmt.Fprintf(w, "%d", i)
			w.(http.Flusher).Flush()
			time.Sleep(40 * time.Millisecond)
		}
	})
	p, err := upstream.NewProxy(s.URL, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	data, err := p.FetchBytes(context.Background(), rel, 0)
	if err != nil || string(data) != "01234567" {
		t.Errorf("FetchBytes = %q, %v; want %q", data, err, "01234567")
	}
}

func TestNoHeadersTimesOut(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	o := testOptions()
	o.Attempts = 1
	p, err := upstream.NewProxy(s.URL, o)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.FetchBytes(context.Background(), rel, 0)
	if !errors.Is(err, upstream.ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	var ue *upstream.Error
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), s.URL) {
		t.Errorf("error %v does not name the upstream", err)
	}
}

func TestLimit(t *testing.T) {
	body := strings.Repeat("z", 1000)
	tests := []struct {
		name    string
		chunked bool
		limit   int64
		tooBig  bool
	}{
		{"content length over limit", false, 999, true},
		{"chunked body over limit", true, 999, true},
		{"chunked body far over limit", true, 10, true},
		{"content length at limit", false, 1000, false},
		{"chunked body at limit", true, 1000, false},
		{"no limit", true, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if !tc.chunked {
					w.Header().Set("Content-Length", fmt.Sprint(len(body)))
					io.WriteString(w, body)
					return
				}
				for i := 0; i < len(body); i += 100 {
					io.WriteString(w, body[i:i+100])
					w.(http.Flusher).Flush()
				}
			})
			c := parseChain(t, s.URL)
			data, _, err := c.FetchBytes(context.Background(), rel, tc.limit)
			if !tc.tooBig {
				if err != nil || string(data) != body {
					t.Errorf("FetchBytes = %d bytes, %v; want the whole body", len(data), err)
				}
				return
			}
			if !errors.Is(err, upstream.ErrTooLarge) {
				t.Fatalf("got %d bytes, %v; want ErrTooLarge", len(data), err)
			}
			if !strings.Contains(err.Error(), s.URL) {
				t.Errorf("error %q does not name the upstream", err)
			}
			if s.count() != 1 {
				t.Errorf("%d requests, want 1 (too large is not retried)", s.count())
			}
		})
	}
}

func TestSinkErrorIsReturnedAndNotRetried(t *testing.T) {
	s := statusServer(t, 200, "data")
	p, err := upstream.NewProxy(s.URL, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	errBad := errors.New("checksum mismatch")
	err = p.Fetch(context.Background(), rel, 0, func(r io.Reader) error { return errBad })
	if err != errBad {
		t.Errorf("Fetch: got %v, want the sink's error itself", err)
	}
	if s.count() != 1 {
		t.Errorf("%d requests, want 1", s.count())
	}
}

func TestCanceledContextStopsFetching(t *testing.T) {
	s := statusServer(t, http.StatusServiceUnavailable, "")
	p, err := upstream.NewProxy(s.URL, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.FetchBytes(ctx, rel, 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if s.count() > 0 {
		t.Errorf("%d requests with a canceled context", s.count())
	}
}

func TestRequestPathReachesUpstreamUnchanged(t *testing.T) {
	tests := []struct {
		base, rel, want string
	}{
		{"", "github.com/!burnt!sushi/toml/@v/v1.4.0.info", "/github.com/!burnt!sushi/toml/@v/v1.4.0.info"},
		{"", "/example.com/m/@v/list", "/example.com/m/@v/list"},
		{"/base/", "example.com/m/@v/list", "/base/example.com/m/@v/list"},
		{"/base", "example.com/m/@latest", "/base/example.com/m/@latest"},
		// Queries are forwarded as the client's literal text: characters
		// with a meaning in URLs must be escaped on the way out.
		{"", "example.com/m/@v/100%.info", "/example.com/m/@v/100%.info"},
		{"", "example.com/m/@v/a%2F..%2F..%2Fsecret.info", "/example.com/m/@v/a%2F..%2F..%2Fsecret.info"},
		{"", "example.com/m/@v/a#b.info", "/example.com/m/@v/a#b.info"},
		{"", "example.com/m/@v/a b.info", "/example.com/m/@v/a b.info"},
		{"", "example.com/m/@v/v1.0.0+incompatible.zip", "/example.com/m/@v/v1.0.0+incompatible.zip"},
		{"", "sumdb/sum.golang.org/lookup/example.com/m@v1.0.0", "/sumdb/sum.golang.org/lookup/example.com/m@v1.0.0"},
	}
	for _, tc := range tests {
		var gotPath, gotQuery string
		s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			gotPath, gotQuery = r.URL.Path, r.URL.RawQuery
		})
		p, err := upstream.NewProxy(s.URL+tc.base, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.FetchBytes(context.Background(), tc.rel, 0); err != nil {
			t.Errorf("FetchBytes(%q): %v", tc.rel, err)
			continue
		}
		if gotPath != tc.want || gotQuery != "" {
			t.Errorf("FetchBytes(%q) with base %q: upstream saw path %q, query %q; want path %q, no query", tc.rel, tc.base, gotPath, gotQuery, tc.want)
		}
	}
}

func TestPasswordsNeverShown(t *testing.T) {
	const secret = "s3cr3t-pa55"
	var auth atomic.Value
	notFound := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		u, pw, _ := r.BasicAuth()
		auth.Store(u + ":" + pw)
		http.Error(w, "no such module", http.StatusNotFound)
	})
	failing := statusServer(t, http.StatusInternalServerError, "")
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stalled := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	withPw := func(raw string) string {
		return strings.Replace(raw, "http://", "http://user:"+secret+"@", 1)
	}

	check := func(what, s string) {
		t.Helper()
		if strings.Contains(s, secret) {
			t.Errorf("%s shows the password: %q", what, s)
		}
	}

	c := parseChain(t, withPw(notFound.URL)+"|"+withPw(failing.URL)+","+withPw(refusedURL(t))+","+withPw(stalled.URL))
	check("Chain.String()", c.String())
	for _, p := range c.Proxies() {
		check("Proxy.String()", p.String())
	}
	if !strings.Contains(c.String(), "user:") {
		t.Errorf("Chain.String() = %q, want the user name kept", c.String())
	}

	// Each kind of failure, through the chain and through single proxies.
	_, _, err := c.FetchBytes(context.Background(), rel, 0)
	if err == nil {
		t.Fatal("FetchBytes succeeded")
	}
	check("chain error", err.Error())
	if got := auth.Load(); got != "user:"+secret {
		t.Errorf("upstream saw credentials %q, want the ones from the URL", got)
	}
	for _, u := range []string{notFound.URL, failing.URL, refusedURL(t), stalled.URL} {
		p, err := upstream.NewProxy(withPw(u), testOptions())
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.FetchBytes(context.Background(), rel, 0)
		if err == nil {
			t.Fatalf("FetchBytes from %s succeeded", u)
		}
		check("proxy error", err.Error())
		check("proxy error (%+v)", fmt.Sprintf("%+v", err))
	}
	nf := parseChain(t, withPw(notFound.URL)+","+withPw(notFound.URL))
	_, _, err = nf.FetchBytes(context.Background(), rel, 0)
	if !errors.Is(err, upstream.ErrNotFound) {
		t.Fatalf("got %v, want not found", err)
	}
	check("not found error", err.Error())

	// Invalid URLs holding a password: the error says what is wrong
	// without repeating the password.
	for _, raw := range []string{
		"http://user:" + secret + "@127.0.0.1:notaport/",
		"http://user:" + secret + "@127.0.0.1/%zz",
		"ftp://user:" + secret + "@127.0.0.1/",
		"user:" + secret + "@127.0.0.1",
		"http://user:" + secret + "@",
		"http://user:" + secret + "@127.0.0.1/ok|http://user:" + secret + "@[::1/",
	} {
		_, err := upstream.ParseChain(raw, testOptions())
		if err == nil {
			t.Errorf("ParseChain(%q) succeeded", raw)
			continue
		}
		check("ParseChain error", err.Error())
		if strings.Contains(raw, "notaport") && !strings.Contains(err.Error(), `invalid port ":notaport"`) {
			t.Errorf("ParseChain(%q) error %q does not say what is wrong", raw, err)
		}
		if strings.Contains(raw, "|") {
			continue
		}
		_, err = upstream.NewProxy(raw, testOptions())
		if err == nil {
			t.Errorf("NewProxy(%q) succeeded", raw)
			continue
		}
		check("NewProxy error", err.Error())
	}
}

func TestErrorBodiesAreSanitized(t *testing.T) {
	body := "first line\nsecond\tline\x1b[31m\x00\r\u202e\x07 end" + strings.Repeat("x", 5000)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, body)
	})
	c := parseChain(t, s.URL)
	_, _, err := c.FetchBytes(context.Background(), rel, 0)
	if err == nil {
		t.Fatal("FetchBytes succeeded")
	}
	p, _ := upstream.NewProxy(s.URL, testOptions())
	_, perr := p.FetchBytes(context.Background(), rel, 0)
	var ue *upstream.Error
	if !errors.As(perr, &ue) {
		t.Fatalf("error %v is not an *upstream.Error", perr)
	}
	if !strings.HasPrefix(ue.Body, "first line second line[31m") {
		t.Errorf("Error.Body = %.60q..., want it to start with the body's text, newline and tab as spaces", ue.Body)
	}
	if len(ue.Body) > 400 {
		t.Errorf("Error.Body is %d bytes long, want it truncated", len(ue.Body))
	}
	for _, msg := range []string{err.Error(), perr.Error(), ue.Body} {
		if len(msg) > 600 {
			t.Errorf("error message is %d bytes long, want the body truncated", len(msg))
		}
		for _, r := range msg {
			if !unicode.IsPrint(r) {
				t.Errorf("error message %.80q... holds non-printable %U", msg, r)
				break
			}
		}
	}
}

func TestErrorIsNotFoundOnlyForNotFoundStatuses(t *testing.T) {
	tests := []struct {
		status int
		want   bool
	}{
		{0, false},
		{400, true},
		{401, false},
		{403, true},
		{404, true},
		{410, true},
		{429, false},
		{500, false},
		{503, false},
	}
	for _, tc := range tests {
		e := &upstream.Error{Source: "http://u", Path: rel, Status: tc.status, Err: errors.New("x")}
		if got := errors.Is(e, upstream.ErrNotFound); got != tc.want {
			t.Errorf("status %d: errors.Is(ErrNotFound) = %v, want %v", tc.status, got, tc.want)
		}
	}
}

func TestProxyURL(t *testing.T) {
	p, err := upstream.NewProxy("https://proxy.example/base/", upstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"example.com/m/@v/list", "/example.com/m/@v/list"} {
		if got, want := p.URL(rel), "https://proxy.example/base/example.com/m/@v/list"; got != want {
			t.Errorf("URL(%q) = %q, want %q", rel, got, want)
		}
	}
}
