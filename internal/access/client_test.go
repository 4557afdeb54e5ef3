package access

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/agora-mirror/agora/internal/modtest"
)

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32")}
	for _, c := range []struct {
		peer    string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"198.51.100.1:4000", nil, nil, "198.51.100.1"},
		{"[2001:db8::1]:4000", nil, nil, "2001:db8::1"},
		// No trusted proxies, or a peer not among them: the header is
		// anyone's to write.
		{"10.1.2.3:4000", []string{"203.0.113.9"}, nil, "10.1.2.3"},
		{"198.51.100.1:4000", []string{"203.0.113.9"}, trusted, "198.51.100.1"},
		// From a trusted proxy: the rightmost address not trusted.
		{"10.1.2.3:4000", []string{"203.0.113.9"}, trusted, "203.0.113.9"},
		{"10.1.2.3:4000", []string{"198.51.100.66, 203.0.113.9, 192.0.2.7"}, trusted, "203.0.113.9"},
		{"10.1.2.3:4000", []string{"198.51.100.66", "203.0.113.9 , 10.9.9.9"}, trusted, "203.0.113.9"},
		{"[::ffff:10.1.2.3]:4000", []string{"::ffff:203.0.113.9"}, trusted, "203.0.113.9"},
		{"[2001:db8::1]:4000", []string{"2001:db8::2, 203.0.113.9"}, trusted, "203.0.113.9"},
		// Every hop trusted: the leftmost.
		{"10.1.2.3:4000", []string{"10.0.0.5, 192.0.2.7"}, trusted, "10.0.0.5"},
		// A malformed entry stops the reading at the address to its right.
		{"10.1.2.3:4000", []string{"203.0.113.9, unknown, 10.0.0.5"}, trusted, "10.0.0.5"},
		{"10.1.2.3:4000", []string{"evil"}, trusted, "10.1.2.3"},
		{"10.1.2.3:4000", []string{""}, trusted, "10.1.2.3"},
		// Empty entries are skipped; ports are dropped.
		{"10.1.2.3:4000", []string{"203.0.113.9,, 10.0.0.5, "}, trusted, "203.0.113.9"},
		{"10.1.2.3:4000", []string{"203.0.113.9:1234, 10.0.0.5:80"}, trusted, "203.0.113.9"},
		{"10.1.2.3:4000", []string{"[2001:db9::9]:1234"}, trusted, "2001:db9::9"},
		// Zones are dropped, on the peer and on entries.
		{"[2001:db8::1%eth0]:4000", []string{"203.0.113.9"}, trusted, "203.0.113.9"},
		{"10.1.2.3:4000", []string{"2001:db9::9%eth0"}, trusted, "2001:db9::9"},
		// Proxies that add a line of their own (HAProxy): the last line's
		// last entry is the nearest.
		{"10.1.2.3:4000", []string{"198.51.100.66", "203.0.113.9"}, trusted, "203.0.113.9"},
		// Not an IP at all: kept as it is (its host, if it has a port).
		{"pipe", []string{"203.0.113.9"}, trusted, "pipe"},
		{"name:80", nil, nil, "name"},
	} {
		if got := ClientAddr(c.peer, c.xff, c.trusted); got != c.want {
			t.Errorf("ClientAddr(%q, %q, trusted %v) = %q, want %q", c.peer, c.xff, c.trusted != nil, got, c.want)
		}
	}
}

// TestFailuresBehindAProxy: failures through a trusted proxy count
// against the client the proxy names, so one client's guesses do not
// block the others behind the same proxy; a header from a peer that is
// not a proxy changes nothing.
func TestFailuresBehindAProxy(t *testing.T) {
	p := New(Options{Protected: "corp.example", Tokens: modtest.Meta(t), MaxFailures: 2,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	req := func(peer, xff string) error {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		r.SetBasicAuth("x", "agora_wrong")
		return p.Check(r, "corp.example/secret")
	}
	for i := range 2 {
		if err := req("127.0.0.1:1000", "203.0.113.1"); !errors.Is(err, ErrBadToken) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	if err := req("127.0.0.1:1000", "203.0.113.1"); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("the guessing client after the limit: %v", err)
	}
	// The guesser writes a header of its own, which the proxy keeps and
	// follows with a line naming the guesser (as HAProxy does): still
	// the guesser.
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:1000"
	r.Header["X-Forwarded-For"] = []string{"198.51.100.200", "203.0.113.1"}
	r.SetBasicAuth("x", "agora_wrong")
	if err := p.Check(r, "corp.example/secret"); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("the guesser with a header of its own before the proxy's line: %v", err)
	}
	if err := req("127.0.0.1:1000", "203.0.113.2"); !errors.Is(err, ErrBadToken) {
		t.Errorf("another client behind the same proxy: %v, want only its own failure", err)
	}
	// Control: without trusting the proxy, every client behind it is one.
	p = New(Options{Protected: "corp.example", Tokens: modtest.Meta(t), MaxFailures: 2})
	for range 2 {
		req("127.0.0.1:1000", "203.0.113.1")
	}
	if err := req("127.0.0.1:1000", "203.0.113.2"); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("untrusted proxy, another client: %v, want the proxy's address blocked", err)
	}
	// A client that is not a proxy cannot pick its own address.
	p = New(Options{Protected: "corp.example", Tokens: modtest.Meta(t), MaxFailures: 2,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	for i := range 2 {
		req("198.51.100.1:1000", fmt.Sprintf("203.0.113.%d", i+1))
	}
	if err := req("198.51.100.1:1000", "203.0.113.9"); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("a spoofed header from a non-proxy: %v, want its own address blocked", err)
	}
}
