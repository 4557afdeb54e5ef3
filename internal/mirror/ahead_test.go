package mirror_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/modtest"
	"github.com/agora-mirror/agora/internal/policy"
)

// chainOf builds a → b → c (each requiring the next) and d, required by
// nothing, all published.
func chainOf(t *testing.T, e *env) (a, b, c, d *modtest.Built) {
	t.Helper()
	c = build(t, "example.com/c", "v1.2.0")
	b = modtest.MustBuild(t, modtest.Module{Path: "example.com/b", Version: "v1.1.0", Files: map[string]string{
		"go.mod": "module example.com/b\n\ngo 1.21\n\nrequire example.com/c v1.2.0\n",
		"b.go":   "package b\n",
	}})
	a = modtest.MustBuild(t, modtest.Module{Path: "example.com/a", Version: "v1.0.0", Files: map[string]string{
		"go.mod": "module example.com/a\n\ngo 1.21\n\nrequire example.com/b v1.1.0\n",
		"a.go":   "package a\n",
	}})
	d = build(t, "example.com/d", "v1.0.0")
	e.publish(a, b, c, d)
	return a, b, c, d
}

// With FillAhead AheadMod, filling a go.mod fills the .info and .mod of
// what it requires, transitively, before anyone asks; not their zips, and
// not as uses of those versions.
func TestFillAheadRequirements(t *testing.T) {
	obs := &aheadObserver{}
	e := newEnv(t, nil, mirror.Options{FillAhead: mirror.AheadMod, Observer: obs})
	ctx := ctxFor(t)
	a, b, c, d := chainOf(t, e)
	if _, hit, err := e.m.Mod(ctx, a.Path, a.Version); err != nil || hit {
		t.Fatalf("Mod(a) = hit %v, %v; want a miss that fills", hit, err)
	}
	e.m.WaitAhead()
	for _, m := range []*modtest.Built{b, c} {
		if n, k := e.count(m.Path, m.Version, ".mod"), e.count(m.Path, m.Version, ".info"); n != 1 || k != 1 {
			t.Errorf("%s: .mod asked %d times, .info %d times upstream; want once each, ahead", m.Path, n, k)
		}
		if n := e.count(m.Path, m.Version, ".zip"); n != 0 {
			t.Errorf("%s: zip asked %d times; AheadMod fills no zip", m.Path, n)
		}
	}
	if n := e.count(d.Path, d.Version, ".mod"); n != 0 {
		t.Errorf("d, required by nothing, was asked for %d times", n)
	}
	if got := obs.results(); !slices.Equal(got, []string{"mod filled", "mod filled"}) {
		t.Errorf("fills ahead observed: %q; want b's and c's .mod filled", got)
	}
	if got := e.m.Used(); !slices.Equal(got, []string{a.Path + "@" + a.Version}) {
		t.Errorf("uses noted = %v; want only the version asked for", got)
	}
	for _, m := range []*modtest.Built{b, c} {
		if _, hit, err := e.m.Info(ctx, m.Path, m.Version); err != nil || !hit {
			t.Errorf("Info(%s) after filling ahead = hit %v, %v; want a hit", m.Path, hit, err)
		}
	}
	if n := e.count(b.Path, b.Version, ".info"); n != 1 {
		t.Errorf("b's .info asked %d times after the client's request; want still 1", n)
	}
	if err := e.m.Close(ctx); err != nil {
		t.Errorf("Close = %v", err)
	}
}

// Without FillAhead, nothing is filled but what is asked for; with
// AheadZip, asking for a version's .info fills its zip too.
func TestFillAheadModes(t *testing.T) {
	t.Run("off", func(t *testing.T) {
		e := newEnv(t, nil, mirror.Options{})
		ctx := ctxFor(t)
		a, b, _, _ := chainOf(t, e)
		if _, _, err := e.m.Info(ctx, a.Path, a.Version); err != nil {
			t.Fatal(err)
		}
		e.m.WaitAhead()
		if n := e.count(b.Path, b.Version, ".mod") + e.count(a.Path, a.Version, ".zip"); n != 0 {
			t.Errorf("%d requests upstream beyond a's .info and .mod with FillAhead off", n)
		}
	})
	t.Run("zip", func(t *testing.T) {
		e := newEnv(t, nil, mirror.Options{FillAhead: mirror.AheadZip})
		ctx := ctxFor(t)
		a, b, _, d := chainOf(t, e)
		// A client walks the graph from a (its .mod), then asks for the
		// .info of a and b, as go mod download does: their zips are
		// filled ahead. d is in no graph seen (as an upgrade go list -m
		// -u looks at): its .info fills no zip.
		if _, _, err := e.m.Mod(ctx, a.Path, a.Version); err != nil {
			t.Fatal(err)
		}
		e.m.WaitAhead()
		for _, m := range []*modtest.Built{a, b, d} {
			if _, _, err := e.m.Info(ctx, m.Path, m.Version); err != nil {
				t.Fatal(err)
			}
		}
		e.m.WaitAhead()
		for _, m := range []*modtest.Built{a, b} {
			if n := e.count(m.Path, m.Version, ".zip"); n != 1 {
				t.Errorf("%s's zip asked %d times after its .info; want once, ahead", m.Path, n)
			}
		}
		if n := e.count(d.Path, d.Version, ".zip"); n != 0 {
			t.Errorf("d's zip asked %d times: d is in no module graph seen", n)
		}
		obj, hit, err := e.m.Zip(ctx, a.Path, a.Version)
		if err != nil || !hit {
			t.Fatalf("Zip(a) after filling ahead = hit %v, %v; want a hit", hit, err)
		}
		if got := readAll(t, obj); string(got) != string(a.Zip) {
			t.Errorf("zip filled ahead differs from the published one")
		}
	})
}

