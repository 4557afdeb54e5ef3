package protocol_test

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/agora-mirror/agora/internal/protocol"
)

// validRequests are request paths Parse must accept, with the request each
// one means. Every one of them must also round-trip through Request.Path.
var validRequests = []struct {
	name string
	path string
	want protocol.Request
}{
	{"version list", "/example.com/m/@v/list",
		protocol.Request{Kind: protocol.List, Module: "example.com/m"}},
	{"leading slash is optional", "example.com/m/@v/list",
		protocol.Request{Kind: protocol.List, Module: "example.com/m"}},
	{"latest", "/example.com/m/@latest",
		protocol.Request{Kind: protocol.Latest, Module: "example.com/m"}},
	{"info", "/example.com/m/@v/v1.0.0.info",
		protocol.Request{Kind: protocol.Info, Module: "example.com/m", Version: "v1.0.0"}},
	{"mod", "/example.com/m/@v/v1.0.0.mod",
		protocol.Request{Kind: protocol.Mod, Module: "example.com/m", Version: "v1.0.0"}},
	{"zip", "/example.com/m/@v/v1.0.0.zip",
		protocol.Request{Kind: protocol.Zip, Module: "example.com/m", Version: "v1.0.0"}},
	{"case-encoded module path", "/github.com/!burnt!sushi/toml/@v/v1.4.0.info",
		protocol.Request{Kind: protocol.Info, Module: "github.com/BurntSushi/toml", Version: "v1.4.0"}},
	{"case-encoded module path in list", "/github.com/!burnt!sushi/toml/@v/list",
		protocol.Request{Kind: protocol.List, Module: "github.com/BurntSushi/toml"}},
	{"case-encoded module path in latest", "/github.com/!burnt!sushi/toml/@latest",
		protocol.Request{Kind: protocol.Latest, Module: "github.com/BurntSushi/toml"}},
	{"case-encoded version", "/example.com/m/@v/v1.0.0-!r!c1.mod",
		protocol.Request{Kind: protocol.Mod, Module: "example.com/m", Version: "v1.0.0-RC1"}},
	{"prerelease", "/example.com/m/@v/v1.0.0-rc.1.zip",
		protocol.Request{Kind: protocol.Zip, Module: "example.com/m", Version: "v1.0.0-rc.1"}},
	{"incompatible major version without /vN", "/example.com/m/@v/v2.0.0+incompatible.zip",
		protocol.Request{Kind: protocol.Zip, Module: "example.com/m", Version: "v2.0.0+incompatible"}},
	{"incompatible info", "/example.com/m/@v/v3.1.0+incompatible.info",
		protocol.Request{Kind: protocol.Info, Module: "example.com/m", Version: "v3.1.0+incompatible"}},
	{"pseudo-version", "/example.com/m/@v/v0.0.0-20240101120000-abcdefabcdef.zip",
		protocol.Request{Kind: protocol.Zip, Module: "example.com/m", Version: "v0.0.0-20240101120000-abcdefabcdef"}},
	{"pseudo-version after a tag", "/example.com/m/@v/v1.2.4-0.20240101120000-abcdefabcdef.mod",
		protocol.Request{Kind: protocol.Mod, Module: "example.com/m", Version: "v1.2.4-0.20240101120000-abcdefabcdef"}},
	{"major version suffix", "/example.com/m/v2/@v/v2.1.0.mod",
		protocol.Request{Kind: protocol.Mod, Module: "example.com/m/v2", Version: "v2.1.0"}},
	{"major version suffix list", "/example.com/m/v2/@v/list",
		protocol.Request{Kind: protocol.List, Module: "example.com/m/v2"}},
	{"gopkg.in major version", "/gopkg.in/yaml.v3/@v/v3.0.1.zip",
		protocol.Request{Kind: protocol.Zip, Module: "gopkg.in/yaml.v3", Version: "v3.0.1"}},
	{"toolchain module", "/golang.org/toolchain/@v/v0.0.1-go1.22.0.linux-amd64.zip",
		protocol.Request{Kind: protocol.Zip, Module: "golang.org/toolchain", Version: "v0.0.1-go1.22.0.linux-amd64"}},

	// Queries: only .info may name something other than a canonical
	// version; the upstream resolves it.
	{"branch query", "/example.com/m/@v/master.info",
		protocol.Request{Kind: protocol.Info, Module: "example.com/m", Version: "master", Query: true}},
	{"case-encoded branch query", "/example.com/m/@v/!main.info",
		protocol.Request{Kind: protocol.Info, Module: "example.com/m", Version: "Main", Query: true}},
	{"version prefix query", "/example.com/m/@v/v1.2.info",
		protocol.Request{Kind: protocol.Info, Module: "example.com/m", Version: "v1.2", Query: true}},
	{"commit prefix query", "/example.com/m/@v/abcdef12.info",
		protocol.Request{Kind: protocol.Info, Module: "example.com/m", Version: "abcdef12", Query: true}},
	{"build metadata makes a query", "/example.com/m/@v/v1.2.3+meta.info",
		protocol.Request{Kind: protocol.Info, Module: "example.com/m", Version: "v1.2.3+meta", Query: true}},
	{"major mismatch on info is a query", "/example.com/m/v2/@v/v1.0.0.info",
		protocol.Request{Kind: protocol.Info, Module: "example.com/m/v2", Version: "v1.0.0", Query: true}},
	{"misplaced incompatible on info is a query", "/example.com/m/v2/@v/v2.0.0+incompatible.info",
		protocol.Request{Kind: protocol.Info, Module: "example.com/m/v2", Version: "v2.0.0+incompatible", Query: true}},
	// A query is forwarded as the literal text the client sent (after
	// URL decoding); a percent sign in it is just a character, which
	// the upstream package escapes again on the way out.
	{"percent sign in a query is literal", "/example.com/m/@v/..%2fv1.0.0.info",
		protocol.Request{Kind: protocol.Info, Module: "example.com/m", Version: "..%2fv1.0.0", Query: true}},
	{"dots inside a query are fine", "/example.com/m/@v/a..b.info",
		protocol.Request{Kind: protocol.Info, Module: "example.com/m", Version: "a..b", Query: true}},
}

