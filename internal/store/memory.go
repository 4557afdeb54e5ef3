package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory is a Store held in memory, for tests and short-lived tools.
type Memory struct {
	mu   sync.RWMutex
	objs map[string]memObject
	tmp  string
}

type memObject struct {
	data []byte
	mod  time.Time
}

// NewMemory returns an empty in-memory store whose TempDir is tmp.
func NewMemory(tmp string) *Memory {
	return &Memory{objs: make(map[string]memObject), tmp: tmp}
}

// TempDir implements Store.
func (m *Memory) TempDir() string { return m.tmp }

type memReader struct {
	*bytes.Reader
	mod time.Time
}

func (r memReader) Close() error       { return nil }
func (r memReader) ModTime() time.Time { return r.mod }

func (m *Memory) get(key string) (memObject, error) {
	if err := CheckKey(key); err != nil {
		return memObject{}, fmt.Errorf("%w: %q", err, key)
	}
	m.mu.RLock()
	o, ok := m.objs[key]
	m.mu.RUnlock()
	if !ok {
		return memObject{}, fmt.Errorf("store: %s: %w", key, ErrNotExist)
	}
	return o, nil
}

// Open implements Store.
func (m *Memory) Open(_ context.Context, key string) (Object, error) {
	o, err := m.get(key)
	if err != nil {
		return nil, err
	}
	return memReader{bytes.NewReader(o.data), o.mod}, nil
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) ([]byte, error) {
	o, err := m.get(key)
	// A copy: the caller may change it, the stored object must not change.
	return bytes.Clone(o.data), err
}

func (m *Memory) put(key string, data []byte) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("%w: %q", err, key)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; ok {
		return fmt.Errorf("store: %s: %w", key, ErrExist)
	}
	m.objs[key] = memObject{data: bytes.Clone(data), mod: time.Now()}
	return nil
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, key string, data []byte) error {
	return m.put(key, data)
}

// PutFile implements Store.
func (m *Memory) PutFile(_ context.Context, key, name string) error {
	defer os.Remove(name)
	data, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return m.put(key, data)
}

// List implements Store.
func (m *Memory) List(_ context.Context, dir string) ([]string, error) {
	if err := CheckKey(dir); err != nil {
		return nil, fmt.Errorf("%w: %q", err, dir)
	}
	prefix := dir + "/"
	seen := make(map[string]bool)
	m.mu.RLock()
	for k := range m.objs {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			name, _, _ := strings.Cut(rest, "/")
			seen[name] = true
		}
	}
	m.mu.RUnlock()
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("%w: %q", err, key)
	}
	m.mu.Lock()
	delete(m.objs, key)
	m.mu.Unlock()
	return nil
}
