package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/agora-mirror/agora/internal/config"
	"github.com/agora-mirror/agora/internal/humanize"
)

// statusReport is the part of /ui/status.json that agora status prints.
type statusReport struct {
	Started time.Time
	Uptime  string
	Totals  struct{ Modules, Versions, Bytes int64 }
	Hour    struct {
		Requests, Hits, Misses, Errors, BytesServed, Fetches, Refused int64
		HitRate                                                       string
	}
	Sources []struct {
		Source            string
		LastOK, LastError time.Time
		LastErrorText     string
		OK, NotFound      int64
		Failed            int64
	}
	Config [][2]string
}

func statusCmd(args []string, stdout, stderr io.Writer) int {
	var server, token string
	var showConfig bool
	cfg, err := config.Load(config.Sources{Command: "agora status", Args: args, Output: stderr,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&server, "server", "", "URL of the running Agora (default: http:// and the listen setting)")
			fs.StringVar(&token, "token", os.Getenv("AGORA_TOKEN"), "access token, when access control is on (default: $AGORA_TOKEN)")
			fs.BoolVar(&showConfig, "show-config", false, "also print the server's configuration")
		}})
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "agora status: %v\n", err)
		return 2
	}
	if server == "" {
		server = "http://" + cfg.Listen
	}
	req, err := http.NewRequest(http.MethodGet, strings.TrimSuffix(server, "/")+"/ui/status.json", nil)
	if err != nil {
		fmt.Fprintf(stderr, "agora status: %v\n", err)
		return 2
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "agora status: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		fmt.Fprintf(stderr, "agora status: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
		return 1
	}
	var st statusReport
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		fmt.Fprintf(stderr, "agora status: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "Agora at %s: up %s\n", server, st.Uptime)
	fmt.Fprintf(stdout, "held:       %d modules, %d versions, %s\n", st.Totals.Modules, st.Totals.Versions, humanize.Bytes(st.Totals.Bytes))
	h := st.Hour
	fmt.Fprintf(stdout, "last hour:  %d requests, hit rate %s (%d hits, %d misses), %d server errors, %s served, %d fetches, %d refused\n",
		h.Requests, h.HitRate, h.Hits, h.Misses, h.Errors, humanize.Bytes(h.BytesServed), h.Fetches, h.Refused)
	for _, s := range st.Sources {
		line := fmt.Sprintf("source %-4s %d ok, %d not found, %d failed", s.Source, s.OK, s.NotFound, s.Failed)
		if !s.LastError.IsZero() {
			line += fmt.Sprintf("; last failure %s ago: %s", time.Since(s.LastError).Round(time.Second), s.LastErrorText)
		}
		fmt.Fprintln(stdout, line)
	}
	if showConfig {
		for _, kv := range st.Config {
			fmt.Fprintf(stdout, "  %-20s %s\n", kv[0], kv[1])
		}
	}
	return 0
}
