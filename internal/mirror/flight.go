package mirror

import (
	"context"
	"sync"
	"time"
)

// flights collapses concurrent fills of the same key into one. Unlike
// x/sync/singleflight, a fill runs in its own context: it keeps going while
// any caller still waits for it, and is cancelled when the last one gives
// up, so a client that disconnects neither breaks the others' fill nor
// leaves an unwanted download running.
type flights struct {
	mu      sync.Mutex
	m       map[string]*flight
	timeout time.Duration
	running int           // fills' goroutines not yet ended
	idle    chan struct{} // closed when running drops to zero
}

type flight struct {
	done    chan struct{}
	err     error
	waiters int
	cancel  context.CancelFunc
}

// do runs fn once for all concurrent callers with the same key and
// returns its error, or the caller's own context error if it stops
// waiting first.
func (g *flights) do(ctx context.Context, key string, fn func(context.Context) error) error {
	g.mu.Lock()
	if g.m == nil {
		g.m = make(map[string]*flight)
	}
	f := g.m[key]
	if f == nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
		f = &flight{done: make(chan struct{}), cancel: cancel}
		g.m[key] = f
		g.running++
		go func() {
			defer g.ended()
			defer close(f.done)
			f.err = fn(fctx)
			cancel()
			g.mu.Lock()
			if g.m[key] == f {
				delete(g.m, key)
			}
			g.mu.Unlock()
		}()
	}
	f.waiters++
	g.mu.Unlock()

	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		g.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			// Abandoned: cancel it, and let the next caller start a
			// fresh fill rather than join one being cancelled.
			f.cancel()
			if g.m[key] == f {
				delete(g.m, key)
			}
		}
		g.mu.Unlock()
		return ctx.Err()
	}
}

// ended counts a fill's goroutine out.
func (g *flights) ended() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running--
	if g.running == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
}

// wait waits until no fill's goroutine is running, or for ctx.
func (g *flights) wait(ctx context.Context) error {
	g.mu.Lock()
	if g.running == 0 {
		g.mu.Unlock()
		return nil
	}
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	idle := g.idle
	g.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// inFlight returns the number of fills running.
func (g *flights) inFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.m)
}
