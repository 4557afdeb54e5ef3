// Package humanize formats quantities for people: in the web interface and
// the commands' output.
package humanize

import "fmt"

// Bytes formats a byte count with a binary unit: "512 B", "1.5 KiB",
// "34.0 MiB", "2.1 GiB".
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