// Versions that an operator's rules send to version control, keep private
// or deny are never filled ahead; the others a go.mod requires are.
func TestFillAheadOnlyFromProxies(t *testing.T) {
	for _, rule := range []policy.Rule{
		{Pattern: "example.com/b", Action: policy.Deny, Versions: []string{"v1.1.0"}},
		{Pattern: "example.com/b", Action: policy.Direct},
		{Pattern: "example.com/b", Action: policy.Private},
	} {
		t.Run(rule.Action.String(), func(t *testing.T) {
			pol, err := policy.New([]policy.Rule{rule}, nil)
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, nil, mirror.Options{})
			vcs := &vcsSource{}
			e.m = e.mirrorOn(e.chain, mirror.Options{FillAhead: mirror.AheadZip,
				Router: &mirror.PolicyRouter{Policy: pol, Default: mirror.ChainSource{Chain: e.chain}, Direct: vcs, Verify: true}})
			ctx := ctxFor(t)
			_, b, c, d := chainOf(t, e)
			top := requiring(t, e, "example.com/top", b, d)
			if _, _, err := e.m.Mod(ctx, top.Path, top.Version); err != nil {
				t.Fatal(err)
			}
			e.m.WaitAhead()
			if n := e.count(b.Path, b.Version, ".mod") + e.count(c.Path, c.Version, ".mod") + int(vcs.calls.Load()); n != 0 {
				t.Errorf("b, routed by %s, or what it requires was fetched %d times ahead", rule, n)
			}
			if n := e.count(d.Path, d.Version, ".mod"); n != 1 {
				t.Errorf("d, from the upstream proxy, was asked for %d times; want once, ahead", n)
			}
		})
	}
}

// requiring builds and publishes a module requiring the given versions.
func requiring(t *testing.T, e *env, path string, reqs ...*modtest.Built) *modtest.Built {
	t.Helper()
	gomod := "module " + path + "\n\ngo 1.21\n\nrequire (\n"
	for _, r := range reqs {
		gomod += "\t" + r.Path + " " + r.Version + "\n"
	}
	m := modtest.MustBuild(t, modtest.Module{Path: path, Version: "v1.0.0", Files: map[string]string{"go.mod": gomod + ")\n", "x.go": "package x\n"}})
	e.publish(m)
	return m
}

// With an upstream list ending in ",direct", a fill ahead asks the proxies
// only: a version they do not have is left for a client, whose request
// then goes on to version control.
func TestFillAheadStopsBeforeTheFallback(t *testing.T) {
	e := newEnv(t, nil, mirror.Options{})
	vcs := &vcsSource{}
	e.m = e.mirrorOn(e.chain, mirror.Options{FillAhead: mirror.AheadMod,
		Router: &mirror.PolicyRouter{Default: mirror.FallbackSource{Primary: mirror.ChainSource{Chain: e.chain}, Fallback: vcs}, Verify: true}})
	ctx := ctxFor(t)
	d := build(t, "example.com/d", "v1.0.0")
	e.publish(d)
	gone := build(t, "example.com/gone", "v1.0.0") // never published
	top := requiring(t, e, "example.com/top", d, gone)
	if _, _, err := e.m.Mod(ctx, top.Path, top.Version); err != nil {
		t.Fatal(err)
	}
	e.m.WaitAhead()
	if n := e.count(d.Path, d.Version, ".mod"); n != 1 {
		t.Errorf("d was asked for %d times; want once, ahead", n)
	}
	// Its .info and .mod are asked for together, and the first "not
	// found" cancels the other: one of them, at least, was asked.
	if n := e.count(gone.Path, gone.Version, ".mod") + e.count(gone.Path, gone.Version, ".info"); n == 0 {
		t.Errorf("gone was not asked of the proxy ahead")
	}
	if n := vcs.calls.Load(); n != 0 {
		t.Errorf("filling ahead asked version control %d times", n)
	}
	if _, _, err := e.m.Mod(ctx, gone.Path, gone.Version); err == nil {
		t.Fatal("Mod(gone) succeeded; neither source has it")
	}
	if n := vcs.calls.Load(); n == 0 {
		t.Errorf("a client's request for what the proxies lack did not reach version control")
	}
}

// aheadObserver records what the mirror reports of fills ahead.
type aheadObserver struct {
	mu   sync.Mutex
	seen []string
}

func (o *aheadObserver) FetchDone(string, string, string, time.Duration, error) {}
func (o *aheadObserver) Refused(string)                                         {}
func (o *aheadObserver) FilledAhead(file, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, file+" "+result)
}

func (o *aheadObserver) results() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.seen)
}

// vcsSource stands for version control; it counts the calls it gets and
// answers none.
type vcsSource struct{ calls atomic.Int32 }

func (s *vcsSource) Fetch(context.Context, string, string, string, int64, func(io.Reader) error) (string, error) {
	s.calls.Add(1)
	return "", errors.New("not here")
}
func (s *vcsSource) List(context.Context, string) ([]byte, error) {
	s.calls.Add(1)
	return nil, errors.New("not here")
}
func (s *vcsSource) Latest(context.Context, string) ([]byte, string, error) {
	s.calls.Add(1)
	return nil, "", errors.New("not here")
}
func (s *vcsSource) Query(context.Context, string, string) ([]byte, string, error) {
	s.calls.Add(1)
	return nil, "", errors.New("not here")
}
