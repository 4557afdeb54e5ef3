package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

type downloaded struct {
	Path, Version, Sum, GoModSum, Zip, Error string
}

func parseDownload(t *testing.T, out string) []downloaded {
	t.Helper()
	var res []downloaded
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var d downloaded
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("parsing go mod download -json output: %v\n%s", err, out)
		}
		res = append(res, d)
	}
	return res
}

func TestGoModDownloadVerifiesThroughAgora(t *testing.T) {
	f := newFixture(t)
	a := startAgora(t, "", nil, f.agoraArgs("")...)
	env := f.goEnv(t, a)
	out := mustGo(t, "", env, "mod", "download", "-json",
		"example.com/hello@v1.1.0", "example.com/old@v2.0.0+incompatible", "github.com/Upper/Case@v1.0.0",
		"example.com/hello/v2@v2.0.0", "example.com/hello@v1.1.1-0.20240301000000-abcdef123456")
	for _, d := range parseDownload(t, out) {
		b := f.mod(t, d.Path+"@"+d.Version)
		if d.Error != "" || d.Sum != b.ZipHash || d.GoModSum != b.ModHash {
			t.Errorf("%s@%s: error %q, sums %s %s; want %s %s", d.Path, d.Version, d.Error, d.Sum, d.GoModSum, b.ZipHash, b.ModHash)
		}
	}
	// The client's checksum database requests went through Agora.
	if !strings.Contains(a.logs.String(), "/sumdb/"+dbName+"/lookup/example.com/hello@v1.1.0") {
		t.Errorf("agora saw no checksum database lookup from the client")
	}
}
