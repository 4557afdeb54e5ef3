// Package config assembles Agora's configuration from, in rising order of
// precedence: built-in defaults (the upstream chain and checksum database
// taken from `go env`), a TOML file, AGORA_* environment variables, and
// command-line flags.
//
// Every setting has one name, spelled data_dir in the file,
// AGORA_DATA_DIR in the environment and --data-dir on the command line,
// and one parser, whichever source it comes from.
package config

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is Agora's configuration.
type Config struct {
	Listen          string         // address to listen on
	DataDir         string         // directory of the embedded store and database
	Storage         string         // object storage URL (s3://, gs://, azblob://); empty: the disk store in DataDir
	Database        string         // sqlite:PATH or postgres://...; empty: SQLite in DataDir
	ZipRedirect     time.Duration  // lifetime of pre-signed zip URLs clients are redirected to; zero: Agora streams zips
	Upstream        string         // upstream chain, GOPROXY syntax
	SumDB           string         // checksum database, GOSUMDB syntax ("off" for none)
	NoSum           string         // GOPRIVATE-style patterns never looked up in the checksum database
	ListTTL         time.Duration  // how long a version list is fresh
	UpstreamTimeout time.Duration  // wait for an upstream's headers or next bytes
	FillTimeout     time.Duration  // bound on one fill
	MemoryCacheMiB  int            // in-memory cache of .info and .mod files
	FillAhead       string         // off, mod or zip: what is filled before clients ask
	LogLevel        string         // debug, info, warn, error
	LogFormat       string         // text or json
	LogClientAddr   bool           // put client addresses in request logs
	TrustedProxies  []netip.Prefix // reverse proxies whose X-Forwarded-For names the client
	PprofListen     string         // address of the separate pprof listener; empty for none
	Offline         bool           // never fetch: serve only what is held
	Auth            string         // module path patterns only tokens allowing them may read; empty: no access control
	TLSCert, TLSKey string         // serve HTTPS with this certificate and key
	OTLPEndpoint    string         // OpenTelemetry collector (OTLP over HTTP) to send traces of fills to

	// Private modules and version control.
	Private           string            // GOPRIVATE-style patterns fetched from version control only
	Insecure          string            // GOINSECURE-style patterns of hosts reachable over plain HTTP
	Netrc             string            // netrc file with credentials for the go and git processes
	GitTokens         map[string]string // per-host HTTPS tokens for git
	SSHKey            string            // private key file for ssh git URLs
	SSHKnownHosts     string            // known_hosts file for ssh git URLs
	GitSSHCommand     string            // replaces the ssh command for git entirely
	GitConfig         string            // git configuration file included by every git run for version control
	DirectDir         string            // where the shared module and VCS cache of direct fetches lives
	DirectConcurrency int               // bound on concurrent direct fetches
	DirectTimeout     time.Duration     // bound on one direct fetch

	// Routes and named upstream chains come from the file only.
	Routes     []Route
	Upstreams  map[string]string
	ConfigFile string   // the TOML file read, if any
	Args       []string // positional arguments, for subcommands that take them
}

// Route is a routing rule as configured: see internal/policy.
type Route struct {
	Pattern  string   // GOPRIVATE-style module path patterns
	Action   string   // upstream, direct, private or deny
	Upstream string   // for action upstream: the name of a chain in Upstreams
	Versions []string // for action deny: version ranges the rule is limited to
}

// setting describes one configuration setting.
type setting struct {
	name   string // file key; the flag and variable names derive from it
	usage  string
	set    func(c *Config, v string) error
	get    func(c *Config) string
	isBool bool // its flag may be given alone, meaning true
}

// boolText is a boolean setting's flag: a boolean flag, so it may be
// given alone ("--offline"), keeping the text given, which is checked
// and applied after the file and the environment as every flag's is.
// joinBoolValues lets it also take a separate value ("--offline true").
type boolText struct{ v string }

func (f *boolText) String() string     { return f.v }
func (f *boolText) Set(v string) error { f.v = v; return nil }
func (f *boolText) IsBoolFlag() bool   { return true }

