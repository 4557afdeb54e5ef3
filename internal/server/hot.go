package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agora-mirror/agora/internal/access"
)

// A HotListener answers the hottest requests below net/http: GET and HEAD
// of .info and .mod files the mirror holds in memory, and of zips it has
// answered before from a disk store, on plain HTTP/1.1 keep-alive
// connections. It reads each request head itself; when the request is
// one of those, in the plainest form (see parseHot), it writes the answer
// straight to the connection, the same status, headers and body the
// Handler would give (a zip's body with sendfile), and records the
// request as the Handler does (metrics, request log). Any other request
// goes to net/http: the connection, with the bytes read so far, is handed
// to the http.Server through Accept and stays with it. A connection of a
// go command that asks for files held is served without net/http's
// per-request costs (its request parsing, header maps, contexts,
// response buffering), which make up most of the CPU time of such an
// answer (see BENCHMARKS.md).
//
// It is for plain HTTP only: TLS is left to http.Server.ServeTLS.
type HotListener struct {
	ln     net.Listener
	h      *Handler
	idle   time.Duration
	header time.Duration

	conns chan net.Conn // handed to net/http
	done  chan struct{} // closed by Close
	once  sync.Once

	mu      sync.Mutex
	raw     map[*hotConn]struct{} // connections served here
	serving sync.WaitGroup        // their goroutines
}

// hotHeadMax bounds the request head the hot path reads; longer heads go
// to net/http (which takes up to its MaxHeaderBytes).
const hotHeadMax = 4096

// NewHotListener starts accepting on ln for h. idle bounds the wait for
// the next request on a kept-alive connection and header the time to
// read a request head, as http.Server's IdleTimeout and
// ReadHeaderTimeout do for the connections it has. Serve the returned
// listener with an http.Server whose Handler is h; closing it (as
// http.Server.Shutdown does) closes ln and the connections waiting here
// for a request.
func NewHotListener(h *Handler, ln net.Listener, idle, header time.Duration) *HotListener {
	l := &HotListener{ln: ln, h: h, idle: idle, header: header,
		conns: make(chan net.Conn), done: make(chan struct{}), raw: make(map[*hotConn]struct{})}
	go l.acceptLoop()
	return l
}

// Accept implements net.Listener: it returns the connections handed to
// net/http.
func (l *HotListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Addr implements net.Listener.
func (l *HotListener) Addr() net.Addr { return l.ln.Addr() }

// Close implements net.Listener: it stops accepting and closes the
// connections waiting here for their next request; one being answered
// is closed once its answer is written.
func (l *HotListener) Close() error {
	var err error
	l.once.Do(func() {
		l.mu.Lock()
		close(l.done) // under mu: no connection is added after this
		for c := range l.raw {
			if c.state.CompareAndSwap(hotIdle, hotClosed) {
				c.Close()
			}
		}
		l.mu.Unlock()
		err = l.ln.Close()
	})
	return err
}

// Wait waits, after Close, until the answers being written here are
// written (a zip to a slow client may take a while), or until ctx ends;
// then it closes their connections.
// http.Server.Shutdown waits for the connections net/http has; Wait is
// the same for the others.
func (l *HotListener) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		l.serving.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// Out of time: end the answers still being written.
		l.mu.Lock()
		for c := range l.raw {
			c.Close()
		}
		l.mu.Unlock()
		return ctx.Err()
	}
}

