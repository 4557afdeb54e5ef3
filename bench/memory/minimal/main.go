// Command minimal is the baseline of bench/memory: the smallest Go server
// that answers GOPROXY file requests from a store directory, with
// http.ServeContent (so zips go out with sendfile, as Agora's do). It
// shows what the Go runtime and net/http alone cost in memory.
//
//	minimal 127.0.0.1:PORT STORE_DIR
package main

import (
	"log"
	"net/http"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: minimal ADDR STORE_DIR")
	}
	root := filepath.Join(os.Args[2], "mod")
	log.Fatal(http.ListenAndServe(os.Args[1], http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(filepath.Join(root, filepath.FromSlash(filepath.Clean("/"+r.URL.Path))))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || fi.IsDir() {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", fi.ModTime(), f)
	})))
}
