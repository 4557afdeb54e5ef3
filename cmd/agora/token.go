package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/mod/module"

	"github.com/agora-mirror/agora/internal/access"
	"github.com/agora-mirror/agora/internal/meta"
)

const tokenUsage = `Usage:
  agora token create -name NAME -allow PATTERNS [settings]   create a token; it is printed once, and stored hashed
  agora token list [settings]                                list tokens (names and patterns, never the tokens)
  agora token revoke -name NAME [settings]                   revoke a token (running servers stop accepting it within 30s)
`

func tokenCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, tokenUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	var name, allow string
	flags := func(fs *flag.FlagSet) {
		if sub != "list" {
			fs.StringVar(&name, "name", "", "the token's name (who or what uses it)")
		}
		if sub == "create" {
			fs.StringVar(&allow, "allow", "", "module path patterns the token may read, GOPRIVATE syntax (corp.example.com/*,github.com/corp)")
		}
	}
	switch sub {
	case "create", "list", "revoke":
	default:
		fmt.Fprintf(stderr, "agora token: unknown subcommand %q\n\n%s", sub, tokenUsage)
		return 2
	}
	cfg, data, ctx, done, code := loadData("token "+sub, args, stderr, flags)
	if code >= 0 {
		return code
	}
	defer done()
	if len(cfg.Args) > 0 {
		fmt.Fprintf(stderr, "agora token %s: unexpected arguments %q\n", sub, cfg.Args)
		return 2
	}
	switch sub {
	case "create":
		if name == "" || allow == "" {
			fmt.Fprintf(stderr, "agora token create: -name and -allow are required\n")
			return 2
		}
		for _, p := range strings.Split(allow, ",") {
			if p = strings.TrimSpace(p); p != "*" && module.CheckImportPath(strings.TrimSuffix(strings.ReplaceAll(p, "*", "x"), "/")) != nil {
				fmt.Fprintf(stderr, "agora token create: %q is not a module path pattern\n", p)
				return 2
			}
		}
		allow = access.NormalizePatterns(allow)
		tok := access.NewToken()
		if err := data.Meta.CreateToken(ctx, meta.Token{Name: name, Hash: access.Hash(tok), Patterns: allow}); err != nil {
			fmt.Fprintf(stderr, "agora token create: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "token %q created; it may read %s. It is shown this once (Agora keeps only its hash):\n", name, allow)
		fmt.Fprintln(stdout, tok)
	case "revoke":
		if err := data.Meta.RevokeToken(ctx, name); err != nil {
			fmt.Fprintf(stderr, "agora token revoke: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "token %q revoked\n", name)
	case "list":
		ts, err := data.Meta.Tokens(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "agora token list: %v\n", err)
			return 1
		}
		for _, t := range ts {
			state := "in force"
			if !t.Revoked.IsZero() {
				state = "revoked " + t.Revoked.Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%s\t%s\tcreated %s\t%s\n", t.Name, t.Patterns, t.Created.Format(time.RFC3339), state)
		}
	}
	return 0
}