func (l *HotListener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// acceptLoop accepts connections until the listener is closed, backing
// off on errors such as running out of file descriptors, as
// http.Server.Serve does.
func (l *HotListener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.closed() || errors.Is(err, net.ErrClosed) {
				l.Close()
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.h.log.Warn("accepting a connection", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		hc := &hotConn{Conn: c}
		l.mu.Lock()
		if l.closed() {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.raw[hc] = struct{}{}
		l.serving.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.serving.Done()
			l.serve(hc)
		}()
	}
}

// The states of a connection served here.
const (
	hotActive int32 = iota // reading or answering a request
	hotIdle                // waiting for the next request
	hotClosed              // closed by HotListener.Close
)

type hotConn struct {
	net.Conn
	state atomic.Int32
}

// serve answers the requests of one connection (registered in l.raw by
// acceptLoop) until one is not for the hot path, then hands the
// connection to net/http.
func (l *HotListener) serve(c *hotConn) {
	nc := c.Conn
	handed := false
	defer func() {
		l.mu.Lock()
		delete(l.raw, c)
		l.mu.Unlock()
		if !handed {
			nc.Close()
		}
	}()

	br := bufio.NewReaderSize(nc, hotHeadMax)
	var out []byte
	// For request logs, when the operator asked for addresses: the
	// peer's, or, from a trusted proxy, each request's X-Forwarded-For.
	client, peer := "", ""
	if l.h.logAddr {
		peer = nc.RemoteAddr().String()
		client = access.ClientAddr(peer, nil, nil)
	}
	perRequest := l.h.logAddr && len(l.h.proxies) > 0
	// The first request must come within the header timeout, as
	// net/http's ReadHeaderTimeout; later ones within the idle timeout.
	wait := l.header
	for {
		c.state.Store(hotIdle)
		if l.closed() {
			return
		}
		nc.SetReadDeadline(time.Now().Add(wait))
		wait = l.idle
		_, err := br.Peek(1)
		if !c.state.CompareAndSwap(hotIdle, hotActive) || err != nil {
			return // closed by Close, or the client left or idled out
		}
		start := time.Now()
		nc.SetReadDeadline(start.Add(l.header))
		head, err := readHead(br)
		if err != nil {
			return
		}
		var ans hotAnswer
		ok := head != nil
		if ok {
			ans, ok = l.h.hot(head)
		}
		if !ok {
			// Everything else, and the rest of the connection, is
			// net/http's, with the bytes read so far.
			nc.SetReadDeadline(time.Time{})
			select {
			case l.conns <- &handedConn{Conn: nc, r: br}:
				handed = true
			case <-l.done:
			}
			return
		}
		if perRequest && l.h.log.Enabled(context.Background(), slog.LevelInfo) {
			client = access.ClientAddr(peer, forwardedFor(head), l.h.proxies)
		}
		br.Discard(len(head))
		out = ans.appendTo(out[:0])
		sendZip := ans.zip != nil && !ans.isHead()
		if sendZip {
			// The head and the start of the body in full packets, as
			// nginx's tcp_nopush: corked until the body is sent.
			cork(nc, true)
		}
		_, err = nc.Write(out)
		if sendZip && err == nil {
			// sendfile, through the TCP connection's ReadFrom.
			_, err = io.CopyN(nc, ans.zip, ans.size)
		}
		if sendZip {
			cork(nc, false)
		}
		if ans.zip != nil {
			ans.zip.Close()
		}
		if err != nil {
			return
		}
		l.h.done(context.Background(), ans.method, ans.path, client, start,
			http.StatusOK, ans.written(), "hit", ans.endpoint)
	}
}

// readHead returns the request head at the start of br's buffer, through
// the blank line that ends it, without consuming it; nil if it is longer
// than hotHeadMax. It fails if the connection fails or times out first.
func readHead(br *bufio.Reader) ([]byte, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return buf[:i+4], nil
		}
		if len(buf) == br.Size() {
			return nil, nil
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

// hotAnswer is the answer to a request of the hot path.
type hotAnswer struct {
	method, path string
	endpoint     string // for metrics: "info", "mod" or "zip"
	ctype        string
	body         []byte   // .info and .mod
	zip          *os.File // a zip, sent with sendfile after the headers
	size         int64    // the zip's length
	modTime      time.Time
}

// isHead reports a HEAD request: the headers, no body.
func (a *hotAnswer) isHead() bool { return a.method == http.MethodHead }

// appendTo appends the HTTP/1.1 response head (and an .info or .mod
// body): the headers the Handler's answer carries, and net/http's Date.
// A zip's are those of serveZip and http.ServeContent.
func (a *hotAnswer) appendTo(b []byte) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\n"...)
	if a.zip != nil {
		b = append(b, "Accept-Ranges: bytes\r\n"...)
	}
	b = append(b, "Cache-Control: "...)
	b = append(b, cacheForever...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, a.length(), 10)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, a.ctype...)
	b = append(b, "\r\nDate: "...)
	b = append(b, httpDate()...)
	if a.zip != nil {
		b = append(b, "\r\nEtag: "...)
		b = append(b, zipETag(a.modTime, a.size)...)
		b = append(b, "\r\nLast-Modified: "...)
		b = a.modTime.UTC().AppendFormat(b, http.TimeFormat)
	}
	b = append(b, "\r\n\r\n"...)
	if !a.isHead() {
		b = append(b, a.body...)
	}
	return b
}

// length is the body's length.
func (a *hotAnswer) length() int64 {
	if a.zip != nil {
		return a.size
	}
	return int64(len(a.body))
}

// written is the number of body bytes sent.
func (a *hotAnswer) written() int64 {
	if a.isHead() {
		return 0
	}
	return a.length()
}

// hot answers a request head if it is for the hot path: an .info or .mod
// file held in memory (Mirror.Cached), or a zip answered before from a
// disk store (Mirror.HeldZip) and asked for without a range or a
// condition, of a module not under access control, asked for in the
// plainest form (parseHot). A zip answer holds the open file: the caller
// sends and closes it.
func (h *Handler) hot(head []byte) (hotAnswer, bool) {
	if h.m == nil {
		return hotAnswer{}, false
	}
	method, target, conditional, ok := parseHot(head)
	if !ok {
		return hotAnswer{}, false
	}
	p := string(target)
	if strings.HasSuffix(p, ".zip") {
		if conditional || h.zipRedirect > 0 {
			return hotAnswer{}, false
		}
		return h.hotZip(method, p)
	}
	data, ctype, endpoint, ok := h.cachedSmall(p)
	if !ok {
		return hotAnswer{}, false
	}
	return hotAnswer{method: method, path: p, body: data,
		endpoint: endpoint, ctype: ctype[0]}, true
}

// hotZip answers a zip held in a disk store, opened by its request path.
func (h *Handler) hotZip(method, p string) (hotAnswer, bool) {
	obj, ok := h.m.HeldZip(context.Background(), p, h.open)
	if !ok {
		return hotAnswer{}, false
	}
	f, isFile := obj.(osFiler)
	if !isFile {
		obj.Close()
		return hotAnswer{}, false
	}
	return hotAnswer{method: method, path: p, endpoint: "zip", ctype: "application/zip",
		zip: f.OSFile(), size: obj.Size(), modTime: obj.ModTime()}, true
}

// zipETag is a zip's ETag: objects are written once, so their time and
// size identify the content.
func zipETag(modTime time.Time, size int64) string {
	return `"` + strconv.FormatInt(modTime.UnixNano(), 16) + "-" + strconv.FormatInt(size, 16) + `"`
}

// parseHot parses a request head for the hot path. It accepts only what
// needs no judgement, and leaves everything else to net/http (which may
// answer it, or refuse it with a 400): a request line "GET <path>
// HTTP/1.1" (or HEAD) whose path is an .info, .mod or .zip path with no
// query, no %-escapes and nothing but printable ASCII; header lines "Name:
// value" with a token name and no control characters in the value;
// exactly one Host; no body (Content-Length absent or 0, no
// Transfer-Encoding); no Expect or Upgrade; and no Connection header
// other than keep-alive, so that the connection simply stays open.
// conditional reports a Range or a precondition (If-*), which a zip's
// answer would depend on (the .info and .mod answers do not).
func parseHot(head []byte) (method string, target []byte, conditional, ok bool) {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	m, line, ok1 := bytes.Cut(line, []byte(" "))
	target, proto, ok2 := bytes.Cut(line, []byte(" "))
	switch {
	case !ok1 || !ok2 || string(proto) != "HTTP/1.1":
		return "", nil, false, false
	case string(m) == http.MethodGet:
		method = http.MethodGet
	case string(m) == http.MethodHead:
		method = http.MethodHead
	default:
		return "", nil, false, false
	}
	if len(target) == 0 || target[0] != '/' || !(bytes.HasSuffix(target, []byte(".info")) ||
		bytes.HasSuffix(target, []byte(".mod")) || bytes.HasSuffix(target, []byte(".zip"))) {
		return "", nil, false, false
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f || c == '?' || c == '%' || c == '#' {
			return "", nil, false, false
		}
	}
	hosts := 0
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if len(line) == 0 {
			break // the blank line that ends the head
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found || len(name) == 0 {
			return "", nil, false, false
		}
		for _, c := range name {
			if !isTokenChar(c) {
				return "", nil, false, false // includes a folded line's leading space
			}
		}
		for _, c := range value {
			if c < ' ' && c != '\t' || c == 0x7f {
				return "", nil, false, false
			}
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Host"):
			if !validHost(value) {
				return "", nil, false, false // net/http answers 400
			}
			hosts++
		case asciiEqualFold(name, "Content-Length"):
			if string(value) != "0" {
				return "", nil, false, false
			}
		case asciiEqualFold(name, "Connection"):
			if !asciiEqualFold(value, "keep-alive") {
				return "", nil, false, false
			}
		case asciiEqualFold(name, "Transfer-Encoding"), asciiEqualFold(name, "Expect"), asciiEqualFold(name, "Upgrade"):
			return "", nil, false, false
		case asciiEqualFold(name, "Range"), len(name) > 3 && asciiEqualFold(name[:3], "If-"):
			conditional = true
		}
	}
	return method, target, conditional, hosts == 1
}

// forwardedFor returns the values of a request head's X-Forwarded-For
// header lines, in order. It reads only heads parseHot accepted.
func forwardedFor(head []byte) []string {
	var vs []string
	_, rest, _ := bytes.Cut(head, []byte("\r\n"))
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, _ := bytes.Cut(line, []byte(":"))
		if asciiEqualFold(name, "X-Forwarded-For") {
			vs = append(vs, string(bytes.TrimSpace(value)))
		}
	}
	return vs
}

// validHost reports whether a Host header's value has only the bytes
// net/http accepts there (golang.org/x/net/http/httpguts.ValidHostHeader).
func validHost(v []byte) bool {
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!$%&'()*+,-.:;=[]_~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 9110,
// section 5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// asciiEqualFold reports whether b equals s, ignoring ASCII case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// httpDate returns the current time in the Date header's format, as
// net/http writes it; it is formatted at most once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.sec == now {
		return d.text
	}
	d := &dateText{sec: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	sec  int64
	text string
}

var cachedDate atomic.Pointer[dateText]

// handedConn is a connection handed to net/http: reads start with the
// bytes the hot path buffered. It keeps the connection's ReadFrom (so
// net/http still sends files with sendfile) and CloseWrite.
type handedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *handedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// ReadFrom lets net/http send files with the connection's own ReadFrom
// (sendfile for a TCP connection).
func (c *handedConn) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, src)
}

// CloseWrite lets net/http half-close the connection as it does a TCP
// connection's.
func (c *handedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
