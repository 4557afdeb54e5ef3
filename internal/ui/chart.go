package ui

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/agora-mirror/agora/internal/metrics"
)

// chart draws the last hour as an SVG: requests per minute as bars, the
// cache hit rate as a line on a 0-100% scale. Only numbers go into it.
func chart(hour []metrics.Minute) template.HTML {
	const w, h, pad = 600, 160, 24
	var maxReq int64 = 1
	var total, hits, misses int64
	for _, m := range hour {
		maxReq = max(maxReq, m.Requests)
		total += m.Requests
		hits += m.Hits
		misses += m.Misses
	}
	n := max(len(hour), 1)
	bw := float64(w-2*pad) / float64(n)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-labelledby="chart-title chart-desc">`, w, h)
	fmt.Fprintf(&b, `<title id="chart-title">Requests per minute and cache hit rate, last hour</title>`)
	fmt.Fprintf(&b, `<desc id="chart-desc">%d requests in the last hour, at most %d in a minute; cache hit rate %s.</desc>`, total, maxReq, pct(hits, hits+misses))
	fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, pad, h-pad, w-pad, h-pad)
	var line []string
	for i, m := range hour {
		x := float64(pad) + float64(i)*bw
		bh := float64(m.Requests) / float64(maxReq) * float64(h-2*pad)
		if m.Requests > 0 {
			fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d requests</title></rect>`,
				x+1, float64(h-pad)-bh, max(bw-2, 1), bh, m.Start.Format("15:04"), m.Requests)
		}
		if c := m.Hits + m.Misses; c > 0 {
			y := float64(h-pad) - float64(m.Hits)/float64(c)*float64(h-2*pad)
			line = append(line, fmt.Sprintf("%.1f,%.1f", x+bw/2, y))
		}
	}
	switch {
	case len(line) > 1:
		fmt.Fprintf(&b, `<polyline class="hitrate" points="%s"/>`, strings.Join(line, " "))
	case len(line) == 1: // one minute of traffic: a point
		var x, y float64
		fmt.Sscanf(line[0], "%f,%f", &x, &y)
		fmt.Fprintf(&b, `<circle class="hitrate-point" cx="%.1f" cy="%.1f" r="3"/>`, x, y)
	}
	fmt.Fprintf(&b, `<text x="%d" y="14" class="label">max %d/min</text>`, pad, maxReq)
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="label">−60 min</text><text x="%d" y="%d" class="label" text-anchor="end">now</text>`, pad, h-6, w-pad, h-6)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
