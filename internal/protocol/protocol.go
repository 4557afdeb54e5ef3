// Package protocol parses and describes requests of the module proxy
// protocol (the GOPROXY protocol spoken by the go command).
//
// A request path names a module, in the case-encoded form the go command
// sends ("!" before each upper-case letter), and an endpoint: the version
// list, the latest version, or a version's .info, .mod or .zip file. Parse
// turns a path into a Request whose module path and version have been
// validated with golang.org/x/mod/module, so later stages never see a path
// that could escape a store or confuse an upstream.
//
// The package knows nothing about HTTP handlers, storage or upstreams.
package protocol

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// Kind is the endpoint a request asks for.
type Kind uint8

// The endpoints of the module proxy protocol.
const (
	List   Kind = iota + 1 // $module/@v/list
	Latest                 // $module/@latest
	Info                   // $module/@v/$version.info
	Mod                    // $module/@v/$version.mod
	Zip                    // $module/@v/$version.zip
)

// String returns the name used for the kind in logs and metrics.
func (k Kind) String() string {
	switch k {
	case List:
		return "list"
	case Latest:
		return "latest"
	case Info:
		return "info"
	case Mod:
		return "mod"
	case Zip:
		return "zip"
	}
	return "unknown"
}

// Ext returns the file extension of a version file kind (".info", ".mod",
// ".zip"), or "" for the other kinds.
func (k Kind) Ext() string {
	switch k {
	case Info:
		return ".info"
	case Mod:
		return ".mod"
	case Zip:
		return ".zip"
	}
	return ""
}

// MaxPathLen bounds the length of a request path. Module paths are far
// shorter in practice; anything longer is refused before any parsing work.
const MaxPathLen = 1024

// ErrInvalid is matched (with errors.Is) by every error Parse returns.
var ErrInvalid = errors.New("invalid request")

// Error describes why a request path was refused.
type Error struct {
	Path   string // the request path, possibly shortened
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid request %q: %s", e.Path, e.Reason)
}

// Is reports whether target is ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// Request is a parsed, validated module proxy request.
type Request struct {
	Kind    Kind
	Module  string // the module path, decoded ("github.com/BurntSushi/toml")
	Version string // the version, decoded; empty for List and Latest

	// Query reports that Version is not a canonical semantic version but a
	// query the upstream resolves (a branch name, a commit prefix, "v1.2").
	// Only Info requests may carry a query.
	Query bool
}

// Canonical reports whether the request names one immutable file: the
// .info, .mod or .zip of a canonical version.
func (r Request) Canonical() bool {
	return r.Version != "" && !r.Query
}

// Path returns the case-encoded request path for r, without a leading
// slash: the form used both on the wire and as a store key.
func (r Request) Path() string {
	p, _ := module.EscapePath(r.Module)
	switch r.Kind {
	case List:
		return p + "/@v/list"
	case Latest:
		return p + "/@latest"
	}
	v, _ := module.EscapeVersion(r.Version)
	return p + "/@v/" + v + r.Kind.Ext()
}

func shorten(p string) string {
	if len(p) > 80 {
		return p[:80] + "..."
	}
	return p
}

// Parse parses an (already URL-unescaped) request path such as
// "/github.com/!burnt!sushi/toml/@v/v1.4.0.zip". One leading slash is
// ignored ("//host/..." is refused). Every error matches ErrInvalid.
func Parse(path string) (Request, error) {
	bad := func(reason string) (Request, error) {
		return Request{}, &Error{Path: shorten(path), Reason: reason}
	}
	if len(path) > MaxPathLen {
		return bad("path too long")
	}
	p := strings.TrimPrefix(path, "/")
	var r Request
	var escMod, escVer string
	if before, ok := strings.CutSuffix(p, "/@latest"); ok {
		r.Kind, escMod = Latest, before
	} else {
		i := strings.LastIndex(p, "/@v/")
		if i < 0 {
			return bad("not a module proxy path (no /@v/ or /@latest)")
		}
		escMod, escVer = p[:i], p[i+len("/@v/"):]
		if escVer == "list" {
			r.Kind = List
			escVer = ""
		} else {
			switch {
			case strings.HasSuffix(escVer, ".info"):
				r.Kind = Info
			case strings.HasSuffix(escVer, ".mod"):
				r.Kind = Mod
			case strings.HasSuffix(escVer, ".zip"):
				r.Kind = Zip
			default:
				return bad("unknown endpoint (want list, .info, .mod or .zip)")
			}
			escVer = strings.TrimSuffix(escVer, r.Kind.Ext())
		}
	}
	mod, err := module.UnescapePath(escMod)
	if err != nil {
		return bad(err.Error())
	}
	r.Module = mod
	if r.Kind == List || r.Kind == Latest {
		return r, nil
	}
	if escVer == "" {
		return bad("empty version")
	}
	v, err := module.UnescapeVersion(escVer)
	if err != nil {
		return bad(err.Error())
	}
	r.Version = v
	if semver.IsValid(v) && module.CanonicalVersion(v) == v {
		if err := checkVersion(mod, v); err != nil {
			if r.Kind != Info {
				return bad(err.Error())
			}
			// The go command may ask .info for a version that does not
			// fit the path's major version; it is a query the
			// upstream answers (normally with "not found").
			r.Query = true
		}
		return r, nil
	}
	// Not canonical: only .info may carry a query.
	if r.Kind != Info {
		return bad(fmt.Sprintf("version %q is not canonical", v))
	}
	if !validQuery(v) {
		return bad(fmt.Sprintf("invalid version query %q", v))
	}
	r.Query = true
	return r, nil
}

// checkVersion is module.Check plus the go command's rule for
// "+incompatible", which module.Check does not enforce: the suffix is only
// for major versions v2 and above of a module path without a major version
// suffix (not "example.com/m/v2", not "gopkg.in/yaml.v3").
func checkVersion(mod, v string) error {
	// The path itself was checked by module.UnescapePath; only the
	// version's fit with it is left (module.Check would check both).
	_, pathMajor, _ := module.SplitPathVersion(mod)
	if err := module.CheckPathMajor(v, pathMajor); err != nil {
		return &module.ModuleError{Path: mod, Err: err}
	}
	if semver.Build(v) == "+incompatible" {
		if m := semver.Major(v); pathMajor != "" || m == "v0" || m == "v1" {
			return fmt.Errorf("%s@%s: +incompatible suffix not allowed here", mod, v)
		}
	}
	return nil
}

// validQuery reports whether q may be forwarded as a version query: a
// single path element made of the characters allowed in file names of
// module paths, as module.CheckFilePath defines them.
func validQuery(q string) bool {
	if len(q) > 256 || q == "." || q == ".." {
		return false
	}
	return module.CheckFilePath(q) == nil && !strings.Contains(q, "/")
}
