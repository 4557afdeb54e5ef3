// Package sumdb proxies and uses checksum databases.
//
// It has two faces over one cache. As a proxy it answers the go command's
// /sumdb/<name>/... requests (supported, latest, lookup, tile), so clients
// verify module hashes through Agora even when they cannot reach the
// database. As a verifier it looks up the go.sum lines of a module version
// before that version enters Agora's store, with golang.org/x/mod/sumdb's
// client doing all the proof checking. The verified tree head is kept in
// the store across restarts, so a database that forks its log is detected.
//
// Lookups for module paths matching the configured "nosum" patterns are
// answered 403 locally and never leave Agora.
package sumdb

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/agora-mirror/agora/internal/store"
)

// knownKeys holds the verifier keys of the public checksum databases the
// go command knows by name, so that a GOSUMDB of just a name works as it
// does for the go command.
var knownKeys = map[string]string{
	"sum.golang.org": "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
}

// ErrOff is returned by ParseGOSUMDB for "off": no checksum database.
var ErrOff = errors.New("checksum database is off")

// Config describes one checksum database.
type Config struct {
	Name string // the database's name, as in GOSUMDB and the /sumdb/<name>/ prefix
	Key  string // the verifier key ("<name>+<hash>+<key>")
	URL  string // the database's own URL; empty means: through an upstream proxy that supports it, else https://<name>
}

// ParseGOSUMDB parses a value in GOSUMDB syntax: "name", "name+key" or
// "name+key url". It returns ErrOff for "off".
func ParseGOSUMDB(s string) (Config, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return Config{}, errors.New("checksum database: empty setting")
	}
	if len(f) == 1 && f[0] == "off" {
		return Config{}, ErrOff
	}
	if len(f) > 2 {
		return Config{}, fmt.Errorf("checksum database %q: want name[+key] [url]", s)
	}
	var c Config
	key := f[0]
	if !strings.Contains(key, "+") {
		k, ok := knownKeys[key]
		if !ok {
			return Config{}, fmt.Errorf("checksum database %q: unknown name; give its key as name+key", key)
		}
		key = k
	}
	v, err := note.NewVerifier(key)
	if err != nil {
		return Config{}, fmt.Errorf("checksum database %q: invalid key: %w", s, err)
	}
	c.Name, c.Key = v.Name(), key
	if len(f) == 2 {
		u, err := url.Parse(f[1])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Config{}, fmt.Errorf("checksum database %q: invalid URL %q", s, f[1])
		}
		c.URL = strings.TrimSuffix(u.String(), "/")
	}
	if store.CheckKey(c.Name) != nil {
		return Config{}, fmt.Errorf("checksum database %q: invalid name", s)
	}
	return c, nil
}

// String returns the configuration in GOSUMDB syntax.
func (c Config) String() string {
	if c.URL != "" {
		return c.Key + " " + c.URL
	}
	return c.Key
}