// joinBoolValues returns args with each boolean flag that is followed by
// a separate true or false joined to it ("--offline", "true" becomes
// "--offline=true"), as the flag package reads a boolean flag's value
// only after "=". It reads args as fs would, up to the first argument
// that is not a flag.
func joinBoolValues(fs *flag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		out = append(out, a)
		if a == "--" || a == "-" || !strings.HasPrefix(a, "-") {
			return append(out, args[i+1:]...)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // fs reports it
		}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			if i+1 < len(args) && (args[i+1] == "true" || args[i+1] == "false") {
				out[len(out)-1] = a + "=" + args[i+1]
				i++
			}
			continue
		}
		if i+1 < len(args) {
			out = append(out, args[i+1]) // the flag's value
			i++
		}
	}
	return out
}

func str(p func(*Config) *string) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error { *p(c) = v; return nil },
		func(c *Config) string { return *p(c) }
}

func boolean(p func(*Config) *bool) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("want true or false, got %q", v)
			}
			*p(c) = b
			return nil
		},
		func(c *Config) string { return strconv.FormatBool(*p(c)) }
}

func dur(p func(*Config) *time.Duration) (func(*Config, string) error, func(*Config) string) {
	return func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("want a positive duration such as 30s or 5m, got %q", v)
			}
			*p(c) = d
			return nil
		},
		func(c *Config) string { return p(c).String() }
}

func mk(name, usage string, set func(*Config, string) error, get func(*Config) string) setting {
	return setting{name: name, usage: usage, set: set, get: get}
}

