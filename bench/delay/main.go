// Command delay is a reverse proxy that holds every request for a fixed
// time before passing it on: it puts a local upstream (nginx serving a
// generated GOPROXY tree) as far away as a remote module proxy is, for the
// cold fill benchmark (bench/coldfill, DELAY=...).
//
// Usage:
//
//	go run ./bench/delay -listen 127.0.0.1:18189 -to http://127.0.0.1:18190 -delay 10ms
//
// The delay is added once per request, before it is forwarded, as a round
// trip to a distant server adds it; the answer then streams back at local
// speed. It listens on the given loopback address only.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18189", "address to listen on")
	to := flag.String("to", "", "URL of the server to pass requests to")
	delay := flag.Duration("delay", 10*time.Millisecond, "time each request is held before it is passed on")
	flag.Parse()
	u, err := url.Parse(*to)
	if err != nil || u.Host == "" {
		log.Fatalf("delay: -to %q: want a URL such as http://127.0.0.1:18190", *to)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{MaxIdleConnsPerHost: 256}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(*delay):
		case <-r.Context().Done():
			return
		}
		rp.ServeHTTP(w, r)
	})
	log.Fatal(http.ListenAndServe(*listen, h))
}