// invalidRequests are request paths Parse must refuse.
var invalidRequests = []struct {
	name string
	path string
}{
	{"empty", ""},
	{"root", "/"},
	{"no endpoint", "/example.com/m"},
	{"@v alone", "/@v/"},
	{"list without module", "/@v/list"},
	{"latest without module", "/@latest"},
	{"empty version", "/example.com/m/@v/.info"},
	{"empty version file", "/example.com/m/@v/"},
	{"version without extension", "/example.com/m/@v/v1.0.0"},
	{"unknown extension", "/example.com/m/@v/v1.0.0.tar"},
	{"extension in wrong case", "/example.com/m/@v/v1.0.0.ZIP"},
	{"trailing path after file", "/example.com/m/@v/v1.0.0.info/x"},
	{"latest with version", "/example.com/m/@latest/v1.0.0"},
	{"module without dot in first element", "/localmodule/@v/list"},
	{"module with leading dash", "/-example.com/m/@v/list"},
	{"module with trailing slash", "/example.com/m//@v/list"},

	// Versions and major versions that do not fit the module path.
	{"incompatible on /v2 path", "/example.com/m/v2/@v/v2.0.0+incompatible.zip"},
	{"incompatible on gopkg.in path", "/gopkg.in/yaml.v3/@v/v3.0.0+incompatible.mod"},
	{"incompatible on v1", "/example.com/m/@v/v1.0.0+incompatible.zip"},
	{"incompatible on v0", "/example.com/m/@v/v0.1.0+incompatible.mod"},
	{"v1 on /v2 path", "/example.com/m/v2/@v/v1.0.0.mod"},
	{"v2 without /v2 or +incompatible", "/example.com/m/@v/v2.0.0.zip"},
	{"gopkg.in major mismatch", "/gopkg.in/yaml.v3/@v/v2.0.0.mod"},
	{"query on zip", "/example.com/m/@v/master.zip"},
	{"query on mod", "/example.com/m/@v/master.mod"},
	{"version prefix on mod", "/example.com/m/@v/v1.2.mod"},
	{"build metadata on zip", "/example.com/m/@v/v1.2.3+meta.zip"},
	{"list is not a version", "/example.com/m/@v/list.zip"},
	{"query too long", "/example.com/m/@v/" + strings.Repeat("a", 300) + ".info"},

	// Hostile inputs.
	{"dot-dot module element", "/example.com/../m/@v/list"},
	{"dot-dot at start", "/../example.com/m/@v/list"},
	{"dot-dot before @v", "/example.com/m/../@v/list"},
	{"dot-dot version (%2e%2e after decoding)", "/example.com/m/@v/...info"},
	{"dot-dot module (%2e%2e after decoding)", "/example.com/m/../../@v/list"},
	{"dot-dot in version path", "/example.com/m/@v/../v1.0.0.info"},
	{"dot element", "/example.com/./m/@v/list"},
	{"absolute-ish double slash", "//etc/passwd"},
	{"double slash module", "//etc/passwd/@v/list"},
	{"double slash module zip", "//example.com/m/@v/v1.0.0.zip"},
	{"NUL in module", "/example.com/m\x00/@v/list"},
	{"NUL in version", "/example.com/m/@v/v1.0.0\x00.info"},
	{"NUL in query", "/example.com/m/@v/ma\x00ster.info"},
	{"backslash in module", `/example.com\m/@v/list`},
	{"backslash in query", `/example.com/m/@v/..\x.info`},
	{"upper case without ! in module", "/github.com/BurntSushi/toml/@v/list"},
	{"upper case without ! in version", "/example.com/m/@v/v1.0.0-RC1.mod"},
	{"upper case without ! in query", "/example.com/m/@v/Master.info"},
	{"trailing ! in module", "/example.com/m!/@v/list"},
	{"trailing ! in version", "/example.com/m/@v/v1.0.0!.info"},
	{"! before non-letter", "/example.com/!1m/@v/list"},
	{"! before upper case", "/example.com/!M/@v/list"},
	{"invalid UTF-8 in module", "/example.com/\xff/@v/list"},
	{"invalid UTF-8 in version", "/example.com/m/@v/v1.0.0-\xff.info"},
	{"control character", "/example.com/m/@v/mas\nter.info"},
	{"shell metacharacters in query", "/example.com/m/@v/`id`.info"},
	{"10 kB path", "/example.com/" + strings.Repeat("a", 10000) + "/@v/list"},
	{"10 kB version", "/example.com/m/@v/v1.0.0-" + strings.Repeat("a", 10000) + ".zip"},
	{"just over the length limit", "/example.com/" + strings.Repeat("a", protocol.MaxPathLen) + "/@v/list"},
}

