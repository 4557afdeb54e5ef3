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

// WaitAhead waits until no fill ahead is queued or running.
func (m *Mirror) WaitAhead() { m.ahead.wg.Wait() }

// Used returns the versions noted as requested since the last flush, as
// "path@version".
func (m *Mirror) Used() []string {
	m.usedMu.Lock()
	defer m.usedMu.Unlock()
	var vs []string
	for k := range m.usedSet {
		vs = append(vs, k.path+"@"+k.vers)
	}
	return vs
}
