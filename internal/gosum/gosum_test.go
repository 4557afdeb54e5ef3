package gosum

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/mod/module"
)

func TestRead(t *testing.T) {
	name := filepath.Join(t.TempDir(), "go.sum")
	os.WriteFile(name, []byte("example.com/a v1.0.0 h1:x=\nexample.com/a v1.0.0/go.mod h1:y=\n\nexample.com/b v0.1.0/go.mod h1:z=\n"), 0o644)
	got, err := Read(name)
	if err != nil {
		t.Fatal(err)
	}
	a, b := module.Version{Path: "example.com/a", Version: "v1.0.0"}, module.Version{Path: "example.com/b", Version: "v0.1.0"}
	want := []Line{{a, false}, {a, true}, {b, true}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Read = %v, want %v", got, want)
	}
	for _, bad := range []string{"example.com/a v1.0.0\n", "example.com/a 1.0 h1:x=\n"} {
		os.WriteFile(name, []byte("example.com/c v1.0.0 h1:x=\n"+bad), 0o644)
		if _, err := Read(name); err == nil {
			t.Errorf("Read accepted %q", bad)
		}
	}
}
