package direct

import "time"

// WithGetenv returns o with getenv in place of os.Getenv for reading
// Agora's own environment (proxy and certificate settings), so tests can
// give the go processes a proxy without changing the test process's
// environment.
func WithGetenv(o Options, getenv func(string) string) Options {
	o.getenv = getenv
	return o
}

// SetRemoteTTL sets how long the tagged path trusts a repository's tag
// list, for the duration of a test.
func SetRemoteTTL(t interface{ Cleanup(func()) }, d time.Duration) {
	old := remoteTTL
	remoteTTL = d
	t.Cleanup(func() { remoteTTL = old })
}
