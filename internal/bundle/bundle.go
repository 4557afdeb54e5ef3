// Package bundle moves module versions across an air gap: Export writes
// chosen versions held by a mirror, with their h1: hashes and the checksum
// database proofs for them (the signed tree heads in the lookup records and
// the tiles proving each record's inclusion), into one file; Import checks
// every file of a bundle against those hashes and every hash against the
// database's signed tree, with the importing side's own key, before it
// writes anything, so that a bundle that fails any check imports nothing.
//
// A bundle is a tar file. Its first entry is the manifest, agora-bundle.json;
// the others are named by the store keys they are imported under:
//
//	mod/<module>/@v/<version>.info|.mod|.zip
//	sumdb/<name>/lookup/<module>@<version>
//	sumdb/<name>/tile/...
package bundle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/module"

	"github.com/agora-mirror/agora/internal/meta"
)

// ManifestName is the name of a bundle's first entry.
const ManifestName = "agora-bundle.json"

// Format is the bundle format version this package writes and reads.
const Format = 1

// ErrInvalid is matched by the errors of Import for a bundle that fails a
// check: malformed, truncated, or with content that does not match its
// hashes or the checksum database.
var ErrInvalid = errors.New("invalid bundle")

// Manifest describes a bundle.
type Manifest struct {
	Format  int
	Created time.Time
	// SumDB is the name of the checksum database whose proofs the bundle
	// carries; empty if none.
	SumDB string `json:",omitempty"`
	// TreeHead is the latest signed tree head among the proofs.
	TreeHead string `json:",omitempty"`
	Versions []Entry
	// SumDBFiles lists the bundle's checksum database entries
	// (lookup records and tiles), as store keys.
	SumDBFiles []string `json:",omitempty"`
}

// Entry is a module version in a bundle.
type Entry struct {
	Path, Version    string
	ZipHash, ModHash string
	// Verification is meta.Verified (the bundle carries its checksum
	// database proof) or meta.Pinned (a private module: only its own
	// hashes vouch for it).
	Verification string
	Origin       string `json:",omitempty"`
}

// Catalog is the part of the metadata database bundles use. *meta.DB
// implements it.
type Catalog interface {
	Version(ctx context.Context, path, version string) (meta.Version, error)
	Index(ctx context.Context, since time.Time, limit int) ([]meta.Version, error)
	AddVersion(ctx context.Context, v meta.Version) (meta.Version, bool, error)
	State(ctx context.Context, key string) ([]byte, time.Time, error)
	SwapState(ctx context.Context, key string, old, new []byte) (bool, error)
	Pin(ctx context.Context, path, version, file, hash string) (string, error)
	PinnedHash(ctx context.Context, path, version, file string) (string, error)
}

// ParseVersions parses "module@version" arguments.
func ParseVersions(args []string) ([]module.Version, error) {
	var out []module.Version
	for _, a := range args {
		p, v, ok := strings.Cut(a, "@")
		if !ok {
			return nil, fmt.Errorf("%q: want module@version", a)
		}
		if err := module.Check(p, v); err != nil {
			return nil, err
		}
		if module.CanonicalVersion(v) != v {
			return nil, fmt.Errorf("%s: version %q is not canonical", p, v)
		}
		out = append(out, module.Version{Path: p, Version: v})
	}
	return out, nil
}
