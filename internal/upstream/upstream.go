// Package upstream fetches module files from a chain of upstream module
// proxies, with the go command's GOPROXY rules.
//
// A chain is written as GOPROXY is: proxy URLs separated by "," or "|".
// After a "," the next proxy is tried only when the previous one answered
// "not found"; after a "|" it is tried after any error. "off" ends the
// chain: nothing after it is asked. "direct" entries are not proxies; the
// chain records them (Chain.Direct) for the caller to handle.
//
// Unlike the go command, an upstream's 400 and 403 answers also count as
// "not found": some proxies answer that way for what they do not hold, and
// a mirror that passed them on as errors would break its clients'
// fallbacks. Requests are retried with backoff on connection errors, 429
// and 5xx answers; a body that stalls is abandoned after the idle timeout.
//
// The package knows nothing of storage or of what the bytes mean.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ErrNotFound is matched by errors meaning that no upstream has the
// requested file.
var ErrNotFound = errors.New("not found")

// ErrOff is returned by a chain that may not fetch at all ("off"). It
// matches ErrNotFound too, since for a client the file is simply not here.
var ErrOff = &offError{}

type offError struct{}

func (*offError) Error() string        { return "not held here, and fetching from upstreams is off" }
func (*offError) Is(target error) bool { return target == ErrNotFound }

// ErrTimeout is matched by errors from an upstream that did not answer, or
// stopped sending, within the timeout.
var ErrTimeout = errors.New("timed out")

// ErrTooLarge is returned when a body exceeds the limit given to Fetch.
var ErrTooLarge = errors.New("response too large")

// NotFoundError reports that every source asked answered "not found". It
// lists each source with its answer, for the client's error message.
type NotFoundError struct {
	Path    string
	Answers []string // "<source>: <answer>"
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("%s: not found: %s", e.Path, strings.Join(e.Answers, "; "))
}

// Is reports whether target is ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// Error is a failure of one upstream: an HTTP status other than 200, or a
// network error. It names the upstream.
type Error struct {
	Source string // the upstream's URL, with any password redacted
	Path   string // the path asked for, relative to the upstream's URL
	Status int    // the HTTP status, or 0 for a network error
	Body   string // the start of the error body, printable characters only
	Err    error  // the network error, when Status is 0
}

func (e *Error) Error() string {
	if e.Status != 0 {
		msg := fmt.Sprintf("upstream %s: GET %s: %d %s", e.Source, e.Path, e.Status, http.StatusText(e.Status))
		if e.Body != "" {
			msg += ": " + e.Body
		}
		return msg
	}
	return fmt.Sprintf("upstream %s: GET %s: %v", e.Source, e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether the upstream's answer means "not found".
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && notFoundStatus(e.Status)
}

func notFoundStatus(code int) bool {
	switch code {
	case http.StatusNotFound, http.StatusGone, http.StatusBadRequest, http.StatusForbidden:
		return true
	}
	return false
}

func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500
}

// Options tune how upstreams are asked.
type Options struct {
	// Client makes the requests; nil means a client with sensible
	// connection limits and the environment's HTTP proxy settings.
	Client *http.Client
	// Timeout bounds the wait for response headers and any pause while
	// reading a body. Zero means 30 seconds.
	Timeout time.Duration
	// Attempts is how often a request is tried against one upstream on
	// connection errors, 429 and 5xx. Zero means 3.
	Attempts int
	// Backoff is the first pause between attempts; it doubles after
	// each. Zero means 250ms. A Retry-After header is obeyed up to
	// MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// Logger receives a line for each retried request.
	Logger *slog.Logger
}

// NewClient returns the HTTP client used when Options.Client is nil.
func NewClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{Transport: t}
}

// Proxy is one upstream module proxy.
type Proxy struct {
	base *url.URL
	name string
	opts *Options
}

// NewProxy returns the upstream proxy at base URL rawURL.
func NewProxy(rawURL string, opts Options) (*Proxy, error) {
	o := opts.withDefaults()
	return newProxy(rawURL, &o)
}

