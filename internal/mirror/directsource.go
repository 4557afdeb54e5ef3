package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/agora-mirror/agora/internal/direct"
	"github.com/agora-mirror/agora/internal/upstream"
)

// DirectSource is a Source that fetches from version control with the go
// command (internal/direct).
type DirectSource struct{ Fetcher *direct.Fetcher }

const directOrigin = "version control"

// classify maps the fetcher's errors to the mirror's: "not found" and
// "timed out" read the same whatever the source, and any other failure
// of version control (credentials refused, host unreachable, a version
// the go command cannot make) matches ErrSourceFailed. what names what
// was asked for (module, or module@version).
func classify(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, direct.ErrNotFound):
		return &upstream.NotFoundError{Path: what, Answers: []string{directOrigin + ": " + err.Error()}}
	case errors.Is(err, direct.ErrTimeout):
		return fmt.Errorf("%s: %w: %v", directOrigin, upstream.ErrTimeout, err)
	}
	var de *direct.Error
	if errors.As(err, &de) {
		return sourceError{err}
	}
	return err
}

// sourceError is a failure of version control; it reads as the fetcher's
// error and matches ErrSourceFailed.
type sourceError struct{ err error }

func (e sourceError) Error() string        { return e.err.Error() }
func (e sourceError) Unwrap() error        { return e.err }
func (e sourceError) Is(target error) bool { return target == ErrSourceFailed }

// Fetch implements Source.
func (d DirectSource) Fetch(ctx context.Context, path, vers, ext string, limit int64, sink func(io.Reader) error) (string, error) {
	m, err := d.Fetcher.Download(ctx, path, vers)
	if err != nil {
		return "", classify(path+"@"+vers, err)
	}
	if m.Version != vers {
		return "", fmt.Errorf("%s@%s: version control resolved it to %s", path, vers, m.Version)
	}
	name := map[string]string{".info": m.Info, ".mod": m.GoMod, ".zip": m.Zip}[ext]
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && limit > 0 && fi.Size() > limit {
		return "", fmt.Errorf("%s@%s%s: %w (%d bytes, limit %d)", path, vers, ext, upstream.ErrTooLarge, fi.Size(), limit)
	}
	return directOrigin, sink(f)
}

// List implements Source.
func (d DirectSource) List(ctx context.Context, path string) ([]byte, error) {
	vs, err := d.Fetcher.Versions(ctx, path)
	if err != nil {
		return nil, classify(path, err)
	}
	if len(vs) == 0 {
		return nil, nil
	}
	return []byte(strings.Join(vs, "\n") + "\n"), nil
}

// Latest implements Source.
func (d DirectSource) Latest(ctx context.Context, path string) ([]byte, string, error) {
	return d.Query(ctx, path, "latest")
}

// Query implements Source.
func (d DirectSource) Query(ctx context.Context, path, query string) ([]byte, string, error) {
	v, t, err := d.Fetcher.Query(ctx, path, query)
	if err != nil {
		return nil, "", classify(path+"@"+query, err)
	}
	inf := info{Version: v}
	if !t.IsZero() {
		t = t.UTC()
		inf.Time = &t
	}
	data, err := json.Marshal(inf)
	return data, directOrigin, err
}
