package policy

import (
	"strings"
	"testing"
)

func TestDecideFirstMatchWins(t *testing.T) {
	p, err := New([]Rule{
		{Pattern: "corp.example.com", Action: Private},
		{Pattern: "example.com/bad", Action: Deny, Versions: []string{">=v1.2.0 <v1.3.0", "v1.5.1"}},
		{Pattern: "example.com/bad", Action: Upstream, Chain: "b"},
		{Pattern: "*.example.org/*", Action: Direct},
		{Pattern: "example.com/gone", Action: Deny},
	}, map[string]bool{"b": true})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path, version string
		action        Action
		chain         string
	}{
		{"corp.example.com/lib", "v1.0.0", Private, ""},
		{"corp.example.com", "", Private, ""},
		{"corp.example.community/lib", "v1.0.0", Upstream, ""}, // a prefix of elements, not of characters
		{"example.com/bad", "v1.2.0", Deny, ""},
		{"example.com/bad", "v1.2.9", Deny, ""},
		{"example.com/bad", "v1.3.0", Upstream, "b"},
		{"example.com/bad", "v1.5.1", Deny, ""},
		{"example.com/bad", "v1.1.9", Upstream, "b"},
		{"example.com/bad", "", Upstream, "b"}, // the module as a whole is not denied
		{"git.example.org/team/lib", "v0.1.0", Direct, ""},
		{"git.example.org/team/lib/v2", "v2.0.0", Direct, ""},
		{"example.com/gone/v3", "v3.0.0", Deny, ""},
		{"example.com/other", "v1.0.0", Upstream, ""},
	}
	for _, c := range cases {
		d := p.Decide(c.path, c.version)
		if d.Action != c.action || d.Chain != c.chain {
			t.Errorf("Decide(%q, %q) = %v %q, want %v %q", c.path, c.version, d.Action, d.Chain, c.action, c.chain)
		}
	}
	if !p.Private("corp.example.com/x") || p.Private("example.com/bad") {
		t.Errorf("Private disagrees with Decide")
	}
}

func TestNewRejectsBadRules(t *testing.T) {
	cases := []struct {
		rule Rule
		want string
	}{
		{Rule{Pattern: " ", Action: Deny}, "empty pattern"},
		{Rule{Pattern: "a.example", Action: Direct, Chain: "b"}, "only upstream rules"},
		{Rule{Pattern: "a.example", Action: Upstream, Chain: "nope"}, "no upstream chain"},
		{Rule{Pattern: "a.example", Action: Upstream, Versions: []string{"v1.0.0"}}, "for deny rules"},
		{Rule{Pattern: "a.example", Action: Deny, Versions: []string{"~v1.0.0"}}, "unknown comparison"},
		{Rule{Pattern: "a.example", Action: Deny, Versions: []string{">=1.0"}}, "not a semantic version"},
		{Rule{Pattern: "a.example", Action: Deny, Versions: []string{""}}, "empty version range"},
	}
	for _, c := range cases {
		_, err := New([]Rule{c.rule}, map[string]bool{"b": true})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", c.rule, err, c.want)
		}
	}
	for _, name := range []string{"upstream", "direct", "private", "deny"} {
		a, err := ParseAction(name)
		if err != nil || a.String() != name {
			t.Errorf("ParseAction(%q) = %v, %v", name, a, err)
		}
	}
	if _, err := ParseAction("allow"); err == nil {
		t.Errorf("ParseAction(allow) succeeded")
	}
}

func TestNilPolicyUsesTheDefaultChain(t *testing.T) {
	var p *Policy
	if d := p.Decide("example.com/m", "v1.0.0"); d.Action != Upstream || d.Rule != nil {
		t.Errorf("nil policy: %+v", d)
	}
}
