// Package access decides who may read which modules. Clients present a
// token as the password of HTTP Basic authentication (so ~/.netrc and the
// go command's GOAUTH work unchanged) or as a Bearer token. Tokens are
// stored as SHA-256 hashes (package meta) and each grants reading the
// module paths matching its patterns. Module paths matching the protected
// patterns need such a token; others stay open. Failed attempts are rate
// limited per client address (ClientAddr: behind trusted proxies, the
// one their X-Forwarded-For names).
package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"

	"github.com/agora-mirror/agora/internal/meta"
)

// Errors of Check, each with its HTTP meaning.
var (
	// ErrUnauthenticated: credentials are needed (401).
	ErrUnauthenticated = errors.New("authentication required")
	// ErrBadToken: the credentials given are not a token in force (401).
	ErrBadToken = errors.New("invalid or revoked token")
	// ErrForbidden: the token may not read the module (403).
	ErrForbidden = errors.New("token not allowed to read this module")
	// ErrTooManyFailures: this client failed too often lately (429).
	ErrTooManyFailures = errors.New("too many failed authentication attempts")
)

// Tokens finds tokens by hash. *meta.DB implements it.
type Tokens interface {
	TokenByHash(ctx context.Context, hash string) (meta.Token, error)
}

// Hash returns the stored form of a token: its hex SHA-256.
func Hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// NewToken returns a new random token (256 bits).
func NewToken() string {
	var b [32]byte
	rand.Read(b[:])
	return "agora_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// Options configure a Policy.
type Options struct {
	// Protected are the module path patterns (GOPRIVATE syntax; "*" for
	// every module) that only a token allowing them may read. Empty
	// means access control is off.
	Protected string
	Tokens    Tokens
	// MaxFailures is how many failed attempts a client address may make
	// per FailureWindow before it is refused for the rest of the window.
	// Zero means 10 per minute.
	MaxFailures   int
	FailureWindow time.Duration
	// CacheTTL bounds how long a token found valid is trusted without
	// asking the database again (so a revocation takes effect within it).
	// Zero means 30 seconds.
	CacheTTL time.Duration
	// TrustedProxies are the reverse proxies in front of Agora: failures
	// of a request from one of them count against the client its
	// X-Forwarded-For header names (ClientAddr).
	TrustedProxies []netip.Prefix
}

// Policy is the access control in force.
type Policy struct {
	o Options

	mu       sync.Mutex
	valid    map[string]cached      // token hash -> identity, when last found valid
	failures map[string]*failWindow // client address -> failures
}

// cached is a token found valid: trusted without asking the database for
// CacheTTL, and exempt from an address's failure limit for knownFor.
type cached struct {
	id      *Identity
	validAt time.Time
}

// knownFor is how long a token found valid still passes an address that
// is over its failure limit.
const knownFor = time.Hour

type failWindow struct {
	start time.Time
	n     int
}

// NormalizePatterns returns a comma-separated pattern list with the spaces
// around each pattern removed and empty ones dropped, as
// module.MatchPrefixPatterns needs it ("a.example, b.example" would
// otherwise not match b.example).
func NormalizePatterns(patterns string) string {
	var out []string
	for _, p := range strings.Split(patterns, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ",")
}

// New returns a Policy; with no protected patterns it allows everything.
func New(o Options) *Policy {
	o.Protected = NormalizePatterns(o.Protected)
	if o.MaxFailures <= 0 {
		o.MaxFailures = 10
	}
	if o.FailureWindow <= 0 {
		o.FailureWindow = time.Minute
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = 30 * time.Second
	}
	return &Policy{o: o, valid: make(map[string]cached), failures: make(map[string]*failWindow)}
}

// Enabled reports whether any module is protected.
func (p *Policy) Enabled() bool { return p != nil && p.o.Protected != "" }

// Identity is an authenticated client.
type Identity struct {
	Name     string // the token's name
	Patterns string // what it may read
}

// Protected reports whether reading path needs a token that allows it.
func (p *Policy) Protected(path string) bool {
	return p.Enabled() && module.MatchPrefixPatterns(p.o.Protected, path)
}

// MayRead reports whether id (nil: no credentials) may read path.
func (p *Policy) MayRead(id *Identity, path string) bool {
	if !p.Protected(path) {
		return true
	}
	return id != nil && module.MatchPrefixPatterns(id.Patterns, path)
}

// credential returns the token a request presents, if any.
func credential(r *http.Request) (string, bool) {
	if _, pass, ok := r.BasicAuth(); ok {
		return pass, true
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(tok), true
	}
	return "", false
}

// Authenticate returns the identity a request's credentials establish:
// nil and no error when there are none; ErrBadToken when they are wrong;
// ErrTooManyFailures when the client failed too often lately.
func (p *Policy) Authenticate(r *http.Request) (*Identity, error) {
	tok, ok := credential(r)
	if !ok || !p.Enabled() {
		return nil, nil
	}
	addr := ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), p.o.TrustedProxies)
	h := Hash(tok)
	p.mu.Lock()
	c, seen := p.valid[h]
	p.mu.Unlock()
	if seen && time.Since(c.validAt) < p.o.CacheTTL {
		return c.id, nil
	}
	// An address over its failure limit is refused, except for tokens
	// found valid within knownFor: other clients behind the same proxy or
	// NAT keep working, while a guesser, who cannot name such a token, is
	// refused.
	if p.blocked(addr) && !(seen && time.Since(c.validAt) < knownFor) {
		return nil, ErrTooManyFailures
	}
	// The token is looked up by its hash, so a row found is a match.
	t, err := p.o.Tokens.TokenByHash(r.Context(), h)
	if errors.Is(err, meta.ErrNotFound) {
		p.fail(addr)
		return nil, ErrBadToken
	}
	if err != nil {
		return nil, err
	}
	id := &Identity{Name: t.Name, Patterns: NormalizePatterns(t.Patterns)}
	p.mu.Lock()
	if len(p.valid) > 10000 {
		clear(p.valid)
	}
	p.valid[h] = cached{id: id, validAt: time.Now()}
	p.mu.Unlock()
	return id, nil
}

