package server

import (
	"net"
	"syscall"
)

// cork sets or clears TCP_CORK on a TCP connection: while set, the kernel
// sends only full segments, so a response head written before a sendfile
// does not go out as a packet of its own. Clearing it sends what is left.
func cork(c net.Conn, on bool) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	v := 0
	if on {
		v = 1
	}
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, v)
	})
}
