// Package policy decides, for a module path and version, where the module
// may come from: the default upstream chain, a named chain, version control
// directly, version control only with no public service ever asked
// (private), or nowhere (deny).
//
// Rules match module paths with the go command's GOPRIVATE glob syntax
// (golang.org/x/mod/module.MatchPrefixPatterns) and are tried in order;
// the first match wins. A rule may be limited to version ranges, so that
// an operator can deny, say, ">=v1.2.0 <v1.2.4" of one module. Paths no
// rule matches use the default chain.
//
// The package knows nothing of how fetching is done.
package policy

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// Action is what a rule decides.
type Action int

// The actions.
const (
	// Upstream fetches from an upstream chain (the default one, or the
	// rule's named chain), verifying against the checksum database.
	Upstream Action = iota
	// Direct fetches from version control, verifying against the
	// checksum database.
	Direct
	// Private fetches from version control only; the path is never sent
	// to an upstream proxy or a checksum database.
	Private
	// Deny refuses the module (or the matching versions).
	Deny
)

// String returns the action's name as written in configuration.
func (a Action) String() string {
	switch a {
	case Upstream:
		return "upstream"
	case Direct:
		return "direct"
	case Private:
		return "private"
	case Deny:
		return "deny"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// ParseAction parses an action name.
func ParseAction(s string) (Action, error) {
	for _, a := range []Action{Upstream, Direct, Private, Deny} {
		if a.String() == s {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown action %q (want upstream, direct, private or deny)", s)
}

// Rule is one routing rule.
type Rule struct {
	// Pattern is a GOPRIVATE-style list of path globs.
	Pattern string
	Action  Action
	// Chain names the upstream chain of an Upstream rule; "" is the
	// default chain.
	Chain string
	// Versions, if not empty, limits the rule to versions in any of these
	// ranges. A range is a space-separated list of comparisons, all of
	// which must hold: "<v1.0.0", ">=v1.2.0 <v1.3.0", "v1.4.2".
	Versions []string
}

// String describes the rule for error messages.
func (r Rule) String() string {
	s := fmt.Sprintf("%s %q", r.Action, r.Pattern)
	if r.Chain != "" {
		s += " via " + r.Chain
	}
	if len(r.Versions) > 0 {
		s += fmt.Sprintf(" for versions %q", strings.Join(r.Versions, " or "))
	}
	return s
}

// Policy is an ordered list of rules.
type Policy struct {
	rules []Rule
}

// New checks the rules and returns the policy. chains lists the names of
// the upstream chains configured, for checking Upstream rules.
func New(rules []Rule, chains map[string]bool) (*Policy, error) {
	for i, r := range rules {
		if strings.TrimSpace(r.Pattern) == "" {
			return nil, fmt.Errorf("rule %d: empty pattern", i+1)
		}
		if r.Chain != "" && r.Action != Upstream {
			return nil, fmt.Errorf("rule %d (%s): only upstream rules name a chain", i+1, r)
		}
		if r.Chain != "" && !chains[r.Chain] {
			return nil, fmt.Errorf("rule %d (%s): no upstream chain named %q", i+1, r, r.Chain)
		}
		if len(r.Versions) > 0 && r.Action != Deny {
			return nil, fmt.Errorf("rule %d (%s): version ranges are for deny rules", i+1, r)
		}
		for _, v := range r.Versions {
			if _, err := parseRange(v); err != nil {
				return nil, fmt.Errorf("rule %d (%s): %w", i+1, r, err)
			}
		}
	}
	return &Policy{rules: rules}, nil
}

// Decision is the outcome for a module path and version.
type Decision struct {
	Action Action
	Chain  string // for Upstream: the chain's name, "" for the default
	Rule   *Rule  // the rule that matched, nil for the default
}

// Decide returns the decision for path at version. An empty version asks
// about the module as a whole (its list, its latest version): rules
// limited to version ranges are then skipped.
func (p *Policy) Decide(path, version string) Decision {
	if p == nil {
		return Decision{Action: Upstream}
	}
	for i := range p.rules {
		r := &p.rules[i]
		if !module.MatchPrefixPatterns(r.Pattern, path) {
			continue
		}
		if len(r.Versions) > 0 && (version == "" || !inRanges(r.Versions, version)) {
			continue
		}
		return Decision{Action: r.Action, Chain: r.Chain, Rule: r}
	}
	return Decision{Action: Upstream}
}

// Private reports whether path is routed privately: the paths that must
// never reach an upstream proxy or a checksum database.
func (p *Policy) Private(path string) bool {
	return p.Decide(path, "").Action == Private
}

// comparison is one "<op><version>" term of a range.
type comparison struct {
	op, version string
}

func parseRange(s string) ([]comparison, error) {
	var cs []comparison
	for _, term := range strings.Fields(s) {
		op := strings.TrimRight(term[:min(2, len(term))], "v0123456789")
		v := term[len(op):]
		switch op {
		case "", "=", "<", "<=", ">", ">=":
		default:
			return nil, fmt.Errorf("version range %q: unknown comparison %q", s, op)
		}
		if !semver.IsValid(v) {
			return nil, fmt.Errorf("version range %q: %q is not a semantic version", s, v)
		}
		cs = append(cs, comparison{op, v})
	}
	if len(cs) == 0 {
		return nil, errors.New("empty version range")
	}
	return cs, nil
}

func inRanges(ranges []string, version string) bool {
	for _, r := range ranges {
		cs, _ := parseRange(r) // checked by New
		ok := true
		for _, c := range cs {
			d := semver.Compare(version, c.version)
			switch c.op {
			case "", "=":
				ok = ok && d == 0
			case "<":
				ok = ok && d < 0
			case "<=":
				ok = ok && d <= 0
			case ">":
				ok = ok && d > 0
			case ">=":
				ok = ok && d >= 0
			}
		}
		if ok {
			return true
		}
	}
	return false
}
