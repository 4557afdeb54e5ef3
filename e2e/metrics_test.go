package e2e

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// scrape returns the samples of a Prometheus text exposition, keyed by
// metric name with labels as written.
func scrape(t *testing.T, url string) map[string]string {
	t.Helper()
	code, _, body := get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d", url, code)
	}
	samples := make(map[string]string)
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			samples[line[:i]] = line[i+1:]
		}
	}
	return samples
}

func TestMetricsMatchAScriptedWorkload(t *testing.T) {
	f := newFixture(t)
	a := startAgora(t, "", nil, f.agoraArgs("")...)
	// Cold: one client fetches a version (.info, .mod, checksum database,
	// .zip); warm: a second client with an empty cache fetches it again.
	mustGo(t, "", f.goEnv(t, a), "mod", "download", "example.com/hello@v1.0.0")
	mustGo(t, "", f.goEnv(t, a), "mod", "download", "example.com/hello@v1.0.0")
	get(t, a.URL+"/example.com/nothere/@v/v1.0.0.info") // 404
	get(t, a.URL+"/example.com/hello/@v/v1.0.0.zip")    // a third zip, a hit

	m := scrape(t, a.URL+"/metrics")
	want := map[string]string{
		// The first .info fills .info and .mod together: one miss, and
		// every later .info and .mod is a hit.
		`agora_cache_requests_total{endpoint="info",result="miss"}`:             "1",
		`agora_cache_requests_total{endpoint="info",result="hit"}`:              "1",
		`agora_cache_requests_total{endpoint="mod",result="hit"}`:               "2",
		`agora_cache_requests_total{endpoint="zip",result="miss"}`:              "1",
		`agora_cache_requests_total{endpoint="zip",result="hit"}`:               "2",
		`agora_fetches_total{file="info",result="ok",source="upstream"}`:        "1",
		`agora_fetches_total{file="mod",result="ok",source="upstream"}`:         "1",
		`agora_fetches_total{file="zip",result="ok",source="upstream"}`:         "1",
		`agora_fetches_total{file="info",result="not_found",source="upstream"}`: "1",
		`agora_requests_total{code="200",endpoint="zip"}`:                       "3",
		`agora_requests_total{code="404",endpoint="info"}`:                      "1",
		`agora_requests_total{code="200",endpoint="info"}`:                      "2",
		`agora_fills_in_progress`:                                               "0",
		`agora_store_versions`:                                                  "1",
		`agora_store_modules`:                                                   "1",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %s", k, m[k], v)
		}
	}
	if _, ok := m[`agora_cache_requests_total{endpoint="mod",result="miss"}`]; ok {
		t.Errorf("a .mod was counted as a miss, though the .info fill brought it")
	}
	if m[`agora_served_bytes_total{endpoint="zip"}`] != strconv.Itoa(3*len(f.mod(t, "example.com/hello@v1.0.0").Zip)) {
		t.Errorf("zip bytes served = %s, want 3 zips", m[`agora_served_bytes_total{endpoint="zip"}`])
	}
	if m[`agora_store_bytes`] != strconv.Itoa(len(f.mod(t, "example.com/hello@v1.0.0").Zip)) {
		t.Errorf("agora_store_bytes = %s, want the one zip's size", m[`agora_store_bytes`])
	}
	if code, _, body := get(t, a.URL+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d %q", code, body)
	}
}