var settings = func() []setting {
	var s []setting
	add := func(name, usage string, f func(*Config, string) error, g func(*Config) string) {
		s = append(s, mk(name, usage, f, g))
	}
	addBool := func(name, usage string, p func(*Config) *bool) {
		f, g := boolean(p)
		add(name, usage, f, g)
		s[len(s)-1].isBool = true
	}
	set, get := str(func(c *Config) *string { return &c.Listen })
	add("listen", "address to listen on (host:port)", set, get)
	set, get = str(func(c *Config) *string { return &c.DataDir })
	add("data_dir", "directory of the embedded store and database, and of local working files", set, get)
	set, _ = str(func(c *Config) *string { return &c.Storage })
	add("storage", "object storage for module files, as a URL: s3://bucket?endpoint=...&region=...&use_path_style=true (any S3-compatible server; credentials from AWS_* variables or files), gs://bucket, azblob://container (these two with the agora_gcs/agora_azure build tags) (default: the disk store in data_dir)",
		set, func(c *Config) string { return redactURL(c.Storage) })
	set, _ = str(func(c *Config) *string { return &c.Database })
	add("database", "metadata database: sqlite:PATH, or postgres://user@host:port/db for several replicas (password from PGPASSWORD or PGPASSFILE) (default: sqlite:<data_dir>/agora.db)",
		set, func(c *Config) string { return redactURL(c.Database) })
	add("zip_redirect", "answer zip requests with a redirect to a pre-signed object storage URL valid this long, such as 15m (object storage only; default 0: Agora streams zips)",
		func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("want a duration such as 15m, or 0 for none, got %q", v)
			}
			c.ZipRedirect = d
			return nil
		}, func(c *Config) string { return c.ZipRedirect.String() })
	set, get = str(func(c *Config) *string { return &c.Upstream })
	add("upstream", "upstream proxies in GOPROXY syntax (default: go env GOPROXY)", set, get)
	set, get = str(func(c *Config) *string { return &c.SumDB })
	add("sumdb", "checksum database in GOSUMDB syntax: name[+key] [url], or off (default: go env GOSUMDB)", set, get)
	set, get = str(func(c *Config) *string { return &c.NoSum })
	add("nosum", "module path patterns (GOPRIVATE syntax) never looked up in the checksum database (default: go env GONOSUMDB, else GOPRIVATE)", set, get)
	set, get = dur(func(c *Config) *time.Duration { return &c.ListTTL })
	add("list_ttl", "how long a version list from the upstreams is used before it is refreshed", set, get)
	set, get = dur(func(c *Config) *time.Duration { return &c.UpstreamTimeout })
	add("upstream_timeout", "how long to wait for an upstream's answer or its next bytes", set, get)
	set, get = dur(func(c *Config) *time.Duration { return &c.FillTimeout })
	add("fill_timeout", "bound on fetching and checking one file", set, get)
	add("memory_cache_mb", "MiB of memory for caching .info and .mod files (0 disables)",
		func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			// Bounded so that the size in bytes (n<<20) fits an int.
			if err != nil || n < 0 || n > math.MaxInt>>20 {
				return fmt.Errorf("want a number of MiB, got %q", v)
			}
			c.MemoryCacheMiB = n
			return nil
		}, func(c *Config) string { return strconv.Itoa(c.MemoryCacheMiB) })
	add("fill_ahead", "what is fetched before clients ask for it: mod (the .info and .mod of the versions a go.mod fetched from an upstream proxy requires), zip (that, and the zip of such a version, or of one whose .mod a client asked for, when a client asks for its .info) or off",
		func(c *Config, v string) error {
			switch v {
			case "off", "mod", "zip":
				c.FillAhead = v
				return nil
			}
			return fmt.Errorf("want off, mod or zip, got %q", v)
		}, func(c *Config) string { return c.FillAhead })
	add("log_level", "debug, info, warn or error", func(c *Config, v string) error {
		var l slog.Level
		if err := l.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("want debug, info, warn or error, got %q", v)
		}
		c.LogLevel = strings.ToLower(v)
		return nil
	}, func(c *Config) string { return c.LogLevel })
	add("log_format", "text or json", func(c *Config, v string) error {
		if v != "text" && v != "json" {
			return fmt.Errorf("want text or json, got %q", v)
		}
		c.LogFormat = v
		return nil
	}, func(c *Config) string { return c.LogFormat })
	set, get = str(func(c *Config) *string { return &c.PprofListen })
	add("pprof_listen", "address of a separate listener for net/http/pprof (off when empty; keep it private)", set, get)
	set, get = str(func(c *Config) *string { return &c.Private })
	add("private", "module path patterns (GOPRIVATE syntax) fetched from version control only, never from upstreams or the checksum database", set, get)
	set, get = str(func(c *Config) *string { return &c.Insecure })
	add("insecure", "hosts (GOINSECURE syntax) that may be fetched from over plain HTTP", set, get)
	set, get = str(func(c *Config) *string { return &c.Netrc })
	add("netrc", "netrc file with credentials for fetching from version control", set, get)
	add("git_tokens", "per-host HTTPS tokens for version control, as host=token,host=token (a table in the file)",
		func(c *Config, v string) error {
			m, err := parseTokens(v)
			if err != nil {
				return err
			}
			c.GitTokens = m
			return nil
		}, func(c *Config) string { return redactTokens(c.GitTokens) })
	set, get = str(func(c *Config) *string { return &c.SSHKey })
	add("ssh_key", "private key file for ssh version control URLs", set, get)
	set, get = str(func(c *Config) *string { return &c.SSHKnownHosts })
	add("ssh_known_hosts", "known_hosts file for ssh version control URLs", set, get)
	set, get = str(func(c *Config) *string { return &c.GitSSHCommand })
	add("git_ssh_command", "ssh command for git (replaces ssh_key and ssh_known_hosts)", set, get)
	set, get = str(func(c *Config) *string { return &c.GitConfig })
	add("git_config", "git configuration file read by every git run for version control (url.<base>.insteadOf rewrites, such as ssh for a host)", set, get)
	set, get = str(func(c *Config) *string { return &c.DirectDir })
	add("direct_dir", "directory of the shared module and VCS cache for fetches from version control (default: <data_dir>/direct)", set, get)
	add("direct_concurrency", "bound on concurrent fetches from version control",
		func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1024 {
				return fmt.Errorf("want a number from 1 to 1024, got %q", v)
			}
			c.DirectConcurrency = n
			return nil
		}, func(c *Config) string { return strconv.Itoa(c.DirectConcurrency) })
	set, get = dur(func(c *Config) *time.Duration { return &c.DirectTimeout })
	add("direct_timeout", "bound on one fetch from version control", set, get)
	addBool("log_client_addr", "log client addresses (off by default, for privacy)", func(c *Config) *bool { return &c.LogClientAddr })
	add("trusted_proxies", "addresses and CIDR prefixes of the reverse proxies and load balancers in front of Agora, as 10.0.0.0/8,192.0.2.7: the client of a request from one of them is read from X-Forwarded-For (for request logs and the limit on failed authentications)",
		func(c *Config, v string) error {
			ps, err := parsePrefixes(v)
			if err != nil {
				return err
			}
			c.TrustedProxies = ps
			return nil
		}, func(c *Config) string { return formatPrefixes(c.TrustedProxies) })
	set, get = str(func(c *Config) *string { return &c.Auth })
	add("auth", "module path patterns (GOPRIVATE syntax; * for all) that only clients with a token allowing them may read (agora token create); default: none, no access control", set, get)
	set, get = str(func(c *Config) *string { return &c.TLSCert })
	add("tls_cert", "certificate file (PEM) to serve HTTPS with; the go command sends netrc and GOAUTH credentials only over HTTPS", set, get)
	set, get = str(func(c *Config) *string { return &c.TLSKey })
	add("tls_key", "private key file (PEM) of tls_cert", set, get)
	set, get = str(func(c *Config) *string { return &c.OTLPEndpoint })
	add("otlp_endpoint", "send traces of fills (lock, fetch, check, store) to this OpenTelemetry collector, OTLP over HTTP, such as http://collector:4318; default: no tracing", set, get)
	addBool("offline", "never contact an upstream, version control or a checksum database: serve only what is held (imported with agora import)", func(c *Config) *bool { return &c.Offline })
	return s
}()

