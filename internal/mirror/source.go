package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/mod/module"

	"github.com/agora-mirror/agora/internal/policy"
	"github.com/agora-mirror/agora/internal/upstream"
)

// Source is where module files come from: an upstream proxy chain, or
// version control.
type Source interface {
	// Fetch calls sink with the content of a canonical version's file
	// (ext is ".info", ".mod" or ".zip"), at most limit bytes. On a
	// retry sink is called again and must start afresh. It returns
	// where the content came from, for logs and error messages.
	Fetch(ctx context.Context, path, vers, ext string, limit int64, sink func(io.Reader) error) (origin string, err error)
	// List returns the module's version list, in the list file's format.
	List(ctx context.Context, path string) ([]byte, error)
	// Latest returns the .info of the module's latest version.
	Latest(ctx context.Context, path string) (info []byte, origin string, err error)
	// Query returns the .info of the version a query (a branch, a
	// commit prefix, "v1.2") resolves to.
	Query(ctx context.Context, path, query string) (info []byte, origin string, err error)
}

// Route says where a module, or one version of it, comes from.
type Route struct {
	// Source fetches what is not held; nil when Denied is set.
	Source Source
	// Denied, when not nil, refuses the module or version (it matches
	// ErrDenied).
	Denied error
	// Verify: check hashes against the checksum database. Without it,
	// the hashes first seen are pinned and later fetches must match them.
	Verify bool
}

// Router decides the route of a module path at a version; an empty
// version asks about the module as a whole (its list, its @latest).
type Router interface {
	Route(path, version string) Route
}

// ErrDenied is matched by errors for modules and versions an operator's
// rules refuse.
var ErrDenied = errors.New("denied by policy")

// DeniedError names the rule that refused a module or version.
type DeniedError struct {
	Module, Version string
	Rule            string
}

func (e *DeniedError) Error() string {
	mv := e.Module
	if e.Version != "" {
		mv += "@" + e.Version
	}
	return fmt.Sprintf("%s: %v by this mirror's rule %s", mv, ErrDenied, e.Rule)
}

// Is reports whether target is ErrDenied.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// PolicyRouter routes by a policy: upstream rules to their chain, direct
// and private rules to version control, deny rules nowhere.
type PolicyRouter struct {
	Policy *policy.Policy
	// Default serves modules no rule matches, and upstream rules
	// without a named chain.
	Default Source
	// Chains are the named upstream chains.
	Chains map[string]Source
	// Direct fetches from version control; nil when not available.
	Direct Source
	// Verify: a checksum database is configured.
	Verify bool
}

// errNoDirect is the denial for direct routes when version control
// fetching is not available.
var errNoDirect = errors.New("fetching from version control is not available")

// Route implements Router.
func (r *PolicyRouter) Route(path, version string) Route {
	d := r.Policy.Decide(path, version)
	switch d.Action {
	case policy.Deny:
		return Route{Denied: &DeniedError{Module: path, Version: version, Rule: d.Rule.String()}}
	case policy.Direct, policy.Private:
		if r.Direct == nil {
			return Route{Denied: fmt.Errorf("%s: %w: %w (the rule %s needs it)", path, ErrDenied, errNoDirect, d.Rule)}
		}
		return Route{Source: r.Direct, Verify: r.Verify && d.Action == policy.Direct}
	}
	src := r.Default
	if d.Chain != "" {
		src = r.Chains[d.Chain]
	}
	return Route{Source: src, Verify: r.Verify}
}

// ChainSource is a Source that asks an upstream proxy chain.
type ChainSource struct{ Chain *upstream.Chain }

// Fetch implements Source.
func (c ChainSource) Fetch(ctx context.Context, path, vers, ext string, limit int64, sink func(io.Reader) error) (string, error) {
	p, err := c.Chain.Fetch(ctx, remotePath(path, vers, ext), limit, sink)
	if err != nil {
		return "", err
	}
	return p.String(), nil
}

