package mirror

import (
	"archive/zip"
	"errors"
	"io"
)

// readZipGoMod returns the content of the file named name in the zip
// file zipName, or nil if there is none.
func readZipGoMod(zipName, name string) ([]byte, error) {
	z, err := zip.OpenReader(zipName)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	for _, f := range z.File {
		if f.Name != name {
			continue
		}
		if f.UncompressedSize64 > MaxModSize {
			return nil, errors.New("go.mod in zip too large")
		}
		r, err := f.Open()
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return io.ReadAll(io.LimitReader(r, MaxModSize+1))
	}
	return nil, nil
}
