package direct

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Sentinel errors, matched with errors.Is against an [*Error] of the
// corresponding [Kind].
var (
	// ErrNotFound means the module or version does not exist: the
	// repository is gone or was never there, or it has no such version.
	ErrNotFound = errors.New("direct: not found")
	// ErrTimeout means the go command did not finish in time.
	ErrTimeout = errors.New("direct: timed out")
)

// Kind says why a fetch failed.
//
// The kind is decided from structure, never from the text of a message:
// the go command's exit status and JSON output, the Fetcher's own
// timeout and the caller's context; and, when the go command fails for
// another reason, two probes. First the module's version list is asked
// for (`go list -m -versions`, briefly cached): if it works, the
// repository is reachable with the configured credentials, so a failed
// tagged version missing from the list, a failed pseudo-version and a
// failed query are NotFound, and a failed listed version is Failed. If
// the list cannot be had either, the repository is probed over HTTP with
// the same proxy settings and netrc credentials the go command has: its
// go-import meta tag (https://<path>?go-get=1, and http:// for Insecure
// hosts; github.com and paths with a ".git" element are known without
// one), then <repository URL>/info/refs?service=git-upload-pack. 404 or
// 410 (from info/refs, or from a go-get page without a meta tag) means
// NotFound, 401 or 403 Auth, a connection failure Network, and anything
// else Failed: a repository that answers normally, an ssh or non-git
// repository (not probed; so is one that Options.GitConfig rewrites to an
// ssh URL), or a plain-http one on a host not in Insecure.
//
// Hosting services that hide private repositories answer 401 for a
// repository that does not exist when no credentials are sent, so such a
// repository reports Auth without credentials and NotFound with them.
type Kind int

// The kinds of failure.
const (
	// Failed is any other failure: the repository answers, but the go
	// command could not make the version (a malformed go.mod, a zip over
	// the size limits, a git error), or the caller cancelled.
	Failed Kind = iota
	// NotFound: the module or version does not exist. Is(ErrNotFound).
	NotFound
	// Auth: the repository refused the credentials, or wants some.
	Auth
	// Network: the repository's host could not be reached.
	Network
	// Timeout: the go command did not finish within Options.Timeout or the
	// caller's deadline. Is(ErrTimeout).
	Timeout
)

// String returns a short lower-case name for k.
func (k Kind) String() string {
	switch k {
	case Failed:
		return "failed"
	case NotFound:
		return "not found"
	case Auth:
		return "authentication failed"
	case Network:
		return "network error"
	case Timeout:
		return "timed out"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is a failed fetch. Detail never contains a configured credential.
type Error struct {
	// Op is "download", "versions" or "query".
	Op string
	// Module is the module path.
	Module string
	// Version is the version or query asked for ("" for versions).
	Version string
	// Kind says why it failed.
	Kind Kind
	// Detail is the end of the go command's output (or of the reason the
	// request was refused), with credentials replaced by "xxxxx".
	Detail string

	err error // the context's error when the caller or the timeout stopped it
}

// Error returns "direct: <op> <module>[@<version>]: <kind>: <detail>".
func (e *Error) Error() string {
	mv := e.Module
	if e.Version != "" {
		mv += "@" + e.Version
	}
	s := "direct: " + e.Op + " " + mv + ": " + e.Kind.String()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Is reports whether target is the sentinel error of e's Kind.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Kind == NotFound
	case ErrTimeout:
		return e.Kind == Timeout
	}
	return false
}

// Unwrap returns context.Canceled or context.DeadlineExceeded when the
// caller's context or the timeout ended the fetch, else nil.
func (e *Error) Unwrap() error { return e.err }

// redactor removes credentials from text that leaves the package.
type redactor struct {
	secrets []string // longest first
}

// userinfo matches the user information of a URL ("scheme://user:pass@").
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@`)

// detailLines and detailBytes bound an Error's Detail.
const (
	detailLines = 12
	detailBytes = 4096
)

func newRedactor(secrets []string) *redactor {
	var s []string
	seen := make(map[string]bool)
	for _, x := range secrets {
		if x != "" && !seen[x] {
			seen[x] = true
			s = append(s, x)
		}
	}
	sort.Slice(s, func(i, j int) bool { return len(s[i]) > len(s[j]) })
	return &redactor{secrets: s}
}

// redact replaces every secret and every URL's user information in s
// with "xxxxx".
func (r *redactor) redact(s string) string {
	for _, x := range r.secrets {
		s = strings.ReplaceAll(s, x, "xxxxx")
	}
	return userinfo.ReplaceAllString(s, "${1}xxxxx@")
}

// tail returns the last lines of out, trimmed and redacted.
func (r *redactor) tail(out []byte) string {
	s := strings.TrimSpace(string(out))
	lines := strings.Split(s, "\n")
	if len(lines) > detailLines {
		lines = lines[len(lines)-detailLines:]
	}
	s = strings.Join(lines, "\n")
	// Redact before cutting, so a secret is never cut in half.
	s = r.redact(s)
	if len(s) > detailBytes {
		s = "..." + s[len(s)-detailBytes:]
	}
	return s
}
