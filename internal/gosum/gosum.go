// Package gosum reads go.sum files: which module versions they list.
package gosum

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/module"
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
