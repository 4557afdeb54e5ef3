package access

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/modtest"
)

func TestNormalizePatterns(t *testing.T) {
	if got := NormalizePatterns(" a.example , ,b.example/*,"); got != "a.example,b.example/*" {
		t.Errorf("NormalizePatterns = %q", got)
	}
	p := New(Options{Protected: "open.example, corp.example"})
	if !p.Protected("corp.example/secret") || p.Protected("other.example/x") {
		t.Error("patterns with spaces are not matched")
	}
}

func TestCheck(t *testing.T) {
	good, other := NewToken(), NewToken()
	md := modtest.Meta(t)
	for name, tok := range map[string]string{"good": good, "other": other} {
		patterns := map[string]string{"good": "corp.example", "other": "example.org"}[name]
		if err := md.CreateToken(context.Background(), meta.Token{Name: name, Hash: Hash(tok), Patterns: patterns}); err != nil {
			t.Fatal(err)
		}
	}
	// A cache this short is always missed, so the blocked-address case
	// below reaches the exemption for tokens found valid before.
	p := New(Options{Protected: "corp.example", Tokens: md, MaxFailures: 3, CacheTTL: time.Nanosecond})
	req := func(tok, addr string) error {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = addr
		if tok != "" {
			r.SetBasicAuth("x", tok)
		}
		return p.Check(r, "corp.example/secret")
	}
	for _, tc := range []struct {
		tok  string
		want error
	}{{"", ErrUnauthenticated}, {other, ErrForbidden}, {good, nil}, {"agora_wrong", ErrBadToken}} {
		if err := req(tc.tok, "10.0.0.1:1"); !errors.Is(err, tc.want) && (err != nil || tc.want != nil) {
			t.Errorf("Check(token %q) = %v, want %v", tc.tok, err, tc.want)
		}
	}
	// Open modules never look at credentials, wrong ones included.
	r := httptest.NewRequest("GET", "/", nil)
	r.SetBasicAuth("x", "agora_wrong")
	if err := p.Check(r, "example.com/open"); err != nil {
		t.Errorf("an open module with a wrong token: %v", err)
	}
	// Three failures block the address for unknown tokens, not for a
	// token seen valid; other addresses are not affected.
	req("agora_wrong2", "10.0.0.1:2")
	req("agora_wrong3", "10.0.0.1:3")
	if err := req("agora_wrong4", "10.0.0.1:4"); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("after the failure limit: %v", err)
	}
	if err := req(good, "10.0.0.1:5"); err != nil {
		t.Errorf("a token seen valid, from a blocked address: %v", err)
	}
	if err := req("agora_wrong5", "10.0.0.2:1"); !errors.Is(err, ErrBadToken) {
		t.Errorf("another address: %v", err)
	}
}
