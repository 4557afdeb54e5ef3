package mirror

import (
	"context"
	"fmt"

	"github.com/agora-mirror/agora/internal/upstream"
)

type noFetchKey struct{}

// WithoutFetch returns a context under which the mirror answers only from
// what it holds, never asking an upstream or version control: the
// Disable-Module-Fetch request header.
func WithoutFetch(ctx context.Context) context.Context {
	return context.WithValue(ctx, noFetchKey{}, true)
}

// mayFetch reports whether a request may cause fetches: not when the
// mirror is offline, nor under WithoutFetch.
func (m *Mirror) mayFetch(ctx context.Context) bool {
	return !m.offline && ctx.Value(noFetchKey{}) == nil
}

// notHeld is the error for a file that is not held when fetching is not
// allowed. It matches upstream.ErrOff, hence upstream.ErrNotFound: a 404,
// so the go command tries its next proxy.
func (m *Mirror) notHeld(what string) error {
	why := "fetching is disabled for this request (Disable-Module-Fetch)"
	if m.offline {
		why = "Agora is offline"
	}
	return fmt.Errorf("%s: not held here, and %s: %w", what, why, upstream.ErrOff)
}