// List implements Source.
func (c ChainSource) List(ctx context.Context, path string) ([]byte, error) {
	ep, _ := module.EscapePath(path)
	data, _, err := c.Chain.FetchBytes(ctx, ep+"/@v/list", MaxListSize)
	return data, err
}

// Latest implements Source.
func (c ChainSource) Latest(ctx context.Context, path string) ([]byte, string, error) {
	ep, _ := module.EscapePath(path)
	return c.fetchInfo(ctx, ep+"/@latest")
}

// Query implements Source.
func (c ChainSource) Query(ctx context.Context, path, query string) ([]byte, string, error) {
	return c.fetchInfo(ctx, remotePath(path, query, ".info"))
}

func (c ChainSource) fetchInfo(ctx context.Context, rel string) ([]byte, string, error) {
	data, p, err := c.Chain.FetchBytes(ctx, rel, MaxInfoSize)
	if err != nil {
		return nil, "", err
	}
	return data, p.String(), nil
}

// fetchBytes is Source.Fetch for small files, reported to the observer.
func (m *Mirror) fetchBytes(ctx context.Context, src Source, path, vers, ext string, limit int64) ([]byte, string, error) {
	var buf bytes.Buffer
	start := time.Now()
	origin, err := src.Fetch(ctx, path, vers, ext, limit, upstream.BufferSink(&buf))
	m.obs.FetchDone(sourceKind(src, origin), origin, strings.TrimPrefix(ext, "."), time.Since(start), err)
	return buf.Bytes(), origin, err
}

// sourceKind names the kind of source that answered (origin) or, when
// none did, that was asked: "vcs" or "upstream".
func sourceKind(src Source, origin string) string {
	if origin == directOrigin {
		return "vcs"
	}
	if _, ok := src.(DirectSource); ok {
		return "vcs"
	}
	return "upstream"
}

// Off reports whether the chain never fetches.
func (c ChainSource) Off() bool { return c.Chain.Off() }

// offline reports whether src never fetches (an "off" chain).
func offline(src Source) bool {
	o, ok := src.(interface{ Off() bool })
	return ok && o.Off()
}

// FallbackSource asks Primary first and, when it answers "not found"
// (or fails at all, with AnyError), Fallback: an upstream list ending in
// ",direct" (or "|direct"), as the go command reads GOPROXY.
type FallbackSource struct {
	Primary, Fallback Source
	AnyError          bool
}

func (f FallbackSource) next(err error) bool {
	return err != nil && (f.AnyError || errors.Is(err, ErrNotFound))
}

// Fetch implements Source.
func (f FallbackSource) Fetch(ctx context.Context, path, vers, ext string, limit int64, sink func(io.Reader) error) (string, error) {
	origin, err := f.Primary.Fetch(ctx, path, vers, ext, limit, sink)
	if f.next(err) && ctx.Value(aheadKey{}) != nil {
		return "", fmt.Errorf("%w: %w", errNoFallbackAhead, err)
	}
	if f.next(err) {
		return f.Fallback.Fetch(ctx, path, vers, ext, limit, sink)
	}
	return origin, err
}

// List implements Source.
func (f FallbackSource) List(ctx context.Context, path string) ([]byte, error) {
	data, err := f.Primary.List(ctx, path)
	if f.next(err) {
		return f.Fallback.List(ctx, path)
	}
	return data, err
}

// Latest implements Source.
func (f FallbackSource) Latest(ctx context.Context, path string) ([]byte, string, error) {
	data, origin, err := f.Primary.Latest(ctx, path)
	if f.next(err) {
		return f.Fallback.Latest(ctx, path)
	}
	return data, origin, err
}

// Query implements Source.
func (f FallbackSource) Query(ctx context.Context, path, query string) ([]byte, string, error) {
	data, origin, err := f.Primary.Query(ctx, path, query)
	if f.next(err) {
		return f.Fallback.Query(ctx, path, query)
	}
	return data, origin, err
}
