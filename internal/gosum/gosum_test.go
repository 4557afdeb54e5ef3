package gosum

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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

// TestModHash checks ModHash against the h1: format written out: the
// SHA-256 of the line "<hex SHA-256 of the file>  go.mod\n", in base64.
func TestModHash(t *testing.T) {
	data := []byte("module example.com/a\n\ngo 1.21\n")
	file := sha256.Sum256(data)
	summary := sha256.Sum256([]byte(hex.EncodeToString(file[:]) + "  go.mod\n"))
	want := "h1:" + base64.StdEncoding.EncodeToString(summary[:])
	got, err := ModHash(data)
	if err != nil || got != want {
		t.Errorf("ModHash = %q, %v; want %q", got, err, want)
	}
}
