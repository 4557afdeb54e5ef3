package bundle

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/store"
	"github.com/agora-mirror/agora/internal/sumdb"
)

// ImportOptions say where a bundle goes.
type ImportOptions struct {
	Store   store.Store
	Catalog Catalog
	// SumDB is the importing mirror's checksum database, whose key is
	// the trust anchor for the bundle's proofs; nil if it has none (then
	// only versions exempt from a database can be imported).
	SumDB *sumdb.Config
	// NoSum are the module path patterns (GOPRIVATE syntax) this mirror
	// never looks up in the checksum database: only they may come
	// "pinned", without proofs, when it has a database.
	NoSum string
}

// ImportResult counts what an import did.
type ImportResult struct {
	Added   int // versions new to the mirror
	Present int // versions it held already
}

// Limits on a bundle's entries.
const (
	maxManifest = 64 << 20
	maxSmall    = 16 << 20 // .info, .mod, checksum database files
	maxTotal    = 2 << 30  // all of those together (they are held in memory)
	maxEntries  = 1 << 20
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// staged is a bundle read and checked, not yet written.
type staged struct {
	m     Manifest
	small map[string][]byte // .info, .mod, checksum database files
	zips  map[string]string // zip key -> temporary file
	// proofs are the checksum database files verification read, by
	// key: the only ones stored.
	proofs map[string][]byte
}

func (s *staged) cleanup() {
	for _, name := range s.zips {
		os.Remove(name)
	}
}

// Import reads a bundle from r, checks all of it, and only then stores its
// versions (and the checksum database records and tiles, so that the
// mirror's checksum database proxy can serve them offline). A bundle that
// fails a check, or is cut short, imports nothing: the error matches
// ErrInvalid.
func Import(ctx context.Context, r io.Reader, o ImportOptions) (ImportResult, error) {
	s, err := stage(r, o.Store.TempDir())
	if s != nil {
		defer s.cleanup()
	}
	if err != nil {
		return ImportResult{}, err
	}
	if err := s.check(ctx, o); err != nil {
		return ImportResult{}, err
	}
	return s.write(ctx, o)
}

// stage reads the whole bundle: the manifest first, then exactly the
// entries it names, zips into temporary files.
func stage(r io.Reader, tmp string) (*staged, error) {
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err != nil {
		return nil, invalid("reading the manifest: %v", err)
	}
	if hdr.Name != ManifestName || hdr.Size > maxManifest {
		return nil, invalid("the first entry is %q (%d bytes), not the manifest %s", hdr.Name, hdr.Size, ManifestName)
	}
	s := &staged{small: make(map[string][]byte), zips: make(map[string]string), proofs: make(map[string][]byte)}
	data, err := io.ReadAll(tr)
	if err != nil {
		return nil, invalid("reading the manifest: %v", err)
	}
	if err := json.Unmarshal(data, &s.m); err != nil {
		return nil, invalid("manifest: %v", err)
	}
	if s.m.Format != Format {
		return nil, invalid("format %d, this Agora reads format %d", s.m.Format, Format)
	}
	if len(s.m.Versions)*3+len(s.m.SumDBFiles) > maxEntries {
		return nil, invalid("%d versions and %d checksum database files: more than one bundle may hold", len(s.m.Versions), len(s.m.SumDBFiles))
	}
	want := make(map[string]bool)
	for _, e := range s.m.Versions {
		if err := module.Check(e.Path, e.Version); err != nil || module.CanonicalVersion(e.Version) != e.Version {
			return nil, invalid("manifest names %s@%s: not a canonical module version", e.Path, e.Version)
		}
		if e.Verification != meta.Verified && e.Verification != meta.Pinned {
			return nil, invalid("%s@%s: unknown verification %q", e.Path, e.Version, e.Verification)
		}
		for _, ext := range []string{".info", ".mod", ".zip"} {
			want[mirror.FileKey(e.Path, e.Version, ext)] = true
		}
	}
	for _, k := range s.m.SumDBFiles {
		rest, ok := strings.CutPrefix(k, sumdb.CacheKey(s.m.SumDB+"/"))
		if s.m.SumDB == "" || !ok || store.CheckKey(k) != nil || !(strings.HasPrefix(rest, "lookup/") || strings.HasPrefix(rest, "tile/")) {
			return nil, invalid("manifest names checksum database file %q", k)
		}
		want[k] = true
	}
	var total int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s, invalid("reading: %v (is the bundle complete?)", err)
		}
		if !want[hdr.Name] || hdr.Typeflag != tar.TypeReg {
			return s, invalid("unexpected entry %q", hdr.Name)
		}
		delete(want, hdr.Name)
		if strings.HasSuffix(hdr.Name, ".zip") && strings.HasPrefix(hdr.Name, "mod/") {
			if hdr.Size > mirror.MaxZipSize {
				return s, invalid("%s: %d bytes, more than a module zip may have", hdr.Name, hdr.Size)
			}
			f, err := os.CreateTemp(tmp, "import-*.zip")
			if err != nil {
				return s, err
			}
			s.zips[hdr.Name] = f.Name()
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return s, invalid("%s: %v (is the bundle complete?)", hdr.Name, err)
			}
			continue
		}
		if hdr.Size > maxSmall || total+hdr.Size > maxTotal {
			return s, invalid("%s: %d bytes, too large", hdr.Name, hdr.Size)
		}
		total += hdr.Size
		data, err := io.ReadAll(tr)
		if err != nil {
			return s, invalid("%s: %v (is the bundle complete?)", hdr.Name, err)
		}
		s.small[hdr.Name] = data
	}
	for k := range want {
		return s, invalid("the manifest names %s, which the bundle lacks", k)
	}
	return s, nil
}

