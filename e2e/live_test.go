package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/agora-mirror/agora/internal/modtest"
)

// TestLiveUpstream fetches a few real modules through Agora from the
// machine's configured upstream (go env GOPROXY) and verifies their sums
// with the real checksum database (go env GOSUMDB) through Agora. It
// leaves the machine, so it runs only when AGORA_LIVE_TEST=1.
func TestLiveUpstream(t *testing.T) {
	if os.Getenv("AGORA_LIVE_TEST") != "1" {
		t.Skip("set AGORA_LIVE_TEST=1 to fetch real modules from the configured upstream")
	}
	goenv := func(name string) string {
		out, err := exec.Command("go", "env", name).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	proxy, sumdb := goenv("GOPROXY"), goenv("GOSUMDB")
	a := startAgora(t, "", nil, "--upstream", proxy, "--sumdb", sumdb)
	env := modtest.GoEnv(t, "GOPROXY="+a.URL, "GOSUMDB="+sumdb)
	mods := []string{"golang.org/x/mod@v0.43.0", "golang.org/x/sync@v0.25.0", "github.com/BurntSushi/toml@v1.6.0"}
	out, err := runGo(t, "", env, append([]string{"mod", "download", "-json"}, mods...)...)
	for _, d := range parseDownload(t, out) {
		if d.Error != "" {
			// The upstream reachable here refuses some modules (403,
			// "not available"): that is not a fault of the mirror.
			if strings.Contains(d.Error, "not available") || strings.Contains(d.Error, "403") {
				t.Logf("%s@%s not available from the upstream: %s", d.Path, d.Version, d.Error)
				continue
			}
			t.Errorf("%s@%s: %s", d.Path, d.Version, d.Error)
		}
	}
	if err != nil && !strings.Contains(out, "not available") {
		t.Errorf("go mod download: %v", err)
	}
	if !strings.Contains(a.logs.String(), "/sumdb/"+strings.Fields(sumdb)[0]+"/lookup/") {
		t.Errorf("no checksum database lookup went through agora")
	}
}