func (o Options) withDefaults() Options {
	if o.Client == nil {
		o.Client = NewClient()
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = 250 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func newProxy(rawURL string, o *Options) (*Proxy, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Parse's error quotes the URL, password included: parse
		// the redacted form again for an error that is safe to show.
		shown := redactUnparsed(rawURL)
		if _, err2 := url.Parse(shown); err2 != nil {
			err = err2
		} else {
			err = errors.New("invalid user information")
		}
		return nil, fmt.Errorf("upstream %q: %w", shown, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		shown := u.Redacted()
		if u.Opaque != "" { // "user:password@host" parses as scheme "user"
			shown = u.Scheme + ":..."
		}
		return nil, fmt.Errorf("upstream %q: want an http or https URL", shown)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return &Proxy{base: u, name: u.Redacted(), opts: o}, nil
}

// redactUnparsed replaces the password in a URL that url.Parse refused,
// as url.URL.Redacted does for one it accepted.
func redactUnparsed(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	auth := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		auth = rest[:i]
	}
	at := strings.LastIndex(auth, "@")
	if at < 0 {
		return raw
	}
	user, _, hasPassword := strings.Cut(auth[:at], ":")
	if !hasPassword {
		return raw
	}
	return raw[:len(raw)-len(rest)] + user + ":xxxxx" + rest[at:]
}

// String returns the proxy's URL with any password redacted.
func (p *Proxy) String() string { return p.name }

// URL returns the URL for a path relative to the proxy's base. The path
// is escaped, so that characters such as "%", "#" and "?" (which a version
// query may hold) reach the upstream as they are, not as URL syntax.
func (p *Proxy) URL(rel string) string {
	u := *p.base
	u.Path += "/" + strings.TrimPrefix(rel, "/")
	return u.String()
}

// bodyError marks a failure while reading an upstream body, so that
// Fetch can tell it from the sink's own errors and retry.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// idleReader reads an upstream body, re-arming the idle timer on every read
// and marking read errors as bodyErrors.
type idleReader struct {
	r       io.Reader
	timer   *time.Timer
	timeout time.Duration
	n, max  int64
	ctx     context.Context
}

func (r *idleReader) Read(p []byte) (int, error) {
	if r.max > 0 && int64(len(p)) > r.max-r.n+1 {
		p = p[:r.max-r.n+1]
	}
	n, err := r.r.Read(p)
	r.timer.Reset(r.timeout)
	r.n += int64(n)
	if r.max > 0 && r.n > r.max {
		return n, ErrTooLarge
	}
	if err != nil && err != io.EOF {
		if cause := context.Cause(r.ctx); errors.Is(cause, ErrTimeout) {
			err = cause
		}
		return n, &bodyError{err}
	}
	return n, err
}

// Fetch asks the proxy for rel (a path such as "example.com/m/@v/list")
// and calls sink with the body of a 200 answer. If reading the body fails
// mid-way, the request is retried and sink is called again with a new
// body; sink must therefore start afresh on each call. limit bounds the
// body's length (0: no bound). Errors are *Error (or wrap it), the sink's
// own errors, or ErrTooLarge.
func (p *Proxy) Fetch(ctx context.Context, rel string, limit int64, sink func(io.Reader) error) error {
	o := p.opts
	delay := o.Backoff
	var err error
	for attempt := 1; ; attempt++ {
		var retryAfter time.Duration
		retryAfter, err = p.fetchOnce(ctx, rel, limit, sink)
		if err == nil || attempt >= o.Attempts || ctx.Err() != nil || !retryable(err) {
			return err
		}
		wait := delay + rand.N(delay/2+1)
		if retryAfter > 0 {
			wait = min(retryAfter, o.MaxBackoff)
		}
		o.Logger.Warn("upstream request failed; retrying", "upstream", p.name, "path", rel, "attempt", attempt, "wait", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
		delay = min(delay*2, o.MaxBackoff)
	}
}

func retryable(err error) bool {
	if errors.Is(err, ErrTooLarge) {
		return false
	}
	var be *bodyError
	if errors.As(err, &be) {
		return true
	}
	var ue *Error
	if errors.As(err, &ue) {
		return ue.Status == 0 || retryableStatus(ue.Status)
	}
	return false
}

func (p *Proxy) fetchOnce(ctx context.Context, rel string, limit int64, sink func(io.Reader) error) (time.Duration, error) {
	o := p.opts
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(o.Timeout, func() {
		cancel(fmt.Errorf("%w: no data for %v", ErrTimeout, o.Timeout))
	})
	defer timer.Stop()

	fail := func(status int, body string, err error) *Error {
		return &Error{Source: p.name, Path: rel, Status: status, Body: body, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL(rel), nil)
	if err != nil {
		return 0, fail(0, "", err)
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, ErrTimeout) {
			err = cause
		} else {
			// Drop the URL from url.Error: Source and Path say it.
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err
			}
		}
		return 0, fail(0, "", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return parseRetryAfter(resp.Header.Get("Retry-After")), fail(resp.StatusCode, printable(body), nil)
	}
	if limit > 0 && resp.ContentLength > limit {
		return 0, fmt.Errorf("upstream %s: GET %s: %w (%d bytes, limit %d)", p.name, rel, ErrTooLarge, resp.ContentLength, limit)
	}
	r := &idleReader{r: resp.Body, timer: timer, timeout: o.Timeout, max: limit, ctx: ctx}
	if err := sink(r); err != nil {
		var be *bodyError
		switch {
		case errors.As(err, &be):
			return 0, fail(0, "", fmt.Errorf("reading body: %w", be.err))
		case errors.Is(err, ErrTooLarge):
			return 0, fmt.Errorf("upstream %s: GET %s: %w (limit %d bytes)", p.name, rel, ErrTooLarge, limit)
		}
		return 0, err
	}
	// A body shorter than its Content-Length surfaces as a read error
	// above; a sink that stopped early is its own business.
	return 0, nil
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// printable returns the first line-ish part of an error body with
// non-printable characters removed, so it can be quoted in messages.
func printable(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
}
