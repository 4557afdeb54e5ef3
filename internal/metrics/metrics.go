// Package metrics keeps Agora's Prometheus metrics: requests by endpoint
// and status, cache hits and misses, bytes served, fetches from upstreams
// and version control with their durations and failures, content refused
// on ingest, and fills in progress. It serves them in the Prometheus text
// format.
//
// The packages that do the work report to it through small interfaces of
// their own (mirror.Observer); only this package knows Prometheus.
package metrics

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agora-mirror/agora/internal/upstream"
)

// Metrics is the set of Agora's metrics, in their own registry.
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	cache     *prometheus.CounterVec
	bytes     *prometheus.CounterVec
	fetches   *prometheus.CounterVec
	fetchTime *prometheus.HistogramVec
	refused   *prometheus.CounterVec
	ahead     *prometheus.CounterVec
	hist      history
	series    sync.Map // requestKey -> *requestSeries
}

// New returns the metrics, with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agora_requests_total", Help: "HTTP requests answered, by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agora_request_duration_seconds", Help: "Time to answer HTTP requests, by endpoint.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agora_cache_requests_total", Help: "Requests for version files answered from the store (hit) or after a fill (miss).",
		}, []string{"endpoint", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agora_served_bytes_total", Help: "Response body bytes sent, by endpoint.",
		}, []string{"endpoint"}),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agora_fetches_total", Help: "Files fetched from upstream proxies or version control, by source, file and result (ok, not_found, error).",
		}, []string{"source", "file", "result"}),
		fetchTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agora_fetch_duration_seconds", Help: "Time to fetch a file from its source.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}, []string{"source", "file"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agora_refused_total", Help: "Fetched content refused on ingest: checksum (mismatch with the checksum database), changed (differs from the first fetch), invalid (malformed).",
		}, []string{"reason"}),
		ahead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agora_fill_ahead_total", Help: "Versions queued to be filled ahead (fill_ahead), by file (mod: .info and .mod; zip) and result: filled, held (already), failed, dropped (queue full).",
		}, []string{"file", "result"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.cache, m.bytes, m.fetches, m.fetchTime, m.refused, m.ahead,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Gauge registers a gauge whose value is read from f at each scrape.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Request records one answered request. cache is "hit", "miss" or "".
func (m *Metrics) Request(endpoint string, code int, bytes int64, d time.Duration, cache string) {
	s := m.requestSeries(endpoint, code, cache)
	s.requests.Inc()
	s.duration.Observe(d.Seconds())
	s.bytes.Add(float64(bytes))
	if s.cache != nil {
		s.cache.Inc()
	}
	m.hist.request(code, bytes, cache)
}

// requestKey names the series one request updates.
type requestKey struct {
	endpoint string
	code     int
	cache    string
}

// requestSeries are the series of one requestKey, looked up once: label
// lookups (hashing and checking the values) cost as much as the rest of a
// request answered from memory.
type requestSeries struct {
	requests, bytes, cache prometheus.Counter
	duration               prometheus.Observer
}

func (m *Metrics) requestSeries(endpoint string, code int, cache string) *requestSeries {
	k := requestKey{endpoint, code, cache}
	if s, ok := m.series.Load(k); ok {
		return s.(*requestSeries)
	}
	s := &requestSeries{
		requests: m.requests.WithLabelValues(endpoint, strconv.Itoa(code)),
		duration: m.duration.WithLabelValues(endpoint),
		bytes:    m.bytes.WithLabelValues(endpoint),
	}
	if cache != "" {
		s.cache = m.cache.WithLabelValues(endpoint, cache)
	}
	actual, _ := m.series.LoadOrStore(k, s)
	return actual.(*requestSeries)
}

// FetchDone records one fetch of a file ("info", "mod", "zip", "list",
// ...) from a source ("upstream" or "vcs"); origin names the upstream
// that answered, when known (the status page's health is per upstream).
func (m *Metrics) FetchDone(source, origin, file string, d time.Duration, err error) {
	result := "ok"
	switch {
	case errors.Is(err, upstream.ErrNotFound):
		result = "not_found"
	case err != nil:
		result = "error"
	}
	m.fetches.WithLabelValues(source, file, result).Inc()
	m.fetchTime.WithLabelValues(source, file).Observe(d.Seconds())
	var ue *upstream.Error
	switch {
	case origin != "":
	case errors.As(err, &ue):
		origin = ue.Source
	default:
		origin = source
	}
	m.hist.fetch(origin, d, err)
}

// FilledAhead counts a version queued to be filled ahead, by file and
// result.
func (m *Metrics) FilledAhead(file, result string) {
	m.ahead.WithLabelValues(file, result).Inc()
}

// Refused records content refused on ingest, by reason.
func (m *Metrics) Refused(reason string) {
	m.refused.WithLabelValues(reason).Inc()
	m.hist.refused()
}
