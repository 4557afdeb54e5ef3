// Package gosum reads go.sum files (which module versions they list) and
// computes the hash a go.sum line records for a go.mod file.
package gosum

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
)

// Line is one line of a go.sum file: a module version, and whether the
// line is the hash of its go.mod alone ("<version>/go.mod") rather than of
// its zip.
type Line struct {
	module.Version
	GoMod bool
}

// Read returns the lines of the go.sum file name, in order. Blank lines
// are skipped; a line that is not "<path> <version>[/go.mod] <hash>" with
// a valid path and version is an error naming the file and line.
func Read(name string) ([]Line, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []Line
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 3 {
			return nil, fmt.Errorf("%s:%d: not a go.sum line", name, n)
		}
		vers, goMod := strings.CutSuffix(fields[1], "/go.mod")
		if err := module.Check(fields[0], vers); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		lines = append(lines, Line{Version: module.Version{Path: fields[0], Version: vers}, GoMod: goMod})
	}
	return lines, sc.Err()
}

// ModHash returns the hash of a go.mod file's content as a go.sum line
// records it ("<path> <version>/go.mod h1:..."), and as the checksum
// database gives it: dirhash.Hash1 of one file named "go.mod".
func ModHash(data []byte) (string, error) {
	return dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}
