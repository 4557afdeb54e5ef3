package metrics

import (
	"errors"
	"sync"
	"time"

	"github.com/agora-mirror/agora/internal/upstream"
)

// Minute is the traffic of one minute, for the status page's chart.
type Minute struct {
	Start            time.Time
	Requests         int64
	Hits, Misses     int64
	Errors           int64 // answers with a 5xx status
	BytesServed      int64
	Fetches, Refused int64
}

// history keeps the last hour of traffic, a bucket a minute.
type history struct {
	mu      sync.Mutex
	minutes [60]Minute
	sources map[string]*SourceHealth
}

// SourceHealth is what the last fetches from a source did: an upstream
// proxy (by its URL, credentials hidden), "version control", or the kind
// of source when the fetch failed before naming one.
type SourceHealth struct {
	Source               string
	LastOK, LastError    time.Time
	LastErrorText        string
	OK, NotFound, Failed int64
	LastDuration         time.Duration
}

func (h *history) bucket(now time.Time) *Minute {
	start := now.Truncate(time.Minute)
	b := &h.minutes[start.Unix()/60%60]
	if !b.Start.Equal(start) {
		*b = Minute{Start: start}
	}
	return b
}

func (h *history) request(code int, bytes int64, cache string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.bucket(time.Now())
	b.Requests++
	b.BytesServed += bytes
	switch cache {
	case "hit":
		b.Hits++
	case "miss":
		b.Misses++
	}
	if code >= 500 {
		b.Errors++
	}
}

func (h *history) fetch(source string, d time.Duration, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bucket(time.Now()).Fetches++
	if h.sources == nil {
		h.sources = make(map[string]*SourceHealth)
	}
	s := h.sources[source]
	if s == nil {
		s = &SourceHealth{Source: source}
		h.sources[source] = s
	}
	s.LastDuration = d
	switch {
	case err == nil:
		s.OK++
		s.LastOK = time.Now()
	case errors.Is(err, upstream.ErrNotFound):
		s.NotFound++
		s.LastOK = time.Now() // it answered
	default:
		s.Failed++
		s.LastError, s.LastErrorText = time.Now(), err.Error()
	}
}

func (h *history) refused() {
	h.mu.Lock()
	h.bucket(time.Now()).Refused++
	h.mu.Unlock()
}

// LastHour returns the traffic of the last 60 minutes, oldest first
// (minutes without traffic included, with zero counts).
func (m *Metrics) LastHour() []Minute {
	h := &m.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now().Truncate(time.Minute)
	out := make([]Minute, 60)
	for i := range out {
		start := now.Add(time.Duration(i-59) * time.Minute)
		b := h.minutes[start.Unix()/60%60]
		if !b.Start.Equal(start) {
			b = Minute{Start: start}
		}
		out[i] = b
	}
	return out
}

// Sources returns the health of each source fetched from so far.
func (m *Metrics) Sources() []SourceHealth {
	h := &m.hist
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []SourceHealth
	for _, s := range h.sources {
		out = append(out, *s)
	}
	return out
}
