package mirror

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/agora-mirror/agora/internal/policy"
	"github.com/agora-mirror/agora/internal/upstream"
)

// fakeSource answers every call with err, or with its name.
type fakeSource struct {
	name  string
	err   error
	calls int
}

func (f *fakeSource) Fetch(_ context.Context, _, _, _ string, _ int64, sink func(io.Reader) error) (string, error) {
	f.calls++
	return f.name, f.err
}
func (f *fakeSource) List(context.Context, string) ([]byte, error) {
	f.calls++
	return []byte(f.name), f.err
}
func (f *fakeSource) Latest(context.Context, string) ([]byte, string, error) {
	f.calls++
	return nil, f.name, f.err
}
func (f *fakeSource) Query(context.Context, string, string) ([]byte, string, error) {
	f.calls++
	return nil, f.name, f.err
}

func TestFallbackSourceFollowsGOPROXYSeparators(t *testing.T) {
	notFound := &upstream.NotFoundError{Path: "p", Answers: []string{"a: 404"}}
	broken := errors.New("500 Internal Server Error")
	cases := []struct {
		name     string
		primary  error
		anyError bool
		wantFrom string
	}{
		{",direct after not found", notFound, false, "direct"},
		{",direct after a failure", broken, false, "proxy"},
		{"|direct after a failure", broken, true, "direct"},
		{"no fallback on success", nil, true, "proxy"},
	}
	for _, c := range cases {
		p, d := &fakeSource{name: "proxy", err: c.primary}, &fakeSource{name: "direct"}
		f := FallbackSource{Primary: p, Fallback: d, AnyError: c.anyError}
		origin, _ := f.Fetch(context.Background(), "m", "v1.0.0", ".zip", 0, nil)
		list, _ := f.List(context.Background(), "m")
		if origin != c.wantFrom || string(list) != c.wantFrom {
			t.Errorf("%s: answered by %q and %q, want %q", c.name, origin, list, c.wantFrom)
		}
	}
}

func TestPolicyRouterRoutes(t *testing.T) {
	pol, err := policy.New([]policy.Rule{
		{Pattern: "corp.example", Action: policy.Private},
		{Pattern: "example.com/x", Action: policy.Direct},
		{Pattern: "example.com/bad", Action: policy.Deny},
		{Pattern: "vendor.example", Action: policy.Upstream, Chain: "vendor"},
	}, map[string]bool{"vendor": true})
	if err != nil {
		t.Fatal(err)
	}
	def, vendor, direct := &fakeSource{name: "default"}, &fakeSource{name: "vendor"}, &fakeSource{name: "direct"}
	r := &PolicyRouter{Policy: pol, Default: def, Chains: map[string]Source{"vendor": vendor}, Direct: direct, Verify: true}
	cases := []struct {
		path   string
		src    Source
		verify bool
		denied bool
	}{
		{"corp.example/lib", direct, false, false},
		{"example.com/x", direct, true, false},
		{"example.com/bad", nil, false, true},
		{"vendor.example/m", vendor, true, false},
		{"example.com/other", def, true, false},
	}
	for _, c := range cases {
		rt := r.Route(c.path, "v1.0.0")
		if rt.Source != c.src || rt.Verify != c.verify || (rt.Denied != nil) != c.denied {
			t.Errorf("Route(%s) = %+v", c.path, rt)
		}
		if c.denied && !errors.Is(rt.Denied, ErrDenied) {
			t.Errorf("Route(%s): denial %v does not match ErrDenied", c.path, rt.Denied)
		}
	}
	// Without a fetcher for version control, direct and private routes
	// are refused rather than sent upstream.
	r.Direct = nil
	if rt := r.Route("corp.example/lib", "v1.0.0"); !errors.Is(rt.Denied, ErrDenied) || rt.Source != nil {
		t.Errorf("private route without version control = %+v, want a denial", rt)
	}
}
