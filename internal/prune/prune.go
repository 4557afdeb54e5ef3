// Package prune bounds a mirror's storage: it removes the files of versions
// that were neither added nor requested for a given time, never those a
// listed go.sum still needs. Pruned versions leave lists and the catalog
// but keep their module index entry, and their hashes stay pinned, so a
// version fetched again later must be the same.
package prune

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/mod/module"

	"github.com/agora-mirror/agora/internal/gosum"
	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/store"
)

// Catalog is the part of the metadata database prune uses. *meta.DB
// implements it.
type Catalog interface {
	Unused(ctx context.Context, before time.Time) ([]meta.Version, error)
	MarkPruned(ctx context.Context, path, version string) error
}

// Options configure Run.
type Options struct {
	Store   store.Store
	Catalog Catalog
	// UnusedFor: versions neither added nor requested for this long are
	// removed.
	UnusedFor time.Duration
	// Keep holds the versions that must stay, whatever their use.
	Keep map[module.Version]bool
	// Apply removes; without it, Run only reports what it would remove.
	Apply bool
	// Progress receives a line per version and a summary; nil for none.
	Progress io.Writer
}

// Result counts what Run did (or would do).
type Result struct {
	Removed int   // versions removed (or that would be)
	Kept    int   // unused versions kept because a go.sum needs them
	Bytes   int64 // bytes of files removed (or that would be)
}

// Run removes (or, without Apply, lists) the unused versions.
func Run(ctx context.Context, o Options) (Result, error) {
	var res Result
	out := o.Progress
	if out == nil {
		out = io.Discard
	}
	if o.UnusedFor <= 0 {
		return res, errors.New("prune: the unused-for duration must be positive")
	}
	unused, err := o.Catalog.Unused(ctx, time.Now().Add(-o.UnusedFor))
	if err != nil {
		return res, err
	}
	verb := "would remove"
	if o.Apply {
		verb = "removed"
	}
	for _, v := range unused {
		if o.Keep[module.Version{Path: v.Path, Version: v.Version}] {
			res.Kept++
			continue
		}
		if o.Apply {
			// Out of lists first, then the files: never a listed
			// version without them.
			if err := o.Catalog.MarkPruned(ctx, v.Path, v.Version); err != nil {
				return res, err
			}
			for _, ext := range []string{".zip", ".info", ".mod"} {
				if err := o.Store.Delete(ctx, mirror.FileKey(v.Path, v.Version, ext)); err != nil {
					return res, err
				}
			}
		}
		res.Removed++
		res.Bytes += v.Size
		fmt.Fprintf(out, "%s %s@%s (%d bytes, added %s)\n", verb, v.Path, v.Version, v.Size, v.Added.Format(time.RFC3339))
	}
	if !o.Apply {
		verb = "would remove (dry run; -apply removes)"
	}
	fmt.Fprintf(out, "%s %d versions, %d bytes; kept %d unused versions a go.sum needs\n", verb, res.Removed, res.Bytes, res.Kept)
	return res, nil
}

// ReadGoSum adds to keep every module version a go.sum file lists.
func ReadGoSum(name string, keep map[module.Version]bool) error {
	lines, err := gosum.Read(name)
	for _, l := range lines {
		keep[l.Version] = true
	}
	return err
}
