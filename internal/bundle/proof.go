package bundle

import (
	"fmt"
	"io/fs"
	"maps"
	"strings"
	"sync"

	xsumdb "golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agora-mirror/agora/internal/sumdb"
)

// proofOps gives the x/mod checksum database client a database made of
// files (a mirror's cache when exporting, a bundle's entries when
// importing): it verifies against key, starts from no tree head, and
// records every file it reads, which are the proofs a bundle must carry.
type proofOps struct {
	key  string
	read func(remotePath string) ([]byte, error)

	mu       sync.Mutex
	latest   []byte
	reads    map[string][]byte // remote paths read, and what they held
	security []string
}

func newProofOps(key string, read func(string) ([]byte, error)) *proofOps {
	return &proofOps{key: key, read: read, reads: make(map[string][]byte)}
}

func (o *proofOps) ReadRemote(path string) ([]byte, error) {
	data, err := o.read(path)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.reads[path] = data
	o.mu.Unlock()
	return data, nil
}

func (o *proofOps) ReadConfig(file string) ([]byte, error) {
	if file == "key" {
		return []byte(o.key), nil
	}
	if strings.HasSuffix(file, "/latest") {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.latest, nil
	}
	return nil, fmt.Errorf("unknown config file %q", file)
}

func (o *proofOps) WriteConfig(file string, old, new []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if string(o.latest) != string(old) {
		return xsumdb.ErrWriteConflict
	}
	o.latest = new
	return nil
}

// ReadCache has nothing: every read goes through ReadRemote, and is
// recorded.
func (o *proofOps) ReadCache(string) ([]byte, error) { return nil, fs.ErrNotExist }
func (o *proofOps) WriteCache(string, []byte)        {}
func (o *proofOps) Log(string)                       {}
func (o *proofOps) SecurityError(msg string) {
	o.mu.Lock()
	o.security = append(o.security, msg)
	o.mu.Unlock()
}

// verify checks, for each entry, that the database's signed log records its
// zip and go.mod hashes.
func (o *proofOps) verify(entries []Entry) error {
	c := xsumdb.NewClient(o)
	for _, e := range entries {
		for _, want := range []struct{ vers, hash string }{{e.Version + "/go.mod", e.ModHash}, {e.Version, e.ZipHash}} {
			lines, err := c.Lookup(e.Path, want.vers)
			if err != nil {
				if len(o.security) > 0 {
					return fmt.Errorf("%s@%s: checksum database security error: %s", e.Path, want.vers, strings.Join(o.security, "; "))
				}
				return fmt.Errorf("%s@%s: checksum database proof: %v", e.Path, want.vers, err)
			}
			line := e.Path + " " + want.vers + " " + want.hash
			found := false
			for _, l := range lines {
				if l == line {
					found = true
				}
			}
			if !found {
				return fmt.Errorf("%s@%s: the checksum database records %q, not %s", e.Path, want.vers, lines, want.hash)
			}
		}
	}
	if len(o.security) > 0 {
		return fmt.Errorf("checksum database security error: %s", strings.Join(o.security, "; "))
	}
	return nil
}

// treeSize returns the size of the tree a signed tree head describes,
// checking its signature with key.
func treeSize(key string, head []byte) (int64, error) {
	v, err := note.NewVerifier(key)
	if err != nil {
		return 0, err
	}
	n, err := note.Open(head, note.VerifierList(v))
	if err != nil {
		return 0, err
	}
	t, err := tlog.ParseTree([]byte(n.Text))
	if err != nil {
		return 0, err
	}
	return t.N, nil
}

// proofs verifies entries against the checksum database whose files have
// finds (by path below the database's root, "lookup/..." or "tile/...";
// narrower tiles are cut from wider ones), as clients may: all records in
// order, as the importer does, and each record alone, since a client may
// see any record first. It returns every file the verification read, by
// remote path, and the latest tree head it verified.
func proofs(key string, have func(path string) ([]byte, bool), entries []Entry) (files map[string][]byte, latest []byte, err error) {
	read := func(p string) ([]byte, error) {
		p = strings.TrimPrefix(p, "/")
		if data, ok := have(p); ok {
			return data, nil
		}
		// A client that verifies against an older tree head asks for
		// narrower tiles than are held.
		if data, ok := sumdb.TileFromWider(p, have); ok {
			return data, nil
		}
		return nil, fmt.Errorf("%s: not held", p)
	}
	all := newProofOps(key, read)
	if err := all.verify(entries); err != nil {
		return nil, nil, err
	}
	files = maps.Clone(all.reads)
	for _, e := range entries {
		one := newProofOps(key, read)
		if err := one.verify([]Entry{e}); err != nil {
			return nil, nil, err
		}
		maps.Copy(files, one.reads)
	}
	return files, all.latest, nil
}
