package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// Disk is a Store on a local directory. Each object is a file; writes go
// to a temporary file in the same file system, are synced, and then linked
// (immutable objects) or renamed (mutable state) into place, so an object
// is either absent or complete.
type Disk struct {
	root string
	tmp  string
}

// OpenDisk opens (creating it if needed) the store rooted at dir, and
// removes temporary files left behind by a process that died mid-write.
func OpenDisk(dir string) (*Disk, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	tmp := filepath.Join(root, ".tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("store: cleaning temporary files: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &Disk{root: root, tmp: tmp}, nil
}

// Root returns the directory the store lives in.
func (d *Disk) Root() string { return d.root }

// TempDir implements Store.
func (d *Disk) TempDir() string { return d.tmp }

func (d *Disk) file(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", fmt.Errorf("%w: %q", err, key)
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

type diskObject struct {
	*os.File
	size int64
	mod  time.Time
}

func (o *diskObject) Size() int64        { return o.size }
func (o *diskObject) ModTime() time.Time { return o.mod }

// OSFile returns the open file behind the object. Serving it directly
// (rather than through the wrapper) lets net/http use sendfile.
func (o *diskObject) OSFile() *os.File { return o.File }

// Open implements Store. The returned Object is backed by an *os.File
// (reachable through an OSFile method), which lets net/http use sendfile.
func (d *Disk) Open(_ context.Context, key string) (Object, error) {
	name, err := d.file(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, missing(key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("store: %s: %w", key, ErrNotExist)
	}
	return &diskObject{File: f, size: fi.Size(), mod: fi.ModTime()}, nil
}

// Get implements Store. The slice returned is exactly the object's size
// (unlike os.ReadFile's), since callers may keep it in memory.
func (d *Disk) Get(ctx context.Context, key string) ([]byte, error) {
	obj, err := d.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	data := make([]byte, obj.Size())
	if _, err := io.ReadFull(obj, data); err != nil {
		return nil, fmt.Errorf("store: reading %s: %w", key, err)
	}
	return data, nil
}

// missing maps the error for a key below an object ("a/b" when "a" is an
// object: the path's parent is not a directory) to ErrNotExist, since no
// object is there.
func missing(key string, err error) error {
	if errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("store: %s: %w", key, ErrNotExist)
	}
	return err
}

// Put implements Store.
func (d *Disk) Put(ctx context.Context, key string, data []byte) error {
	dst, err := d.file(key)
	if err != nil {
		return err
	}
	tmp, err := d.writeTemp(data) // synced
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return link(key, dst, tmp)
}

func (d *Disk) writeTemp(data []byte) (string, error) {
	f, err := os.CreateTemp(d.tmp, "put-*")
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("store: writing temporary file: %w", err)
	}
	return f.Name(), nil
}

// PutFile implements Store. The file is synced, then hard-linked to its
// final name: link fails if the name exists, which makes the write
// once-only without a lock, and the object appears complete or not at all.
//
// The directory is not synced after the link: that would be a second
// journal commit on the fill's critical path. A power cut may therefore
// lose the newest objects' names (they are fetched again on request),
// but the data under any name that survives was synced before it got
// the name, so no object is ever partial.
func (d *Disk) PutFile(_ context.Context, key, name string) error {
	defer os.Remove(name)
	dst, err := d.file(key)
	if err != nil {
		return err
	}
	if err := syncFile(name); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return link(key, dst, name)
}

// link gives the synced file name the name dst of the object at key. The
// object's directory is made only when the first link finds it missing:
// most objects go where a directory exists, and a MkdirAll per object
// would be a system call per path element.
func link(key, dst, name string) error {
	err := os.Link(name, dst)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("store: %w", missing(key, err))
		}
		err = os.Link(name, dst)
	}
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("store: %s: %w", key, ErrExist)
		}
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// List implements Store.
func (d *Disk) List(_ context.Context, dir string) ([]string, error) {
	name, err := d.file(dir)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(name)
	if errors.Is(missing(dir, err), fs.ErrNotExist) {
		return nil, nil // no such directory, or an object: no children
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names, nil
}

// Delete implements Store.
func (d *Disk) Delete(_ context.Context, key string) error {
	name, err := d.file(key)
	if err != nil {
		return err
	}
	if err := os.Remove(name); err != nil && !errors.Is(missing(key, err), fs.ErrNotExist) {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

func syncFile(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
