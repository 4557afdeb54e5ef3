package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/agora-mirror/agora/internal/store"
)

func TestDisk(t *testing.T) {
	testStore(t, func(t *testing.T) store.Store {
		d, err := store.OpenDisk(filepath.Join(t.TempDir(), "store"))
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func TestMemory(t *testing.T) {
	testStore(t, func(t *testing.T) store.Store {
		return store.NewMemory(t.TempDir())
	})
}

// invalidKeys are keys every Store method must refuse with ErrInvalidKey.
var invalidKeys = []string{
	"",
	".",
	"..",
	"../x",
	"../../x",
	"a/../b",
	"a/..",
	"/abs",
	"/",
	"a//b",
	"a/",
	"a/./b",
	"./a",
	`a\b`,
	`..\x`,
	"a\x00b",
	"a/b\x00",
	".tmp",
	".tmp/x",
	"a/.tmp/x",
	"a/.tmp-put-123",
}

// testStore is the conformance suite every Store backend must pass. open
// returns a new, empty store for each subtest.
func testStore(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()

	t.Run("PutThenGetAndOpen", func(t *testing.T) {
		s := open(t)
		key := "example.com/m/@v/v1.0.0.zip"
		data := []byte("0123456789abcdef")
		if err := s.Put(ctx, key, data); err != nil {
			t.Fatalf("Put: %v", err)
		}
		got, err := s.Get(ctx, key)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get = %q, %v; want %q, nil", got, err, data)
		}
		obj, err := s.Open(ctx, key)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer obj.Close()
		if obj.Size() != int64(len(data)) {
			t.Errorf("Size() = %d, want %d", obj.Size(), len(data))
		}
		if obj.ModTime().IsZero() {
			t.Error("ModTime() is zero")
		}
		all, err := io.ReadAll(obj)
		if err != nil || !bytes.Equal(all, data) {
			t.Errorf("reading the object = %q, %v; want %q", all, err, data)
		}
		if off, err := obj.Seek(10, io.SeekStart); err != nil || off != 10 {
			t.Fatalf("Seek(10, SeekStart) = %d, %v", off, err)
		}
		rest, err := io.ReadAll(obj)
		if err != nil || string(rest) != "abcdef" {
			t.Errorf("reading after Seek(10, SeekStart) = %q, %v; want %q", rest, err, "abcdef")
		}
		if off, err := obj.Seek(-3, io.SeekEnd); err != nil || off != int64(len(data))-3 {
			t.Fatalf("Seek(-3, SeekEnd) = %d, %v", off, err)
		}
		tail, err := io.ReadAll(obj)
		if err != nil || string(tail) != "def" {
			t.Errorf("reading after Seek(-3, SeekEnd) = %q, %v; want %q", tail, err, "def")
		}
	})

	t.Run("EmptyObject", func(t *testing.T) {
		s := open(t)
		if err := s.Put(ctx, "empty", nil); err != nil {
			t.Fatalf("Put of an empty object: %v", err)
		}
		got, err := s.Get(ctx, "empty")
		if err != nil || len(got) != 0 {
			t.Errorf("Get = %q, %v; want empty, nil", got, err)
		}
		obj, err := s.Open(ctx, "empty")
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer obj.Close()
		if obj.Size() != 0 {
			t.Errorf("Size() = %d, want 0", obj.Size())
		}
	})

	t.Run("StoredDataIsNotAliased", func(t *testing.T) {
		s := open(t)
		data := []byte("original")
		if err := s.Put(ctx, "k", data); err != nil {
			t.Fatal(err)
		}
		copy(data, "CHANGED!")
		got, err := s.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "original" {
			t.Fatalf("after the caller changed the slice given to Put, Get = %q, want %q", got, "original")
		}
		copy(got, "CHANGED!")
		again, err := s.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != "original" {
			t.Errorf("after the caller changed the slice Get returned, Get = %q, want %q", again, "original")
		}
	})

	t.Run("PutTwiceKeepsFirst", func(t *testing.T) {
		s := open(t)
		if err := s.Put(ctx, "a/b", []byte("first")); err != nil {
			t.Fatal(err)
		}
		err := s.Put(ctx, "a/b", []byte("second"))
		if !errors.Is(err, store.ErrExist) {
			t.Errorf("second Put: got %v, want ErrExist", err)
		}
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("second Put: %v does not match fs.ErrExist", err)
		}
		if got, _ := s.Get(ctx, "a/b"); string(got) != "first" {
			t.Errorf("after a second Put, Get = %q, want %q", got, "first")
		}
	})

	t.Run("PutFileMovesTheFileIn", func(t *testing.T) {
		s := open(t)
		name := tempFile(t, s, "zip bytes")
		if err := s.PutFile(ctx, "m/@v/v1.0.0.zip", name); err != nil {
			t.Fatalf("PutFile: %v", err)
		}
		if got, err := s.Get(ctx, "m/@v/v1.0.0.zip"); err != nil || string(got) != "zip bytes" {
			t.Errorf("Get = %q, %v; want %q", got, err, "zip bytes")
		}
		assertGone(t, name)
	})

	t.Run("LargePutFileIsWrittenOnce", func(t *testing.T) {
		// 20 MiB: object stores upload it in parts, and the
		// write-once condition must hold for multipart uploads too.
		s := open(t)
		first := strings.Repeat("0123456789abcdef", 20<<20/16)
		if err := s.PutFile(ctx, "big.zip", tempFile(t, s, first)); err != nil {
			t.Fatalf("PutFile of 20 MiB: %v", err)
		}
		second := strings.Repeat("X", len(first))
		if err := s.PutFile(ctx, "big.zip", tempFile(t, s, second)); !errors.Is(err, store.ErrExist) {
			t.Errorf("second PutFile of 20 MiB: got %v, want ErrExist", err)
		}
		got, err := s.Get(ctx, "big.zip")
		if err != nil || string(got) != first {
			t.Errorf("Get after two PutFiles: %d bytes, %v; want the first file's %d bytes", len(got), err, len(first))
		}
	})

	t.Run("PutFileOnExistingKeyKeepsFirstAndRemovesFile", func(t *testing.T) {
		s := open(t)
		if err := s.Put(ctx, "k", []byte("first")); err != nil {
			t.Fatal(err)
		}
		name := tempFile(t, s, "second")
		if err := s.PutFile(ctx, "k", name); !errors.Is(err, store.ErrExist) {
			t.Errorf("PutFile on an existing key: got %v, want ErrExist", err)
		}
		if got, _ := s.Get(ctx, "k"); string(got) != "first" {
			t.Errorf("Get = %q, want %q", got, "first")
		}
		assertGone(t, name)
	})

	t.Run("PutFileWithInvalidKeyRemovesFile", func(t *testing.T) {
		s := open(t)
		name := tempFile(t, s, "data")
		if err := s.PutFile(ctx, "../escape", name); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("PutFile with key ../escape: got %v, want ErrInvalidKey", err)
		}
		assertGone(t, name)
	})

	t.Run("PutFileOfMissingFileFails", func(t *testing.T) {
		s := open(t)
		err := s.PutFile(ctx, "k", filepath.Join(s.TempDir(), "no-such-file"))
		if err == nil {
			t.Fatal("PutFile of a missing file succeeded")
		}
		if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("after a failed PutFile, Get: got %v, want ErrNotExist", err)
		}
	})

	t.Run("ListNamesDirectChildrenSorted", func(t *testing.T) {
		s := open(t)
		for _, k := range []string{"d/c/y", "d/b", "d/a", "d/c/x", "dx/q", "other/z", "d/a.info"} {
			if err := s.Put(ctx, k, []byte(k)); err != nil {
				t.Fatalf("Put(%q): %v", k, err)
			}
		}
		tests := []struct {
			dir  string
			want []string
		}{
			{"d", []string{"a", "a.info", "b", "c"}},
			{"d/c", []string{"x", "y"}},
			{"dx", []string{"q"}},
			{"missing", nil},
			{"d/missing/deeper", nil},
			{"d/a", nil},       // an object, not a directory
			{"d/a/below", nil}, // below an object
		}
		for _, tc := range tests {
			got, err := s.List(ctx, tc.dir)
			if err != nil {
				t.Errorf("List(%q): %v", tc.dir, err)
				continue
			}
			if len(got) != len(tc.want) || (len(got) > 0 && !slices.Equal(got, tc.want)) {
				t.Errorf("List(%q) = %q, want %q", tc.dir, got, tc.want)
			}
		}
	})

	t.Run("DeleteRemoves", func(t *testing.T) {
		s := open(t)
		if err := s.Put(ctx, "a/b", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "a/b"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Get(ctx, "a/b"); !errors.Is(err, store.ErrNotExist) {
			t.Errorf("Get after Delete: got %v, want ErrNotExist", err)
		}
		if err := s.Put(ctx, "a/b", []byte("again")); err != nil {
			t.Errorf("Put after Delete: %v", err)
		}
		if got, _ := s.Get(ctx, "a/b"); string(got) != "again" {
			t.Errorf("Get after Delete and Put = %q, want %q", got, "again")
		}
	})

	t.Run("DeleteOfMissingIsNotAnError", func(t *testing.T) {
		s := open(t)
		if err := s.Put(ctx, "obj", []byte("x")); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"missing", "missing/deeper/key", "obj/below"} {
			if err := s.Delete(ctx, k); err != nil {
				t.Errorf("Delete(%q): %v", k, err)
			}
		}
	})

	t.Run("MissingObjectIsErrNotExist", func(t *testing.T) {
		s := open(t)
		if err := s.Put(ctx, "dir/obj", []byte("x")); err != nil {
			t.Fatal(err)
		}
		// "dir" holds no object, only other objects' keys start with it;
		// nothing is below the object "dir/obj".
		for _, k := range []string{"missing", "dir/missing", "missing/deeper", "dir", "dir/obj/below", "dir/obj/below/deeper"} {
			if _, err := s.Open(ctx, k); !errors.Is(err, store.ErrNotExist) || !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Open(%q): got %v, want ErrNotExist", k, err)
			}
			if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotExist) {
				t.Errorf("Get(%q): got %v, want ErrNotExist", k, err)
			}
		}
	})

	t.Run("InvalidKeysAreRefusedByEveryMethod", func(t *testing.T) {
		s := open(t)
		for _, key := range invalidKeys {
			check := func(method string, err error) {
				t.Helper()
				if !errors.Is(err, store.ErrInvalidKey) {
					t.Errorf("%s(%q): got %v, want ErrInvalidKey", method, key, err)
				}
			}
			obj, err := s.Open(ctx, key)
			if obj != nil {
				obj.Close()
			}
			check("Open", err)
			_, err = s.Get(ctx, key)
			check("Get", err)
			check("Put", s.Put(ctx, key, []byte("x")))
			name := tempFile(t, s, "x")
			check("PutFile", s.PutFile(ctx, key, name))
			assertGone(t, name)
			_, err = s.List(ctx, key)
			check("List", err)
			check("Delete", s.Delete(ctx, key))
		}
	})

	t.Run("ConcurrentPutsOfOneKeyStoreExactlyOne", func(t *testing.T) {
		s := open(t)
		const writers = 20
		errs := make([]error, writers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = s.Put(ctx, "m/@v/v1.0.0.zip", []byte(fmt.Sprintf("content of writer %d", i)))
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("writers %d and %d both succeeded", winner, i)
				}
				winner = i
			case !errors.Is(err, store.ErrExist):
				t.Errorf("writer %d: got %v, want nil or ErrExist", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no writer succeeded")
		}
		got, err := s.Get(ctx, "m/@v/v1.0.0.zip")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("content of writer %d", winner); string(got) != want {
			t.Errorf("Get = %q, want the successful writer's %q", got, want)
		}
	})

	t.Run("ConcurrentPutFilesOfOneKeyStoreExactlyOne", func(t *testing.T) {
		s := open(t)
		const writers = 20
		names := make([]string, writers)
		for i := range names {
			names[i] = tempFile(t, s, fmt.Sprintf("file of writer %d", i))
		}
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.PutFile(ctx, "k", names[i])
			}()
		}
		wg.Wait()
		var ok []int
		for i, err := range errs {
			if err == nil {
				ok = append(ok, i)
			} else if !errors.Is(err, store.ErrExist) {
				t.Errorf("writer %d: got %v, want nil or ErrExist", i, err)
			}
			assertGone(t, names[i])
		}
		if len(ok) != 1 {
			t.Fatalf("writers %v succeeded, want exactly one", ok)
		}
		if got, _ := s.Get(ctx, "k"); string(got) != fmt.Sprintf("file of writer %d", ok[0]) {
			t.Errorf("Get = %q, want writer %d's content", got, ok[0])
		}
	})
}

