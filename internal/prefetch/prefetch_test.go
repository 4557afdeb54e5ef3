package prefetch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/module"
)

func TestReadList(t *testing.T) {
	vs, err := readList(strings.NewReader("# comment\n\nexample.com/a@v1.0.0\n  example.com/b@v2.1.0+incompatible # why\n"), "list")
	if err != nil || len(vs) != 2 || vs[1] != (module.Version{Path: "example.com/b", Version: "v2.1.0+incompatible"}) {
		t.Fatalf("readList = %v, %v", vs, err)
	}
	for _, bad := range []string{"example.com/a", "example.com/a@latest", "example.com/a@v1.0", "../x@v1.0.0"} {
		if _, err := readList(strings.NewReader(bad+"\n"), "list"); err == nil || !strings.Contains(err.Error(), "list:1") {
			t.Errorf("readList(%q) = %v, want an error naming the line", bad, err)
		}
	}
}

func TestReadGoSum(t *testing.T) {
	name := filepath.Join(t.TempDir(), "go.sum")
	os.WriteFile(name, []byte("example.com/a v1.0.0 h1:x=\nexample.com/a v1.0.0/go.mod h1:y=\nexample.com/b v0.1.0/go.mod h1:z=\n"), 0o644)
	targets := make(map[module.Version]bool)
	if err := readGoSum(name, targets); err != nil {
		t.Fatal(err)
	}
	// Only versions whose zip the go.sum records: b's go.mod alone is
	// needed for the graph, not its zip.
	if len(targets) != 1 || !targets[module.Version{Path: "example.com/a", Version: "v1.0.0"}] {
		t.Errorf("targets = %v", targets)
	}
	os.WriteFile(name, []byte("not a go.sum line\n"), 0o644)
	if err := readGoSum(name, targets); err == nil {
		t.Error("a malformed go.sum was accepted")
	}
}

func TestDistinctPaths(t *testing.T) {
	a1, a2, b := module.Version{Path: "a.example/m", Version: "v1.0.0"}, module.Version{Path: "a.example/m", Version: "v1.1.0"}, module.Version{Path: "b.example/m", Version: "v1.0.0"}
	groups := distinctPaths([]module.Version{a1, b, a2})
	if len(groups) != 2 || len(groups[0]) != 2 || groups[1][0] != a2 {
		t.Errorf("distinctPaths = %v", groups)
	}
}