func (p *Policy) blocked(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.failures[addr]
	return f != nil && time.Since(f.start) < p.o.FailureWindow && f.n >= p.o.MaxFailures
}

func (p *Policy) fail(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if len(p.failures) > 100000 {
		for a, f := range p.failures {
			if now.Sub(f.start) >= p.o.FailureWindow {
				delete(p.failures, a)
			}
		}
	}
	f := p.failures[addr]
	if f == nil || now.Sub(f.start) >= p.o.FailureWindow {
		f = &failWindow{start: now}
		p.failures[addr] = f
	}
	f.n++
}

// Check decides whether a request may read the module at path, returning
// nil or one of the package's errors (wrapped with what to do about it).
func (p *Policy) Check(r *http.Request, path string) error {
	if !p.Protected(path) {
		return nil // open: credentials are not even looked at
	}
	id, err := p.Authenticate(r)
	if err != nil {
		return err
	}
	if p.MayRead(id, path) {
		return nil
	}
	if id == nil {
		return fmt.Errorf("%s: %w: give a token as the password in ~/.netrc (machine <host:port of this server> login agora password <token>) or through GOAUTH; an operator creates one with `agora token create`", path, ErrUnauthenticated)
	}
	return fmt.Errorf("%s: %w: token %q may read %q; ask an operator for a token that allows this module", path, ErrForbidden, id.Name, id.Patterns)
}

// MayReadAll reports whether id may read every module (a token allowing
// "*"), as the status page requires when access control is on.
func (p *Policy) MayReadAll(id *Identity) bool {
	return !p.Enabled() || (id != nil && id.Patterns == "*")
}

// Filter returns a function reporting whether the request may read a
// module path, for listings (the index, the catalog, the web UI). Bad
// credentials read as none, so only open modules are listed.
func (p *Policy) Filter(r *http.Request) func(path string) bool {
	if !p.Enabled() {
		return func(string) bool { return true }
	}
	id, _ := p.Authenticate(r)
	return func(path string) bool { return p.MayRead(id, path) }
}
