package mirror

import (
	"context"
	"errors"
	"fmt"
)

// ErrChanged is matched by errors about a version whose content differs
// from what was first fetched for it (a moved tag, a rewritten history).
var ErrChanged = errors.New("content differs from the first fetch")

// ChangedError reports a version whose file hashes differently than when
// it was first fetched. The first content stays authoritative.
type ChangedError struct {
	Module, Version string
	File            string // "zip" or "go.mod"
	Source          string
	Got, Want       string // the hash now, and the hash first recorded
}

func (e *ChangedError) Error() string {
	return fmt.Sprintf("%s@%s: %s from %s refused: %v (was the tag moved?)\n\tnow: %s\n\tfirst fetched: %s",
		e.Module, e.Version, e.File, e.Source, ErrChanged, e.Got, e.Want)
}

// Is reports whether target is ErrChanged or ErrBadUpstream.
func (e *ChangedError) Is(target error) bool { return target == ErrChanged || target == ErrBadUpstream }

// pin records the hash of a version's file the first time it is fetched,
// and refuses a later fetch whose hash differs. It stands in for the
// checksum database for modules that are not in one (private modules):
// once Agora has served a version, its content never changes, even if
// its files are lost and fetched again. Pins live in the catalog, shared
// by replicas.
func (m *Mirror) pin(ctx context.Context, path, vers, file, hash, src string) error {
	want, err := m.cat.Pin(ctx, path, vers, file, hash)
	if err != nil {
		return err
	}
	if want != hash {
		err := &ChangedError{Module: path, Version: vers, File: file, Source: src, Got: hash, Want: want}
		m.log.Error("REFUSED: version content changed since it was first fetched", "module", path, "version", vers, "file", file, "source", src, "now", hash, "first", want)
		return err
	}
	return nil
}
