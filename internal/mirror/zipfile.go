package mirror

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
)

// inspectZip checks what x/mod/zip.CheckZip leaves alone: every entry
// must be a regular file (or a directory), since a symbolic link or device
// entry could do harm in tools that unpack zips less carefully than the go
// command. It also returns the content of the entry named goMod, or nil if
// there is none.
func inspectZip(zipName, goMod string) ([]byte, error) {
	z, err := zip.OpenReader(zipName)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	var data []byte
	for _, f := range z.File {
		if m := f.Mode(); !m.IsRegular() && !m.IsDir() {
			return nil, fmt.Errorf("%s: not a regular file (mode %v)", f.Name, m)
		}
		if f.Name != goMod {
			continue
		}
		if f.UncompressedSize64 > MaxModSize {
			return nil, errors.New("go.mod in zip too large")
		}
		r, err := f.Open()
		if err != nil {
			return nil, err
		}
		data, err = io.ReadAll(io.LimitReader(r, MaxModSize+1))
		r.Close()
		if err != nil {
			return nil, err
		}
	}
	return data, nil
}
