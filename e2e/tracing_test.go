package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestTracing: with otlp_endpoint set, each fill is traced to the
// collector: the fill, its lock, fetch, check and store.
func TestTracing(t *testing.T) {
	var mu sync.Mutex
	spans := make(map[string]map[string]string) // name -> attributes
	parents := make(map[string]string)          // name -> parent's name
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		byID := make(map[string]string)
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					byID[string(sp.SpanId)] = sp.Name
				}
			}
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					attrs := make(map[string]string)
					for _, kv := range sp.Attributes {
						attrs[kv.Key] = kv.Value.GetStringValue()
					}
					spans[sp.Name] = attrs
					parents[sp.Name] = byID[string(sp.ParentSpanId)]
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(nil)
	}))
	defer collector.Close()

	f := newFixture(t)
	a := startAgora(t, "", nil, append(f.agoraArgs(""), "--otlp-endpoint", collector.URL)...)
	mustGo(t, "", f.goEnv(t, a), "mod", "download", "example.com/hello@v1.1.0")
	a.stop(t) // flushes the traces

	mu.Lock()
	defer mu.Unlock()
	if got := spans["agora.fill zip"]["agora.fill.target"]; got != "example.com/hello@v1.1.0" {
		t.Errorf("fill span's target = %q; spans seen: %v", got, spans)
	}
	for _, child := range []string{"agora.lock", "agora.fetch", "agora.check", "agora.store"} {
		if _, ok := spans[child]; !ok {
			t.Errorf("no %s span; spans seen: %v", child, spans)
		}
	}
	if p := parents["agora.store"]; p != "agora.fill zip" {
		t.Errorf("agora.store's parent = %q, want agora.fill zip", p)
	}
	if _, ok := spans["agora.fill meta"]; !ok {
		t.Errorf("no span for the .info/.mod fill; spans seen: %v", spans)
	}
}
