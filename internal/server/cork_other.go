//go:build !linux

package server

import "net"

// cork does nothing where TCP_CORK does not exist.
func cork(net.Conn, bool) {}
