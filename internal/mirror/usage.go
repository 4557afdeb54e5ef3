package mirror

import (
	"context"
	"time"

	"github.com/agora-mirror/agora/internal/meta"
)

// useKey is a version requested; its strings are the request's, so
// noting a use allocates nothing on the hot path.
type useKey struct{ path, vers string }

// maxUsed is how many versions' uses are noted before the owner of the
// Mirror is asked (UsageFull) to flush early, so that the memory noted
// uses take stays bounded however many versions a minute brings.
const maxUsed = 50000

// noteUse notes that a client requested a version's file, unless ctx is
// a fill ahead's.
func (m *Mirror) noteUse(ctx context.Context, path, vers string) {
	if ctx.Value(aheadKey{}) == nil {
		m.used(path, vers)
	}
}

// used notes that a version's file was requested, for prune.
func (m *Mirror) used(path, vers string) {
	m.usedMu.Lock()
	m.usedSet[useKey{path, vers}] = struct{}{}
	full := len(m.usedSet) >= maxUsed
	m.usedMu.Unlock()
	if full {
		select {
		case m.usageFull <- struct{}{}:
		default: // already asked
		}
	}
}

// UsageFull receives a value when many uses are noted: call FlushUsage
// then, besides the periodic flush.
func (m *Mirror) UsageFull() <-chan struct{} { return m.usageFull }

// FlushUsage records in the catalog the versions requested since the last
// flush, as requested now. Run it periodically and at shutdown.
func (m *Mirror) FlushUsage(ctx context.Context) error {
	m.usedMu.Lock()
	set := m.usedSet
	m.usedSet = make(map[useKey]struct{}, len(set))
	m.usedMu.Unlock()
	if len(set) == 0 {
		return nil
	}
	now := time.Now()
	uses := make([]meta.Use, 0, len(set))
	for k := range set {
		uses = append(uses, meta.Use{Path: k.path, Version: k.vers, At: now})
	}
	return m.cat.Touch(ctx, uses)
}
