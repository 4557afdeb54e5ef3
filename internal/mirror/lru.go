package mirror

import (
	"container/list"
	"sync"
)

// lru is a byte-bounded least-recently-used cache of small immutable
// files (.info and .mod), so that hot answers need no store access.
type lru struct {
	mu    sync.Mutex
	max   int
	size  int
	ll    *list.List
	items map[string]*list.Element
}

type lruItem struct {
	key        string
	data       []byte
	path, vers string // the version the file belongs to
}

// entryOverhead approximates the memory an entry costs beyond its key and
// data (list element, map slot, item header, allocator rounding), so that
// the budget holds for small files too: an .info file is often smaller
// than its bookkeeping.
const entryOverhead = 320

func (it *lruItem) cost() int { return len(it.key) + len(it.data) + entryOverhead }

func newLRU(maxBytes int) *lru {
	return &lru{max: maxBytes, ll: list.New(), items: make(map[string]*list.Element)}
}

func (c *lru) get(key string) ([]byte, bool) {
	it := c.item(key)
	if it == nil {
		return nil, false
	}
	return it.data, true
}

func (c *lru) item(key string) *lruItem {
	if c.max <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return nil
	}
	c.ll.MoveToFront(e)
	return e.Value.(*lruItem)
}

func (c *lru) add(key string, data []byte, path, vers string) {
	it := &lruItem{key: key, data: data, path: path, vers: vers}
	n := it.cost()
	if c.max <= 0 || n > c.max/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[key]; ok {
		return
	}
	c.items[key] = c.ll.PushFront(it)
	c.size += n
	for c.size > c.max {
		e := c.ll.Back()
		it := e.Value.(*lruItem)
		c.ll.Remove(e)
		delete(c.items, it.key)
		c.size -= it.cost()
	}
}

// remove drops key, if cached.
func (c *lru) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.ll.Remove(e)
		delete(c.items, key)
		c.size -= e.Value.(*lruItem).cost()
	}
}