// check verifies every file against the manifest's hashes, every hash
// against the checksum database's proofs, and the versions against what
// the mirror holds already.
func (s *staged) check(ctx context.Context, o ImportOptions) error {
	var verified []Entry
	for _, e := range s.m.Versions {
		info := s.small[mirror.FileKey(e.Path, e.Version, ".info")]
		mod := s.small[mirror.FileKey(e.Path, e.Version, ".mod")]
		zipHash, modHash, err := mirror.CheckFiles(e.Path, e.Version, info, mod, s.zips[mirror.FileKey(e.Path, e.Version, ".zip")])
		if err != nil {
			var bc *mirror.BadContentError
			if errors.As(err, &bc) {
				bc.Source = "the bundle"
			}
			return invalid("%v", err)
		}
		if zipHash != e.ZipHash || modHash != e.ModHash {
			return invalid("%s@%s: the files hash to %s and %s (go.mod), the manifest says %s and %s",
				e.Path, e.Version, zipHash, modHash, e.ZipHash, e.ModHash)
		}
		// Only what this mirror exempts from the checksum database may
		// come without proofs, whatever the bundle says.
		private := o.SumDB == nil || module.MatchPrefixPatterns(o.NoSum, e.Path)
		switch {
		case e.Verification == meta.Pinned && !private:
			return invalid("%s@%s comes without checksum database proofs, and this mirror verifies it against %s", e.Path, e.Version, o.SumDB.Name)
		case e.Verification == meta.Verified && private && o.SumDB != nil:
			return invalid("%s@%s comes with checksum database proofs, and this mirror never looks it up (nosum)", e.Path, e.Version)
		case e.Verification == meta.Verified:
			verified = append(verified, e)
		default:
			if mp := modfile.ModulePath(mod); mp != e.Path {
				return invalid("%s@%s: its go.mod declares module %q", e.Path, e.Version, mp)
			}
		}
		held, err := o.Catalog.Version(ctx, e.Path, e.Version)
		if err == nil && (held.ZipHash != e.ZipHash || held.ModHash != e.ModHash) {
			return invalid("%s@%s: differs from the version this mirror holds (%s, %s)", e.Path, e.Version, held.ZipHash, held.ModHash)
		}
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		for file, h := range map[string]string{"zip": e.ZipHash, "go.mod": e.ModHash} {
			pin, err := o.Catalog.PinnedHash(ctx, e.Path, e.Version, file)
			if err == nil && pin != h {
				return invalid("%s@%s: its %s differs from the one this mirror first fetched (%s)", e.Path, e.Version, file, pin)
			}
			if err != nil && !errors.Is(err, meta.ErrNotFound) {
				return err
			}
		}
	}
	if len(verified) == 0 {
		if len(s.m.SumDBFiles) > 0 {
			return invalid("it carries checksum database files but no version that needs them")
		}
		s.m.TreeHead = ""
		return nil
	}
	if o.SumDB == nil {
		return invalid("it carries checksum database proofs, and this mirror has no checksum database to check them with")
	}
	if s.m.SumDB != o.SumDB.Name {
		return invalid("its proofs are from checksum database %q, this mirror uses %q", s.m.SumDB, o.SumDB.Name)
	}
	// Verify with this mirror's own key, from no tree head: every record
	// must be in a tree the key signed, proven by the bundle's tiles.
	have := func(p string) ([]byte, bool) {
		data, ok := s.small[sumdb.CacheKey(s.m.SumDB+"/"+p)]
		return data, ok
	}
	files, latest, err := proofs(o.SumDB.Key, have, verified)
	if err != nil {
		return invalid("%v", err)
	}
	maps.Copy(s.proofs, prefixed(s.m.SumDB, files))
	// Every file stored must have been read, hence checked, by the
	// verification: nothing rides along into the cache unchecked.
	for _, k := range s.m.SumDBFiles {
		if _, ok := s.proofs[k]; !ok {
			return invalid("checksum database file %s is not part of any proof", k)
		}
	}
	s.m.TreeHead = string(latest) // the verified one, whatever the manifest says
	return nil
}

