package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/mod/module"

	"github.com/agora-mirror/agora/internal/app"
	"github.com/agora-mirror/agora/internal/prune"
	"github.com/agora-mirror/agora/internal/sumdb"
	"github.com/agora-mirror/agora/internal/verify"
)

func verifyStore(args []string, stderr io.Writer) int {
	var quarantine bool
	cfg, data, ctx, done, code := loadData("verify", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&quarantine, "quarantine", false, "move the files of corrupt or incomplete versions aside, so that they are fetched again")
	})
	if code >= 0 {
		return code
	}
	defer done()
	if len(cfg.Args) > 0 {
		fmt.Fprintf(stderr, "agora verify: unexpected arguments %q\n", cfg.Args)
		return 2
	}
	o := verify.Options{Store: data.Store, Catalog: data.Meta, Quarantine: quarantine, Progress: stderr}
	if data.SumDB != nil {
		// Against the records held only: verify never goes out.
		o.Verifier = sumdb.New(*data.SumDB, data.Store, sumdb.Options{State: data.Meta, Offline: true, NoSum: app.NoSum(cfg)})
	}
	rep, err := verify.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "agora verify: %v\n", err)
		return 1
	}
	if len(rep.Problems) > 0 {
		return 1
	}
	return 0
}

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func pruneStore(args []string, stderr io.Writer) int {
	var unusedFor time.Duration
	var keep repeated
	var apply bool
	cfg, data, ctx, done, code := loadData("prune", args, stderr, func(fs *flag.FlagSet) {
		fs.DurationVar(&unusedFor, "unused-for", 0, "remove versions neither added nor requested for this long, such as 2160h (required)")
		fs.Var(&keep, "keep", "a go.sum file whose versions must stay (may be repeated)")
		fs.BoolVar(&apply, "apply", false, "remove; without it, only list what would be removed")
	})
	if code >= 0 {
		return code
	}
	defer done()
	if len(cfg.Args) > 0 || unusedFor <= 0 {
		fmt.Fprintf(stderr, "agora prune: want -unused-for DURATION and no arguments\n")
		return 2
	}
	kept := make(map[module.Version]bool)
	for _, f := range keep {
		if err := prune.ReadGoSum(f, kept); err != nil {
			fmt.Fprintf(stderr, "agora prune: %v\n", err)
			return 2
		}
	}
	if _, err := prune.Run(ctx, prune.Options{Store: data.Store, Catalog: data.Meta, UnusedFor: unusedFor,
		Keep: kept, Apply: apply, Progress: stderr}); err != nil {
		fmt.Fprintf(stderr, "agora prune: %v\n", err)
		return 1
	}
	return 0
}
