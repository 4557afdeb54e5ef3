package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/agora-mirror/agora/internal/app"
	"github.com/agora-mirror/agora/internal/bundle"
	"github.com/agora-mirror/agora/internal/config"
)

// loadData reads the configuration of a subcommand that works on a
// mirror's data directly, and opens that data.
func loadData(name string, args []string, stderr io.Writer, flags func(*flag.FlagSet)) (*config.Config, *app.Data, context.Context, func(), int) {
	cfg, err := config.Load(config.Sources{Command: "agora " + name, Args: args, Output: stderr, Flags: flags, Positional: true})
	if errors.Is(err, config.ErrHelp) {
		return nil, nil, nil, nil, 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "agora %s: %v\n", name, err)
		return nil, nil, nil, nil, 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	data, err := app.OpenData(ctx, cfg)
	if err != nil {
		stop()
		fmt.Fprintf(stderr, "agora %s: %v\n", name, err)
		return nil, nil, nil, nil, 1
	}
	return cfg, data, ctx, func() { data.Close(); stop() }, -1
}

func export(args []string, stderr io.Writer) int {
	var out, since string
	cfg, data, ctx, done, code := loadData("export", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "o", "", "the bundle file to write (required)")
		fs.StringVar(&since, "since", "", "export every version added at or after this time (RFC 3339), instead of the module@version arguments")
	})
	if code >= 0 {
		return code
	}
	defer done()
	o := bundle.ExportOptions{Store: data.Store, Catalog: data.Meta, SumDB: data.SumDB}
	var err error
	switch {
	case out == "":
		err = errors.New("-o FILE is required")
	case since != "" && len(cfg.Args) > 0:
		err = errors.New("give -since or module@version arguments, not both")
	case since != "":
		o.Since, err = time.Parse(time.RFC3339Nano, since)
	case len(cfg.Args) == 0:
		err = errors.New("nothing to export: give module@version arguments or -since")
	default:
		o.Versions, err = bundle.ParseVersions(cfg.Args)
	}
	if err != nil {
		fmt.Fprintf(stderr, "agora export: %v\n", err)
		return 2
	}
	// Written beside the target and renamed: never a half bundle.
	f, err := os.CreateTemp(filepath.Dir(out), ".agora-export-*")
	if err != nil {
		fmt.Fprintf(stderr, "agora export: %v\n", err)
		return 1
	}
	defer os.Remove(f.Name())
	m, err := bundle.Export(ctx, f, o)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "agora export: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "agora export: %d versions, %d checksum database files, to %s\n", len(m.Versions), len(m.SumDBFiles), out)
	return 0
}

func importBundle(args []string, stderr io.Writer) int {
	cfg, data, ctx, done, code := loadData("import", args, stderr, nil)
	if code >= 0 {
		return code
	}
	defer done()
	if len(cfg.Args) != 1 {
		fmt.Fprintf(stderr, "agora import: want one bundle file\n")
		return 2
	}
	f, err := os.Open(cfg.Args[0])
	if err != nil {
		fmt.Fprintf(stderr, "agora import: %v\n", err)
		return 1
	}
	defer f.Close()
	res, err := bundle.Import(ctx, f, bundle.ImportOptions{Store: data.Store, Catalog: data.Meta, SumDB: data.SumDB, NoSum: app.NoSum(cfg)})
	if err != nil {
		fmt.Fprintf(stderr, "agora import: %s: %v\nnothing was imported\n", cfg.Args[0], err)
		return 1
	}
	fmt.Fprintf(stderr, "agora import: %s: %d versions added, %d already held\n", cfg.Args[0], res.Added, res.Present)
	return 0
}