func TestParseAcceptsValidRequests(t *testing.T) {
	for _, tc := range validRequests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := protocol.Parse(tc.path)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.path, err)
			}
			if got != tc.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tc.path, got, tc.want)
			}
		})
	}
}

func TestParseRefusesInvalidRequests(t *testing.T) {
	for _, tc := range invalidRequests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := protocol.Parse(tc.path)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", shorten(tc.path), got)
			}
			if !errors.Is(err, protocol.ErrInvalid) {
				t.Errorf("Parse(%q) error %v does not match ErrInvalid", shorten(tc.path), err)
			}
			var perr *protocol.Error
			if !errors.As(err, &perr) {
				t.Errorf("Parse(%q) error is %T, want *protocol.Error", shorten(tc.path), err)
			}
			if got != (protocol.Request{}) {
				t.Errorf("Parse(%q) returned %+v along with its error, want the zero Request", shorten(tc.path), got)
			}
		})
	}
}

func TestParseErrorQuotesOnlyTheStartOfALongPath(t *testing.T) {
	path := "/example.com/" + strings.Repeat("a", 10000) + "/@v/list"
	_, err := protocol.Parse(path)
	if err == nil {
		t.Fatal("Parse accepted a 10 kB path")
	}
	if msg := err.Error(); len(msg) > 300 {
		t.Errorf("error message is %d bytes long, want the path shortened: %.100s...", len(msg), msg)
	}
}

func TestParseAcceptsPathOfMaximumLength(t *testing.T) {
	prefix, suffix := "/example.com/", "/@v/list"
	path := prefix + strings.Repeat("a", protocol.MaxPathLen-len(prefix)-len(suffix)) + suffix
	if len(path) != protocol.MaxPathLen {
		t.Fatalf("test path has length %d, want %d", len(path), protocol.MaxPathLen)
	}
	if _, err := protocol.Parse(path); err != nil {
		t.Errorf("Parse of a %d-byte path: %v", len(path), err)
	}
}

func TestRequestPathRoundTrips(t *testing.T) {
	for _, tc := range validRequests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.want
			p := r.Path()
			if strings.HasPrefix(p, "/") {
				t.Errorf("Path() = %q, want no leading slash", p)
			}
			got, err := protocol.Parse(p)
			if err != nil {
				t.Fatalf("Parse(%q) of Path() of %+v: %v", p, r, err)
			}
			if got != r {
				t.Errorf("Parse(%q) = %+v, want %+v", p, got, r)
			}
		})
	}
}

func TestRequestPathIsCaseEncoded(t *testing.T) {
	tests := []struct {
		req  protocol.Request
		want string
	}{
		{protocol.Request{Kind: protocol.List, Module: "github.com/BurntSushi/toml"}, "github.com/!burnt!sushi/toml/@v/list"},
		{protocol.Request{Kind: protocol.Latest, Module: "github.com/BurntSushi/toml"}, "github.com/!burnt!sushi/toml/@latest"},
		{protocol.Request{Kind: protocol.Info, Module: "github.com/BurntSushi/toml", Version: "v1.4.0"}, "github.com/!burnt!sushi/toml/@v/v1.4.0.info"},
		{protocol.Request{Kind: protocol.Mod, Module: "example.com/m", Version: "v1.0.0-RC1"}, "example.com/m/@v/v1.0.0-!r!c1.mod"},
		{protocol.Request{Kind: protocol.Zip, Module: "example.com/m", Version: "v2.0.0+incompatible"}, "example.com/m/@v/v2.0.0+incompatible.zip"},
		{protocol.Request{Kind: protocol.Info, Module: "example.com/m", Version: "Main", Query: true}, "example.com/m/@v/!main.info"},
	}
	for _, tc := range tests {
		if got := tc.req.Path(); got != tc.want {
			t.Errorf("%+v.Path() = %q, want %q", tc.req, got, tc.want)
		}
	}
}