func TestCheckKey(t *testing.T) {
	valid := []string{
		"a",
		"a/b",
		"mod/github.com/!burnt!sushi/toml/@v/v1.4.0.zip",
		"mod/example.com/m/@v/v1.0.0+incompatible.info",
		"sumdb/sum.golang.org/tile/8/0/x001/234.p/5",
		"a/.b",
		"a/..b",
		"a/b..",
		"with space/and%percent",
	}
	for _, k := range valid {
		if err := store.CheckKey(k); err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", k, err)
		}
	}
	for _, k := range invalidKeys {
		if err := store.CheckKey(k); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("CheckKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
}

func TestMemoryTempDir(t *testing.T) {
	dir := t.TempDir()
	if got := store.NewMemory(dir).TempDir(); got != dir {
		t.Errorf("TempDir() = %q, want %q", got, dir)
	}
}

func TestOpenDiskRemovesLeftoverTemporaryFiles(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "store")
	d, err := store.OpenDisk(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "kept/object", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	// Simulate a process that died mid-write: files and a directory
	// left in the temporary directory.
	debris := []string{
		filepath.Join(d.TempDir(), "put-123"),
		filepath.Join(d.TempDir(), "zip-456"),
		filepath.Join(d.TempDir(), "sub", "deeper"),
	}
	for _, name := range debris {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte("half a file"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	d2, err := store.OpenDisk(root)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	ents, err := os.ReadDir(d2.TempDir())
	if err != nil {
		t.Fatalf("temporary directory after reopening: %v", err)
	}
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("temporary directory after reopening holds %q, want nothing", names)
	}
	if got, err := d2.Get(ctx, "kept/object"); err != nil || string(got) != "kept" {
		t.Errorf("stored object after reopening: Get = %q, %v", got, err)
	}
	// The store is usable for new writes.
	if err := d2.Put(ctx, "new/object", []byte("new")); err != nil {
		t.Errorf("Put after reopening: %v", err)
	}
}

func TestOpenDiskCreatesRootAndTempDirInsideIt(t *testing.T) {
	root := filepath.Join(t.TempDir(), "a", "b", "store")
	d, err := store.OpenDisk(root)
	if err != nil {
		t.Fatal(err)
	}
	if d.Root() != root {
		t.Errorf("Root() = %q, want %q", d.Root(), root)
	}
	if fi, err := os.Stat(d.TempDir()); err != nil || !fi.IsDir() {
		t.Fatalf("TempDir %q: %v", d.TempDir(), err)
	}
	// PutFile links temporary files into place, so TempDir must be in
	// the same file system: inside the root.
	if rel, err := filepath.Rel(root, d.TempDir()); err != nil || rel != ".tmp" {
		t.Errorf("TempDir() = %q, want %q", d.TempDir(), filepath.Join(root, ".tmp"))
	}
}

func TestDiskRelativeRootIsMadeAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	d, err := store.OpenDisk("rel")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "rel"); d.Root() != want {
		t.Errorf("Root() = %q, want %q", d.Root(), want)
	}
}

