package access

import (
	"net"
	"net/netip"
	"strings"
)

// ClientAddr returns the address of the client behind a request that
// reached Agora from peer (a net/http RemoteAddr, "ip:port") with the
// X-Forwarded-For header values forwardedFor, in the order of the
// header's lines. When peer is not in trusted (the reverse proxies and
// load balancers in front of Agora), the header is anyone's to write and
// is ignored: the answer is peer's IP. Otherwise the header's addresses
// are read from the right, as each proxy appends the address it received
// the request from (to the last line, or as a new line): the answer is
// the first one not in trusted, or the leftmost if all are. Empty entries
// are skipped, and an entry may carry a port ("203.0.113.9:1234"); an
// entry that is not an address stops the reading there, at the address
// to its right (or peer's). Zones are dropped.
func ClientAddr(peer string, forwardedFor []string, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(peer)
	if err != nil {
		host = peer
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host // not from a TCP connection
	}
	ip = ip.Unmap().WithZone("")
	if len(trusted) == 0 || len(forwardedFor) == 0 || !isTrusted(ip, trusted) {
		return ip.String()
	}
	client := ip
	for i := len(forwardedFor) - 1; i >= 0; i-- {
		// Right to left, without splitting: a long header costs no
		// allocation, and the reading stops at the first client.
		rest := forwardedFor[i]
		for rest != "" {
			entry := rest
			if c := strings.LastIndexByte(rest, ','); c >= 0 {
				entry, rest = rest[c+1:], rest[:c]
			} else {
				rest = ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			a, ok := forwardedAddr(entry)
			if !ok {
				return client.String()
			}
			client = a
			if !isTrusted(client, trusted) {
				return client.String()
			}
		}
	}
	return client.String()
}

// forwardedAddr parses one X-Forwarded-For entry: an IP address, or an
// IP address and port ("203.0.113.9:1234", "[2001:db8::9]:1234").
func forwardedAddr(entry string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(entry)
	if err != nil {
		ap, err := netip.ParseAddrPort(entry)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