func flagName(name string) string { return strings.ReplaceAll(name, "_", "-") }
func envName(name string) string  { return "AGORA_" + strings.ToUpper(name) }

// Defaults returns the configuration before any source is read; Upstream,
// SumDB and NoSum are filled in later from `go env` if no source sets them.
func Defaults() Config {
	return Config{
		Listen:            "127.0.0.1:3000",
		DataDir:           "agora-data",
		ListTTL:           time.Minute,
		UpstreamTimeout:   30 * time.Second,
		FillTimeout:       10 * time.Minute,
		MemoryCacheMiB:    64,
		FillAhead:         "mod",
		DirectConcurrency: 4,
		DirectTimeout:     10 * time.Minute,
		LogLevel:          "info",
		LogFormat:         "text",
	}
}

// Sources are the inputs Load reads besides the file.
type Sources struct {
	Args []string // command-line arguments after the subcommand
	// Command names the subcommand in usage messages ("agora serve" if
	// empty); Flags registers its own flags besides the settings; with
	// Positional, arguments after the flags are kept in Config.Args.
	Command    string
	Flags      func(*flag.FlagSet)
	Positional bool
	Getenv     func(string) string   // environment; nil means os.Getenv
	GoEnv      func() (GoEnv, error) // `go env`; nil means running the go command
	Output     io.Writer             // where -h output goes; nil means os.Stderr
}

// GoEnv holds the go command's settings Agora takes defaults from.
type GoEnv struct {
	GOPROXY, GOSUMDB, GONOSUMDB, GOPRIVATE string
}

// ReadGoEnv runs `go env` for the settings in GoEnv.
func ReadGoEnv() (GoEnv, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "env", "-json", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE")
	cmd.Stdout = &out
	cmd.Stderr = io.Discard
	if err := cmd.Run(); err != nil {
		return GoEnv{}, fmt.Errorf("running go env for the default upstream and checksum database (or set --upstream and --sumdb): %w", err)
	}
	var g GoEnv
	if err := json.Unmarshal(out.Bytes(), &g); err != nil {
		return GoEnv{}, fmt.Errorf("reading go env: %w", err)
	}
	return g, nil
}