func TestDiskObjectIsNeverVisibleHalfWritten(t *testing.T) {
	ctx := context.Background()
	d, err := store.OpenDisk(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	key := "example.com/m/@v/v1.0.0.zip"
	final := filepath.Join(d.Root(), filepath.FromSlash(key))

	f, err := os.CreateTemp(d.TempDir(), "zip-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("first half, "); err != nil {
		t.Fatal(err)
	}
	// Mid-write: nothing is at the key, neither through the store nor on
	// disk.
	if _, err := d.Open(ctx, key); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Open while the file is being written: got %v, want ErrNotExist", err)
	}
	if _, err := os.Lstat(final); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file exists at %s while the temporary file is being written (%v)", final, err)
	}
	if _, err := f.WriteString("second half"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(final); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file exists at %s before PutFile (%v)", final, err)
	}
	if err := d.PutFile(ctx, key, f.Name()); err != nil {
		t.Fatalf("PutFile: %v", err)
	}
	got, err := os.ReadFile(final)
	if err != nil || string(got) != "first half, second half" {
		t.Errorf("file at the key after PutFile = %q, %v", got, err)
	}
}

func TestDiskOpenExposesOSFile(t *testing.T) {
	ctx := context.Background()
	d, err := store.OpenDisk(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "k", []byte("data")); err != nil {
		t.Fatal(err)
	}
	obj, err := d.Open(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	of, ok := obj.(interface{ OSFile() *os.File })
	if !ok {
		t.Fatalf("Disk object %T has no OSFile method", obj)
	}
	if got := of.OSFile().Name(); got != filepath.Join(d.Root(), "k") {
		t.Errorf("OSFile().Name() = %q, want the object's file", got)
	}
}

func TestDiskHostileKeysCreateNothingOutsideRoot(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	root := filepath.Join(parent, "store")
	d, err := store.OpenDisk(root)
	if err != nil {
		t.Fatal(err)
	}
	hostile := append(slices.Clone(invalidKeys),
		"../store-sibling/x",
		"../../outside",
		"a/../../outside",
		"/"+filepath.ToSlash(filepath.Join(parent, "absolute")),
		`..\..\outside`,
	)
	for _, key := range hostile {
		d.Put(ctx, key, []byte("x"))
		name := tempFile(t, d, "x")
		d.PutFile(ctx, key, name)
		d.Delete(ctx, key)
		d.List(ctx, key)
		if obj, err := d.Open(ctx, key); err == nil {
			obj.Close()
			t.Errorf("Open(%q) succeeded", key)
		}
	}
	// The parent holds only the store, and the store only its (empty)
	// temporary directory.
	var found []string
	filepath.WalkDir(parent, func(p string, e fs.DirEntry, err error) error {
		if p != parent {
			found = append(found, p)
		}
		return err
	})
	want := []string{root, d.TempDir()}
	if !slices.Equal(found, want) {
		t.Errorf("files after hostile keys: %q, want only %q", found, want)
	}
}

// tempFile writes content to a new file in s's TempDir and returns its name.
func tempFile(t *testing.T, s store.Store, content string) string {
	t.Helper()
	f, err := os.CreateTemp(s.TempDir(), "test-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func assertGone(t *testing.T, name string) {
	t.Helper()
	if _, err := os.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file %s still exists after PutFile (%v)", name, err)
	}
}