// prefixed returns the files a proof read, by store key.
func prefixed(db string, reads map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(reads))
	for p, data := range reads {
		out[sumdb.CacheKey(db+p)] = data
	}
	return out
}

// write stores the checked bundle: files first, then the versions enter
// the catalog (and with it lists and the index).
func (s *staged) write(ctx context.Context, o ImportOptions) (ImportResult, error) {
	var res ImportResult
	put := func(key string, data []byte) error {
		if err := o.Store.Put(ctx, key, data); err != nil && !errors.Is(err, store.ErrExist) {
			return err
		}
		return nil
	}
	for key, data := range s.proofs {
		if err := put(key, data); err != nil {
			return res, err
		}
	}
	for _, e := range s.m.Versions {
		for _, ext := range []string{".mod", ".info"} {
			key := mirror.FileKey(e.Path, e.Version, ext)
			if err := put(key, s.small[key]); err != nil {
				return res, err
			}
		}
		if e.Verification == meta.Pinned {
			for file, h := range map[string]string{"zip": e.ZipHash, "go.mod": e.ModHash} {
				if _, err := o.Catalog.Pin(ctx, e.Path, e.Version, file, h); err != nil {
					return res, err
				}
			}
		}
		key := mirror.FileKey(e.Path, e.Version, ".zip")
		fi, err := os.Stat(s.zips[key])
		if err != nil {
			return res, err
		}
		if err := o.Store.PutFile(ctx, key, s.zips[key]); err != nil && !errors.Is(err, store.ErrExist) {
			return res, err
		}
		origin := "bundle"
		if e.Origin != "" {
			origin = "bundle (" + e.Origin + ")"
		}
		_, added, err := o.Catalog.AddVersion(ctx, meta.Version{Path: e.Path, Version: e.Version, ZipHash: e.ZipHash,
			ModHash: e.ModHash, Size: fi.Size(), Origin: origin, Verification: e.Verification})
		if err != nil {
			return res, err
		}
		if added {
			res.Added++
		} else {
			res.Present++
		}
	}
	if s.m.TreeHead != "" && o.SumDB != nil {
		if err := s.advanceTreeHead(ctx, o); err != nil {
			return res, err
		}
	}
	return res, nil
}

// advanceTreeHead makes the bundle's verified tree head the mirror's if it
// has none or an older one, so that an offline mirror serves it as the
// database's latest.
func (s *staged) advanceTreeHead(ctx context.Context, o ImportOptions) error {
	key := sumdb.LatestKey(o.SumDB.Name)
	newN, err := treeSize(o.SumDB.Key, []byte(s.m.TreeHead))
	if err != nil {
		return err
	}
	for {
		cur, _, err := o.Catalog.State(ctx, key)
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			return err
		}
		if len(cur) > 0 {
			if curN, err := treeSize(o.SumDB.Key, cur); err == nil && curN >= newN {
				return nil
			}
		}
		ok, err := o.Catalog.SwapState(ctx, key, cur, []byte(s.m.TreeHead))
		if err != nil || ok {
			return err
		}
	}
}