// ErrHelp is returned by Load when -h or --help was given.
var ErrHelp = flag.ErrHelp

// Load builds the configuration from its sources.
func Load(src Sources) (*Config, error) {
	getenv := src.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	out := src.Output
	if out == nil {
		out = os.Stderr
	}
	c := Defaults()

	// Flags are parsed first, to find --config, but applied last.
	name := src.Command
	if name == "" {
		name = "agora serve"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	if src.Flags != nil {
		src.Flags(fs)
	}
	flagVals := make(map[string]*string)
	configFlag := fs.String("config", "", "TOML configuration file (also AGORA_CONFIG)")
	for _, s := range settings {
		usage := fmt.Sprintf("%s (also %s)", s.usage, envName(s.name))
		if s.isBool {
			b := &boolText{}
			fs.Var(b, flagName(s.name), usage)
			flagVals[s.name] = &b.v
			continue
		}
		flagVals[s.name] = fs.String(flagName(s.name), "", usage)
	}
	if err := fs.Parse(joinBoolValues(fs, src.Args)); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 && !src.Positional {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if fs.NArg() > 0 {
		c.Args = fs.Args()
	}
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	setBy := make(map[string]bool)
	file := getenv("AGORA_CONFIG")
	if given["config"] {
		file = *configFlag
	}
	if file != "" {
		vals, extras, err := readFile(file)
		if err != nil {
			return nil, err
		}
		c.Routes, c.Upstreams = extras.routes, extras.upstreams
		for _, s := range settings {
			if v, ok := vals[s.name]; ok {
				if err := s.set(&c, v); err != nil {
					return nil, fmt.Errorf("%s: %s: %w", file, s.name, err)
				}
				setBy[s.name] = true
			}
		}
		c.ConfigFile = file
	}
	for _, s := range settings {
		if v, ok := lookupEnv(getenv, envName(s.name)); ok {
			if err := s.set(&c, v); err != nil {
				return nil, fmt.Errorf("%s: %w", envName(s.name), err)
			}
			setBy[s.name] = true
		}
	}
	for _, s := range settings {
		if given[flagName(s.name)] {
			if err := s.set(&c, *flagVals[s.name]); err != nil {
				return nil, fmt.Errorf("--%s: %w", flagName(s.name), err)
			}
			setBy[s.name] = true
		}
	}

	if !setBy["upstream"] || !setBy["sumdb"] || !setBy["nosum"] {
		readGo := src.GoEnv
		if readGo == nil {
			readGo = ReadGoEnv
		}
		g, err := readGo()
		if err != nil {
			return nil, err
		}
		if !setBy["upstream"] {
			c.Upstream = g.GOPROXY
		}
		if !setBy["sumdb"] {
			c.SumDB = g.GOSUMDB
		}
		if !setBy["nosum"] {
			c.NoSum = g.GONOSUMDB
			if c.NoSum == "" {
				c.NoSum = g.GOPRIVATE
			}
		}
	}
	if c.Upstream == "" {
		c.Upstream = "off"
	}
	if c.SumDB == "" {
		c.SumDB = "off"
	}
	return &c, nil
}

// lookupEnv treats an empty variable as unset, as the go command does.
func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// fileExtras holds the structured parts of a configuration file.
type fileExtras struct {
	routes    []Route
	upstreams map[string]string
}

// readFile reads a TOML configuration file into setting values and the
// structured parts.
func readFile(name string) (map[string]string, *fileExtras, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, nil, fmt.Errorf("config file: %w", err)
	}
	return parseTOML(name, data)
}

func parseTOML(name string, data []byte) (map[string]string, *fileExtras, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, nil, fmt.Errorf("config file %s: %w", name, err)
	}
	known := make(map[string]bool)
	for _, s := range settings {
		known[s.name] = true
	}
	vals := make(map[string]string)
	extras := &fileExtras{}
	var unknown []string
	for k, v := range raw {
		var err error
		switch k {
		case "route":
			extras.routes, err = parseRoutes(v)
		case "upstreams":
			extras.upstreams, err = stringTable(v)
		case "git_tokens":
			if str, ok := v.(string); ok {
				vals[k] = str // the environment's form, host=token,...
			} else if tokens, terr := stringTable(v); terr != nil {
				err = terr
			} else {
				vals[k] = formatTokens(tokens)
			}
		default:
			if !known[k] {
				unknown = append(unknown, k)
				continue
			}
			switch v := v.(type) {
			case string:
				vals[k] = v
			case int64, bool:
				vals[k] = fmt.Sprint(v)
			default:
				err = errors.New("want a string, number or boolean")
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("config file %s: %s: %w", name, k, err)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, nil, fmt.Errorf("config file %s: unknown settings %s", name, strings.Join(unknown, ", "))
	}
	return vals, extras, nil
}

// stringTable converts a TOML table of strings.
func stringTable(v any) (map[string]string, error) {
	t, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("want a table")
	}
	out := make(map[string]string, len(t))
	for k, v := range t {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s: want a string", k)
		}
		out[k] = s
	}
	return out, nil
}