func TestRequestCanonical(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/example.com/m/@v/list", false},
		{"/example.com/m/@latest", false},
		{"/example.com/m/@v/v1.0.0.info", true},
		{"/example.com/m/@v/v1.0.0.mod", true},
		{"/example.com/m/@v/v1.0.0.zip", true},
		{"/example.com/m/@v/master.info", false},
		{"/example.com/m/@v/v1.2.info", false},
		{"/example.com/m/v2/@v/v1.0.0.info", false},
	}
	for _, tc := range tests {
		r, err := protocol.Parse(tc.path)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.path, err)
		}
		if got := r.Canonical(); got != tc.want {
			t.Errorf("Parse(%q).Canonical() = %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestKindNamesAndExtensions(t *testing.T) {
	tests := []struct {
		kind       protocol.Kind
		name, ext  string
		versionful bool
	}{
		{protocol.List, "list", "", false},
		{protocol.Latest, "latest", "", false},
		{protocol.Info, "info", ".info", true},
		{protocol.Mod, "mod", ".mod", true},
		{protocol.Zip, "zip", ".zip", true},
		{protocol.Kind(0), "unknown", "", false},
		{protocol.Kind(99), "unknown", "", false},
	}
	for _, tc := range tests {
		if got := tc.kind.String(); got != tc.name {
			t.Errorf("Kind(%d).String() = %q, want %q", tc.kind, got, tc.name)
		}
		if got := tc.kind.Ext(); got != tc.ext {
			t.Errorf("Kind(%d).Ext() = %q, want %q", tc.kind, got, tc.ext)
		}
	}
}

// FuzzParse checks that Parse never panics, that every error it returns
// matches ErrInvalid, and that whatever it accepts is a well-formed
// request that survives a round trip through Request.Path.
func FuzzParse(f *testing.F) {
	for _, tc := range validRequests {
		f.Add(tc.path)
	}
	for _, tc := range invalidRequests {
		if len(tc.path) <= 2*protocol.MaxPathLen {
			f.Add(tc.path)
		}
	}
	f.Fuzz(func(t *testing.T, path string) {
		r, err := protocol.Parse(path)
		if err != nil {
			if !errors.Is(err, protocol.ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not match ErrInvalid", path, err)
			}
			if r != (protocol.Request{}) {
				t.Fatalf("Parse(%q) returned %+v along with an error", path, r)
			}
			return
		}
		if err := module.CheckPath(r.Module); err != nil {
			t.Fatalf("Parse(%q) accepted module %q: %v", path, r.Module, err)
		}
		switch r.Kind {
		case protocol.List, protocol.Latest:
			if r.Version != "" || r.Query {
				t.Fatalf("Parse(%q) = %+v: %v request with a version", path, r, r.Kind)
			}
		case protocol.Info, protocol.Mod, protocol.Zip:
			if r.Version == "" {
				t.Fatalf("Parse(%q) = %+v: %v request without a version", path, r, r.Kind)
			}
			if r.Query && r.Kind != protocol.Info {
				t.Fatalf("Parse(%q) = %+v: query on a %v request", path, r, r.Kind)
			}
			if !r.Query {
				if err := module.Check(r.Module, r.Version); err != nil {
					t.Fatalf("Parse(%q) = %+v: canonical request fails module.Check: %v", path, r, err)
				}
				if _, major, _ := module.SplitPathVersion(r.Module); major != "" && strings.HasSuffix(r.Version, "+incompatible") {
					t.Fatalf("Parse(%q) = %+v: +incompatible with a major version suffix", path, r)
				}
				if v := module.CanonicalVersion(r.Version); v != r.Version {
					t.Fatalf("Parse(%q) = %+v: version is not canonical (%q)", path, r, v)
				}
			}
			if strings.ContainsAny(r.Version, "/\\\x00") || r.Version == "." || r.Version == ".." {
				t.Fatalf("Parse(%q) = %+v: version could escape a directory", path, r)
			}
		default:
			t.Fatalf("Parse(%q) = %+v: unknown kind", path, r)
		}
		p := r.Path()
		r2, err := protocol.Parse(p)
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, but Parse of its Path() %q fails: %v", path, r, p, err)
		}
		if r2 != r {
			t.Fatalf("Parse(%q) = %+v, but Parse of its Path() %q = %+v", path, r, p, r2)
		}
	})
}

func shorten(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
