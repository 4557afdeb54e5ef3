package modtest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/module"
)

// WriteTree writes the GOPROXY file layout for mods under dir:
// <escaped path>/@v/list plus <escaped version>.info, .mod and .zip for
// each module version. The result can be used as GOPROXY=file://<dir>
// (dir should be absolute). The list names tagged versions only, like
// [Upstream]; versions already listed by an earlier WriteTree into the
// same dir are kept, so trees can be built up in several calls.
func WriteTree(dir string, mods ...*Built) error {
	byPath := make(map[string][]*Built)
	var order []string
	for _, b := range mods {
		if _, ok := byPath[b.Path]; !ok {
			order = append(order, b.Path)
		}
		byPath[b.Path] = append(byPath[b.Path], b)
	}
	for _, modPath := range order {
		escPath, err := module.EscapePath(modPath)
		if err != nil {
			return err
		}
		vdir := filepath.Join(dir, filepath.FromSlash(escPath), "@v")
		if err := os.MkdirAll(vdir, 0o777); err != nil {
			return err
		}
		listFile := filepath.Join(vdir, "list")
		seen := make(map[string]bool)
		var list []string
		old, err := os.ReadFile(listFile)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for _, v := range strings.Fields(string(old)) {
			if !seen[v] {
				seen[v] = true
				list = append(list, v)
			}
		}
		for _, b := range byPath[modPath] {
			escVers, err := module.EscapeVersion(b.Version)
			if err != nil {
				return err
			}
			for ext, data := range map[string][]byte{".info": b.Info, ".mod": b.Mod, ".zip": b.Zip} {
				if err := os.WriteFile(filepath.Join(vdir, escVers+ext), data, 0o666); err != nil {
					return err
				}
			}
			if !module.IsPseudoVersion(b.Version) && !seen[b.Version] {
				seen[b.Version] = true
				list = append(list, b.Version)
			}
		}
		if err := os.WriteFile(listFile, []byte(versionList(list)), 0o666); err != nil {
			return err
		}
	}
	return nil
}