// parseRoutes converts the [[route]] array of tables.
func parseRoutes(v any) ([]Route, error) {
	list, ok := v.([]map[string]any)
	if !ok {
		return nil, errors.New("want [[route]] tables")
	}
	var routes []Route
	for i, t := range list {
		var r Route
		for k, v := range t {
			var ok bool
			switch k {
			case "pattern":
				r.Pattern, ok = v.(string)
			case "action":
				r.Action, ok = v.(string)
			case "upstream":
				r.Upstream, ok = v.(string)
			case "versions":
				switch v := v.(type) {
				case string:
					r.Versions, ok = []string{v}, true
				case []any:
					ok = true
					for _, e := range v {
						s, isStr := e.(string)
						ok = ok && isStr
						r.Versions = append(r.Versions, s)
					}
				}
			default:
				return nil, fmt.Errorf("route %d: unknown key %q (want pattern, action, upstream, versions)", i+1, k)
			}
			if !ok {
				return nil, fmt.Errorf("route %d: %s: wrong type", i+1, k)
			}
		}
		routes = append(routes, r)
	}
	return routes, nil
}

// parseTokens parses "host=token,host=token".
func parseTokens(s string) (map[string]string, error) {
	m := make(map[string]string)
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		host, token, ok := strings.Cut(item, "=")
		if !ok || host == "" || token == "" {
			return nil, errors.New("want host=token entries separated by commas")
		}
		m[host] = token
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

func formatTokens(m map[string]string) string {
	var items []string
	for h, t := range m {
		items = append(items, h+"="+t)
	}
	slices.Sort(items)
	return strings.Join(items, ",")
}

// redactURL hides a password in a URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// parsePrefixes parses comma-separated IP addresses (each its own /32
// or /128) and CIDR prefixes.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if a, err := netip.ParseAddr(item); err == nil {
			// Addresses are compared unmapped and without zones.
			a = a.Unmap().WithZone("")
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("want IP addresses or CIDR prefixes separated by commas, got %q", item)
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("%q: an IPv4-mapped prefix needs at least 96 bits", item)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}

func formatPrefixes(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}

// redactTokens shows which hosts have tokens, never the tokens.
func redactTokens(m map[string]string) string {
	red := make(map[string]string, len(m))
	for h := range m {
		red[h] = "xxxxx"
	}
	return formatTokens(red)
}

// Summary returns the effective settings as name/value pairs, in a fixed
// order, for logs and status pages.
func (c *Config) Summary() [][2]string {
	var out [][2]string
	for _, s := range settings {
		out = append(out, [2]string{s.name, s.get(c)})
	}
	return out
}
