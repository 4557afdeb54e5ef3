package mirror

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/agora-mirror/agora/internal/gosum"
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

// CheckFiles checks a version's files as they are checked on ingest, for
// files that come from elsewhere (a bundle being imported, the store being
// verified): the .info must name the version, the zip must be well-formed
// by the go command's rules with only regular files, and a go.mod inside
// it must be the .mod file. It returns the h1: hashes of the zip and the
// go.mod. Any of info, mod and zipName may be empty to skip that file. A
// refusal is a *BadContentError whose Source the caller may fill in.
func CheckFiles(path, vers string, info, mod []byte, zipName string) (zipHash, modH string, err error) {
	bad := func(file, reason string) error {
		return &BadContentError{Module: path, Version: vers, File: file, Reason: reason}
	}
	if info != nil {
		inf, _, err := parseInfo(info, path)
		if err == nil && inf.Version != vers {
			err = fmt.Errorf("info is for version %s", inf.Version)
		}
		if err != nil {
			return "", "", bad("info", err.Error())
		}
	}
	if mod != nil {
		if modH, err = gosum.ModHash(mod); err != nil {
			return "", "", bad("mod", err.Error())
		}
	}
	if zipName == "" {
		return "", modH, nil
	}
	if _, err := modzip.CheckZip(module.Version{Path: path, Version: vers}, zipName); err != nil {
		return "", "", bad("zip", err.Error())
	}
	inZip, err := inspectZip(zipName, path+"@"+vers+"/go.mod")
	if err != nil {
		return "", "", bad("zip", err.Error())
	}
	if inZip != nil && mod != nil && string(inZip) != string(mod) {
		return "", "", bad("zip", "its go.mod differs from the version's .mod file")
	}
	if zipHash, err = dirhash.HashZip(zipName, dirhash.Hash1); err != nil {
		return "", "", bad("zip", err.Error())
	}
	return zipHash, modH, nil
}
