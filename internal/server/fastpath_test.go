package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/agora-mirror/agora/internal/access"
	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/modtest"
	"github.com/agora-mirror/agora/internal/store"
)

// TestCachedAnswersKeepAccessRules: the in-memory fast path for .info and
// .mod answers applies the same access rules as the full path.
func TestCachedAnswersKeepAccessRules(t *testing.T) {
	dir := t.TempDir()
	m := modtest.MustBuild(t, modtest.Module{Path: "corp.example/secret", Version: "v1.0.0",
		Files: map[string]string{"go.mod": "module corp.example/secret\n", "a.go": "package secret\n"}})
	if err := modtest.WriteTree(dir+"/mod", m); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenDisk(dir)
	if err != nil {
		t.Fatal(err)
	}
	md := modtest.Meta(t)
	tok := access.NewToken()
	if err := md.CreateToken(context.Background(), meta.Token{Name: "corp", Hash: access.Hash(tok), Patterns: "corp.example"}); err != nil {
		t.Fatal(err)
	}
	h := New(Options{Mirror: mirror.New(mirror.Options{Store: st, Catalog: md}),
		Access: access.New(access.Options{Protected: "corp.example", Tokens: md})})
	get := func(path, token string) int {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if token != "" {
			r.SetBasicAuth("agora", token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, p := range []string{"/corp.example/secret/@v/v1.0.0.info", "/corp.example/secret/@v/v1.0.0.mod"} {
		if code := get(p, tok); code != 200 {
			t.Fatalf("%s with the token: %d", p, code)
		}
		if _, ok := h.m.Cached(p, func(string) bool { return true }); !ok {
			t.Fatalf("%s not in the memory cache after being answered", p)
		}
		if code := get(p, ""); code != http.StatusUnauthorized {
			t.Errorf("%s, cached, without a token: %d, want 401", p, code)
		}
		if code := get(p, tok); code != 200 {
			t.Errorf("%s, cached, with the token: %d", p, code)
		}
	}
}
