package access

import (
	"net"
	"net/netip"
	"strings"
)

// ClientAddr returns the address of the client behind a request that
// reached Agora from peer (a net/http RemoteAddr, "ip:port") with the
// X-Forwarded-For header values forwardedFor. When peer is not in
// trusted (the reverse proxies and load balancers in front of Agora), the
// header is anyone's to write and is ignored: the answer is peer's IP.
// Otherwise the header's addresses are read from the right, as each
// proxy appends the address it received the request from: the answer is
// the first one not in trusted, or the leftmost if all are. An entry that
// is not an IP address stops the reading there, at the address to its
// right (or peer's).
func ClientAddr(peer string, forwardedFor []string, trusted []netip.Prefix) string {
	ip := peerIP(peer)
	if !ip.IsValid() {
		return peer
	}
	if len(trusted) == 0 || len(forwardedFor) == 0 || !isTrusted(ip, trusted) {
		return ip.String()
	}
	client := ip
	for i := len(forwardedFor) - 1; i >= 0; i-- {
		entries := strings.Split(forwardedFor[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(entries[j]))
			if err != nil {
				return client.String()
			}
			client = a.Unmap()
			if !isTrusted(client, trusted) {
				return client.String()
			}
		}
	}
	return client.String()
}

// peerIP is the IP of a RemoteAddr, or the zero Addr if it has none.
func peerIP(peer string) netip.Addr {
	host, _, err := net.SplitHostPort(peer)
	if err != nil {
		host = peer
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
