package mirror

// ZipWaiters returns how many callers wait for the fill of path@vers's zip.
func (m *Mirror) ZipWaiters(path, vers string) int {
	m.fills.mu.Lock()
	defer m.fills.mu.Unlock()
	if f := m.fills.m["zip "+path+"@"+vers]; f != nil {
		return f.waiters
	}
	return 0
}

// ListRefreshing reports whether a background refresh of path's version
// list has been started (and not failed).
func (m *Mirror) ListRefreshing(path string) bool {
	m.listMu.Lock()
	defer m.listMu.Unlock()
	e := m.lists[path]
	return e != nil && e.refreshing
}
