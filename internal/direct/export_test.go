package direct

// WithGetenv returns o with getenv in place of os.Getenv for reading
// Agora's own environment (proxy and certificate settings), so tests can
// give the go processes a proxy without changing the test process's
// environment.
func WithGetenv(o Options, getenv func(string) string) Options {
	o.getenv = getenv
	return o
}
