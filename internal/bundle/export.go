package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"golang.org/x/mod/module"

	"github.com/agora-mirror/agora/internal/meta"
	"github.com/agora-mirror/agora/internal/mirror"
	"github.com/agora-mirror/agora/internal/store"
	"github.com/agora-mirror/agora/internal/sumdb"
)

// ExportOptions say what to export and from where.
type ExportOptions struct {
	Store   store.Store
	Catalog Catalog
	// SumDB is the checksum database the mirror verifies against; nil
	// if none (then only versions exempt from it can be exported).
	SumDB *sumdb.Config
	// Versions to export; if empty, every version added at or after
	// Since.
	Versions []module.Version
	Since    time.Time
}

// Export writes a bundle of the chosen versions to w and returns its
// manifest. It fails, having written nothing useful, if a version is not
// held or its checksum database proof is not in the mirror's cache.
func Export(ctx context.Context, w io.Writer, o ExportOptions) (*Manifest, error) {
	recs, err := chosen(ctx, o)
	if err != nil {
		return nil, err
	}
	m := &Manifest{Format: Format, Created: time.Now().UTC()}
	proofFiles := make(map[string][]byte) // checksum database files, by key
	var verified []Entry
	for _, r := range recs {
		e := Entry{Path: r.Path, Version: r.Version, ZipHash: r.ZipHash, ModHash: r.ModHash,
			Verification: r.Verification, Origin: r.Origin}
		m.Versions = append(m.Versions, e)
		if e.Verification == meta.Verified {
			verified = append(verified, e)
		}
	}
	if len(verified) > 0 {
		if o.SumDB == nil {
			return nil, errors.New("versions verified against a checksum database, but none is configured to read proofs from")
		}
		// The proofs are the files a client starting from nothing reads
		// to verify these records: read them from the cache, recording.
		name := o.SumDB.Name
		held := func(p string) ([]byte, bool) { return sumdb.Held(ctx, o.Store, name, p) }
		files, latest, err := proofs(o.SumDB.Key, held, verified)
		if err != nil {
			return nil, fmt.Errorf("collecting checksum database proofs from the cache: %w", err)
		}
		m.SumDB, m.TreeHead = name, string(latest)
		for p, data := range files {
			key := sumdb.CacheKey(name + p)
			m.SumDBFiles = append(m.SumDBFiles, key)
			proofFiles[key] = data
		}
		slices.Sort(m.SumDBFiles)
	}

	tw := tar.NewWriter(w)
	header, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeEntry(tw, ManifestName, m.Created, int64(len(header)), bytes.NewReader(header)); err != nil {
		return nil, err
	}
	for _, e := range m.Versions {
		for _, ext := range []string{".info", ".mod", ".zip"} {
			key := mirror.FileKey(e.Path, e.Version, ext)
			obj, err := o.Store.Open(ctx, key)
			if err != nil {
				return nil, fmt.Errorf("%s@%s: %w", e.Path, e.Version, err)
			}
			err = writeEntry(tw, key, m.Created, obj.Size(), obj)
			obj.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	for _, key := range m.SumDBFiles {
		data := proofFiles[key]
		if err := writeEntry(tw, key, m.Created, int64(len(data)), bytes.NewReader(data)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return m, nil
}

// chosen returns the records of the versions to export.
func chosen(ctx context.Context, o ExportOptions) ([]meta.Version, error) {
	if len(o.Versions) > 0 {
		var recs []meta.Version
		for _, v := range o.Versions {
			r, err := o.Catalog.Version(ctx, v.Path, v.Version)
			if errors.Is(err, meta.ErrNotFound) {
				return nil, fmt.Errorf("%s@%s: not held by this mirror", v.Path, v.Version)
			}
			if err != nil {
				return nil, err
			}
			recs = append(recs, r)
		}
		return recs, nil
	}
	var recs []meta.Version
	if err := meta.EachIndexed(ctx, o.Catalog, o.Since, func(v meta.Version) error {
		recs = append(recs, v)
		return nil
	}); err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, errors.New("no versions to export")
	}
	return recs, nil
}

func writeEntry(tw *tar.Writer, name string, mod time.Time, size int64, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: mod, Format: tar.FormatPAX}); err != nil {
		return err
	}
	n, err := io.Copy(tw, r)
	if err == nil && n != size {
		err = fmt.Errorf("%s: %d bytes, expected %d", name, n, size)
	}
	return err
}
