// Package verify re-checks what a mirror holds: every recorded version's
// files are read back from the store and hashed again, compared with the
// hashes recorded when they entered (and, for versions verified against a
// checksum database, with its records held in the cache), and what is
// corrupt or missing can be quarantined, so that the mirror fetches it
// again instead of serving it.
package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/store"
)

// Catalog lists the versions held. *meta.DB implements it.
type Catalog interface {
	Index(ctx context.Context, since time.Time, limit int) ([]meta.Version, error)
}

// Options configure Run.
type Options struct {
	Store   store.Store
	Catalog Catalog
	// Verifier checks recorded hashes against the checksum database's
	// records (held ones only, when it is offline); nil skips that.
	Verifier mirror.Verifier
	// Quarantine moves the files of a corrupt or incomplete version
	// under quarantine/ in the store, so that the next request fetches
	// them again (the recorded hashes still bind what may come back).
	Quarantine bool
	// Progress receives one line per problem and a summary; nil for none.
	Progress io.Writer
}

// Problem is a version that failed a check.
type Problem struct {
	Path, Version string
	Kind          string // "missing", "corrupt" or "checksum"
	Detail        string
	Quarantined   bool
}

// Report is what Run found.
type Report struct {
	Checked  int
	Problems []Problem
}

// Run checks every recorded version.
func Run(ctx context.Context, o Options) (Report, error) {
	var rep Report
	out := o.Progress
	if out == nil {
		out = io.Discard
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	err := meta.EachIndexed(ctx, o.Catalog, time.Time{}, func(v meta.Version) error {
		rep.Checked++
		p := check(ctx, o, v)
		if p == nil {
			return nil
		}
		if o.Quarantine {
			if err := quarantine(ctx, o.Store, v, stamp); err != nil {
				return fmt.Errorf("quarantining %s@%s: %w", v.Path, v.Version, err)
			}
			p.Quarantined = true
		}
		rep.Problems = append(rep.Problems, *p)
		q := ""
		if p.Quarantined {
			q = " (quarantined: it will be fetched again)"
		}
		fmt.Fprintf(out, "%s %s@%s: %s%s\n", p.Kind, p.Path, p.Version, p.Detail, q)
		return nil
	})
	if err != nil {
		return rep, err
	}
	fmt.Fprintf(out, "verified %d versions: %d ok, %d with problems\n", rep.Checked, rep.Checked-len(rep.Problems), len(rep.Problems))
	return rep, nil
}

// check re-hashes one version's files.
func check(ctx context.Context, o Options, v meta.Version) *Problem {
	prob := func(kind, format string, args ...any) *Problem {
		return &Problem{Path: v.Path, Version: v.Version, Kind: kind, Detail: fmt.Sprintf(format, args...)}
	}
	get := func(ext string) ([]byte, *Problem) {
		data, err := o.Store.Get(ctx, mirror.FileKey(v.Path, v.Version, ext))
		if errors.Is(err, store.ErrNotExist) {
			return nil, prob("missing", "no %s file", ext)
		}
		if err != nil {
			return nil, prob("missing", "reading %s: %v", ext, err)
		}
		return data, nil
	}
	info, p := get(".info")
	if p != nil {
		return p
	}
	mod, p := get(".mod")
	if p != nil {
		return p
	}
	obj, err := o.Store.Open(ctx, mirror.FileKey(v.Path, v.Version, ".zip"))
	if errors.Is(err, store.ErrNotExist) {
		return prob("missing", "no .zip file")
	}
	if err != nil {
		return prob("missing", "reading .zip: %v", err)
	}
	tmp, err := copyToTemp(obj, o.Store.TempDir())
	obj.Close()
	if err != nil {
		return prob("missing", "reading .zip: %v", err)
	}
	defer os.Remove(tmp)
	zipHash, modHash, err := mirror.CheckFiles(v.Path, v.Version, info, mod, tmp)
	if err != nil {
		var bc *mirror.BadContentError
		if errors.As(err, &bc) {
			bc.Source = "the store"
		}
		return prob("corrupt", "%v", err)
	}
	if zipHash != v.ZipHash {
		return prob("corrupt", "zip hashes to %s, recorded %s", zipHash, v.ZipHash)
	}
	if modHash != v.ModHash {
		return prob("corrupt", "go.mod hashes to %s, recorded %s", modHash, v.ModHash)
	}
	if v.Verification == meta.Verified && o.Verifier != nil {
		if err := o.Verifier.Verify(ctx, v.Path, v.Version, v.ZipHash, v.ModHash); err != nil {
			return prob("checksum", "%v", err)
		}
	}
	return nil
}

func copyToTemp(r io.Reader, dir string) (string, error) {
	f, err := os.CreateTemp(dir, "verify-*.zip")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// quarantine moves a version's files to quarantine/<stamp>/<key>.
func quarantine(ctx context.Context, st store.Store, v meta.Version, stamp string) error {
	for _, ext := range []string{".zip", ".mod", ".info"} {
		key := mirror.FileKey(v.Path, v.Version, ext)
		obj, err := st.Open(ctx, key)
		if errors.Is(err, store.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		tmp, err := copyToTemp(obj, st.TempDir())
		obj.Close()
		if err != nil {
			return err
		}
		if err := st.PutFile(ctx, "quarantine/"+stamp+"/"+key, tmp); err != nil && !errors.Is(err, store.ErrExist) {
			return err
		}
		if err := st.Delete(ctx, key); err != nil {
			return err
		}
	}
	return nil
}
