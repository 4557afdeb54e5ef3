// Package store keeps Agora's cached objects: module files, and checksum
// database records and tiles.
//
// Objects are addressed by slash-separated keys built by the callers from
// validated module paths and versions. Immutable objects are written once:
// a Put on a key that exists leaves the first object in place and reports
// ErrExist, and an object becomes visible only once it is complete, so a
// crash or a failed download never leaves a partial object that a reader
// could see. Mutable state (cached version lists, the checksum database's
// verified tree head) lives in the metadata database (internal/meta), not
// here.
//
// The package knows nothing of the module proxy protocol or of HTTP.
package store

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"
)

// ErrNotExist is returned when a key holds no object. It matches
// fs.ErrNotExist too.
var ErrNotExist = fs.ErrNotExist

// ErrExist is returned by Put and PutFile when the key already holds an
// object; the stored object is left unchanged.
var ErrExist = fs.ErrExist

// ErrInvalidKey is returned for a key that is not a clean, relative,
// slash-separated path.
var ErrInvalidKey = errors.New("store: invalid key")

// Object is an open stored object. It may be read sequentially or with
// Seek, so that http.ServeContent can answer Range requests from it.
type Object interface {
	io.ReadSeekCloser
	// Size is the object's length in bytes.
	Size() int64
	// ModTime is when the object was stored.
	ModTime() time.Time
}

// Store is implemented by every storage backend.
type Store interface {
	// Open opens the object at key for reading.
	Open(ctx context.Context, key string) (Object, error)
	// Get returns the whole content of the object at key.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores data at key, once.
	Put(ctx context.Context, key string, data []byte) error
	// PutFile moves the local file at name into the store at key, once.
	// The file must be in TempDir; it is gone after PutFile returns,
	// whether or not it succeeded.
	PutFile(ctx context.Context, key, name string) error
	// List returns the names of the objects directly under the key
	// prefix dir (not recursively), sorted.
	List(ctx context.Context, dir string) ([]string, error)
	// Delete removes the object at key; removing a missing object is not
	// an error.
	Delete(ctx context.Context, key string) error
	// TempDir is a local directory for files on their way into the
	// store (downloads being checked before PutFile).
	TempDir() string
}

// CheckKey reports whether key is acceptable to a Store: relative, clean,
// slash-separated, with no empty, "." or ".." element and no NUL byte.
func CheckKey(key string) error {
	// fs.ValidPath accepts "." (the root), which is no object's key.
	if key == "" || key == "." || strings.ContainsRune(key, 0) || strings.Contains(key, `\`) ||
		!fs.ValidPath(key) || path.Clean(key) != key {
		return ErrInvalidKey
	}
	for _, elem := range strings.Split(key, "/") {
		if strings.HasPrefix(elem, ".tmp") {
			return ErrInvalidKey // reserved for temporary files
		}
	}
	return nil
}
