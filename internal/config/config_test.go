package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// testGoEnv is what `go env` reports in these tests.
var testGoEnv = GoEnv{
	GOPROXY:   "https://goproxy.example,direct",
	GOSUMDB:   "sum.golang.org",
	GONOSUMDB: "",
	GOPRIVATE: "private.example/*",
}

func fixedGoEnv() (GoEnv, error) { return testGoEnv, nil }

// mapEnv returns a Getenv backed by m; other variables are unset.
func mapEnv(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "agora.toml")
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// defaults is the configuration with no source set, `go env` being
// testGoEnv.
func defaults() Config {
	c := Defaults()
	c.Upstream = testGoEnv.GOPROXY
	c.SumDB = testGoEnv.GOSUMDB
	c.NoSum = testGoEnv.GOPRIVATE
	return c
}

func TestDefaults(t *testing.T) {
	c, err := Load(Sources{Getenv: mapEnv(nil), GoEnv: fixedGoEnv})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen:          "127.0.0.1:3000",
		DataDir:         "agora-data",
		Upstream:        "https://goproxy.example,direct",
		SumDB:           "sum.golang.org",
		NoSum:           "private.example/*",
		ListTTL:         time.Minute,
		UpstreamTimeout: 30 * time.Second,
		FillTimeout:     10 * time.Minute,
		MemoryCacheMiB:  64,
		FillAhead:       "mod",
		LogLevel:        "info",
		LogFormat:       "text",
		LogClientAddr:   false,

		DirectConcurrency: 4,
		DirectTimeout:     10 * time.Minute,
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("Load with no sources =\n%+v\nwant\n%+v", *c, want)
	}
}

// settingCases set every setting to a value other than its default. toml
// is the value as written in the file; value as given in the environment
// or on the command line.
var settingCases = []struct {
	name  string
	toml  string
	value string
	want  func(c *Config)
}{
	{"listen", `"0.0.0.0:8080"`, "0.0.0.0:8080", func(c *Config) { c.Listen = "0.0.0.0:8080" }},
	{"data_dir", `"/var/lib/agora"`, "/var/lib/agora", func(c *Config) { c.DataDir = "/var/lib/agora" }},
	{"upstream", `"https://a.example|https://b.example,direct"`, "https://a.example|https://b.example,direct",
		func(c *Config) { c.Upstream = "https://a.example|https://b.example,direct" }},
	{"sumdb", `"sum.example+abc https://sum.example"`, "sum.example+abc https://sum.example",
		func(c *Config) { c.SumDB = "sum.example+abc https://sum.example" }},
	{"nosum", `"*.corp.example,rsc.io/private"`, "*.corp.example,rsc.io/private",
		func(c *Config) { c.NoSum = "*.corp.example,rsc.io/private" }},
	{"list_ttl", `"5m"`, "5m", func(c *Config) { c.ListTTL = 5 * time.Minute }},
	{"upstream_timeout", `"45s"`, "45s", func(c *Config) { c.UpstreamTimeout = 45 * time.Second }},
	{"fill_timeout", `"1h30m"`, "1h30m", func(c *Config) { c.FillTimeout = 90 * time.Minute }},
	{"memory_cache_mb", `128`, "128", func(c *Config) { c.MemoryCacheMiB = 128 }},
	{"memory_cache_mb", `"0"`, "0", func(c *Config) { c.MemoryCacheMiB = 0 }},
	{"fill_ahead", `"zip"`, "zip", func(c *Config) { c.FillAhead = "zip" }},
	{"fill_ahead", `"off"`, "off", func(c *Config) { c.FillAhead = "off" }},
	{"log_level", `"debug"`, "debug", func(c *Config) { c.LogLevel = "debug" }},
	{"log_level", `"WARN"`, "WARN", func(c *Config) { c.LogLevel = "warn" }},
	{"log_format", `"json"`, "json", func(c *Config) { c.LogFormat = "json" }},
	{"log_client_addr", `true`, "true", func(c *Config) { c.LogClientAddr = true }},
	{"trusted_proxies", `"10.0.3.0/28, 192.0.2.7,::ffff:198.51.100.1, 2001:db8::1/32,fe80::1%eth0,::ffff:10.9.0.0/112"`, "10.0.3.0/28, 192.0.2.7,::ffff:198.51.100.1, 2001:db8::1/32,fe80::1%eth0,::ffff:10.9.0.0/112", func(c *Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.3.0/28"), netip.MustParsePrefix("192.0.2.7/32"),
			netip.MustParsePrefix("198.51.100.1/32"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("fe80::1/128"),
			netip.MustParsePrefix("10.9.0.0/16")}
	}},
}

func TestEachSettingFromEachSource(t *testing.T) {
	for _, tc := range settingCases {
		env := "AGORA_" + strings.ToUpper(tc.name)
		flag := "--" + strings.ReplaceAll(tc.name, "_", "-")
		sources := []struct {
			source string
			src    func(t *testing.T) (Sources, string)
		}{
			{"file " + tc.name, func(t *testing.T) (Sources, string) {
				f := writeFile(t, tc.name+" = "+tc.toml+"\n")
				return Sources{Args: []string{"--config", f}, Getenv: mapEnv(nil)}, f
			}},
			{"env " + env, func(t *testing.T) (Sources, string) {
				return Sources{Getenv: mapEnv(map[string]string{env: tc.value})}, ""
			}},
			{"flag " + flag + "=", func(t *testing.T) (Sources, string) {
				return Sources{Args: []string{flag + "=" + tc.value}, Getenv: mapEnv(nil)}, ""
			}},
			{"flag " + flag[1:] + " (one dash, separate value)", func(t *testing.T) (Sources, string) {
				return Sources{Args: []string{flag[1:], tc.value}, Getenv: mapEnv(nil)}, ""
			}},
		}
		for _, s := range sources {
			t.Run(s.source+"="+tc.value, func(t *testing.T) {
				src, file := s.src(t)
				src.GoEnv = fixedGoEnv
				c, err := Load(src)
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				want := defaults()
				tc.want(&want)
				want.ConfigFile = file
				if !reflect.DeepEqual(*c, want) {
					t.Errorf("Load =\n%+v\nwant\n%+v", *c, want)
				}
			})
		}
	}
}

func TestPrecedenceFlagOverEnvOverFileOverDefault(t *testing.T) {
	tests := []struct {
		file, env, flag bool
		want            string // which source's value wins
	}{
		{false, false, false, "default"},
		{true, false, false, "file"},
		{false, true, false, "env"},
		{false, false, true, "flag"},
		{true, true, false, "env"},
		{true, false, true, "flag"},
		{false, true, true, "flag"},
		{true, true, true, "flag"},
	}
	// Each setting kind: a plain string, one that defaults from go env,
	// and a parsed one.
	type values map[string]string
	settings := []struct {
		name string
		val  values // value per source; the file value is TOML
		get  func(c *Config) string
	}{
		{"listen",
			values{"default": "127.0.0.1:3000", "file": `"file:1"`, "env": "env:2", "flag": "flag:3"},
			func(c *Config) string { return c.Listen }},
		{"upstream",
			values{"default": testGoEnv.GOPROXY, "file": `"https://file.example"`, "env": "https://env.example", "flag": "https://flag.example"},
			func(c *Config) string { return c.Upstream }},
		{"list_ttl",
			values{"default": "1m0s", "file": `"2m0s"`, "env": "3m0s", "flag": "4m0s"},
			func(c *Config) string { return c.ListTTL.String() }},
	}
	for _, s := range settings {
		for _, tc := range tests {
			name := fmt.Sprintf("%s/file=%v,env=%v,flag=%v", s.name, tc.file, tc.env, tc.flag)
			t.Run(name, func(t *testing.T) {
				src := Sources{Getenv: mapEnv(nil), GoEnv: fixedGoEnv}
				env := map[string]string{}
				if tc.file {
					f := writeFile(t, s.name+" = "+s.val["file"]+"\n")
					src.Args = append(src.Args, "--config", f)
				}
				if tc.env {
					env["AGORA_"+strings.ToUpper(s.name)] = s.val["env"]
				}
				if tc.flag {
					src.Args = append(src.Args, "--"+strings.ReplaceAll(s.name, "_", "-")+"="+s.val["flag"])
				}
				src.Getenv = mapEnv(env)
				c, err := Load(src)
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				want := strings.Trim(s.val[tc.want], `"`)
				if got := s.get(c); got != want {
					t.Errorf("%s = %q, want the %s value %q", s.name, got, tc.want, want)
				}
			})
		}
	}
}

func TestConfigFileChoice(t *testing.T) {
	fromEnv := writeFile(t, `listen = "env-file:1"`)
	fromFlag := writeFile(t, `listen = "flag-file:2"`)
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantFile   string
		wantListen string
	}{
		{"no file", nil, nil, "", "127.0.0.1:3000"},
		{"AGORA_CONFIG", nil, map[string]string{"AGORA_CONFIG": fromEnv}, fromEnv, "env-file:1"},
		{"--config", []string{"--config", fromFlag}, nil, fromFlag, "flag-file:2"},
		{"--config beats AGORA_CONFIG", []string{"--config=" + fromFlag}, map[string]string{"AGORA_CONFIG": fromEnv}, fromFlag, "flag-file:2"},
		{"empty --config reads no file", []string{"--config="}, map[string]string{"AGORA_CONFIG": fromEnv}, "", "127.0.0.1:3000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(Sources{Args: tc.args, Getenv: mapEnv(tc.env), GoEnv: fixedGoEnv})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.ConfigFile != tc.wantFile || c.Listen != tc.wantListen {
				t.Errorf("ConfigFile = %q, Listen = %q; want %q, %q", c.ConfigFile, c.Listen, tc.wantFile, tc.wantListen)
			}
		})
	}
}

func TestConfigFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string // in the error message, besides the file name
	}{
		{"unknown key", "listen = \"x\"\nlistn = \"y\"\n", []string{"unknown", "listn"}},
		{"several unknown keys, sorted", "zzz = 1\naaa = 2\n", []string{"aaa, zzz"}},
		{"flag spelling is not a key", "data-dir = \"d\"\n", []string{"unknown", "data-dir"}},
		{"environment spelling is not a key", "AGORA_DATA_DIR = \"d\"\n", []string{"unknown", "AGORA_DATA_DIR"}},
		{"key in another case", "Listen = \"x\"\n", []string{"unknown", "Listen"}},
		{"table", "[server]\nlisten = \"x\"\n", []string{"unknown", "server"}},
		{"dotted key", "server.listen = \"x\"\n", []string{"unknown", "server"}},
		{"float", "memory_cache_mb = 1.5\n", []string{"memory_cache_mb", "want a string, number or boolean"}},
		{"array", "upstream = [\"a\", \"b\"]\n", []string{"upstream", "want a string, number or boolean"}},
		{"datetime", "list_ttl = 2024-01-01T00:00:00Z\n", []string{"list_ttl"}},
		{"inline table", "listen = {host = \"x\"}\n", []string{"listen"}},
		{"duration without unit", "list_ttl = 60\n", []string{"list_ttl", "positive duration"}},
		{"negative number", "memory_cache_mb = -1\n", []string{"memory_cache_mb"}},
		{"bad boolean", "log_client_addr = \"yes please\"\n", []string{"log_client_addr"}},
		{"syntax error", "listen = \n", nil},
		{"unterminated string", "listen = \"x\n", nil},
		{"duplicate key", "listen = \"a\"\nlisten = \"b\"\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := writeFile(t, tc.content)
			_, err := Load(Sources{Args: []string{"--config", f}, Getenv: mapEnv(nil), GoEnv: fixedGoEnv})
			if err == nil {
				t.Fatalf("Load of %q succeeded", tc.content)
			}
			for _, w := range append([]string{f}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestMissingConfigFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "missing.toml")
	_, err := Load(Sources{Getenv: mapEnv(map[string]string{"AGORA_CONFIG": name}), GoEnv: fixedGoEnv})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load with a missing file: got %v, want an error matching os.ErrNotExist", err)
	}
}

func TestInvalidValuesNameSettingAndSource(t *testing.T) {
	bad := []struct {
		name, value string
	}{
		{"list_ttl", "soon"},
		{"list_ttl", "-5s"},
		{"list_ttl", "0s"},
		{"upstream_timeout", "0"},
		{"fill_timeout", "10"},
		{"memory_cache_mb", "-1"},
		{"memory_cache_mb", "lots"},
		{"memory_cache_mb", "1.5"},
		{"fill_ahead", "yes"},
		{"memory_cache_mb", "9223372036854775807"}, // overflows as bytes
		{"memory_cache_mb", "17592186044416"},      // 1<<44: wraps to 0 bytes
		{"log_level", "loud"},
		{"log_format", "xml"},
		{"log_format", "JSON"},
		{"log_client_addr", "maybe"},
		{"trusted_proxies", "load-balancer.internal"},
		{"trusted_proxies", "10.0.0.0/33"},
		{"trusted_proxies", "::ffff:0:0/80"},
	}
	for _, b := range bad {
		env := "AGORA_" + strings.ToUpper(b.name)
		flag := "--" + strings.ReplaceAll(b.name, "_", "-")
		t.Run(b.name+"="+b.value, func(t *testing.T) {
			f := writeFile(t, fmt.Sprintf("%s = %q\n", b.name, b.value))
			cases := []struct {
				source string
				src    Sources
				want   []string
			}{
				{"file", Sources{Args: []string{"--config", f}, Getenv: mapEnv(nil)}, []string{f, b.name}},
				{"env", Sources{Getenv: mapEnv(map[string]string{env: b.value})}, []string{env}},
				{"flag", Sources{Args: []string{flag + "=" + b.value}, Getenv: mapEnv(nil)}, []string{flag}},
			}
			for _, c := range cases {
				c.src.GoEnv = fixedGoEnv
				_, err := Load(c.src)
				if err == nil {
					t.Errorf("%s: Load succeeded", c.source)
					continue
				}
				for _, w := range append(c.want, fmt.Sprintf("%q", b.value)) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: error %q does not mention %s", c.source, err, w)
					}
				}
			}
		})
	}
}

func TestEmptyEnvironmentVariableIsUnset(t *testing.T) {
	c, err := Load(Sources{
		Getenv: mapEnv(map[string]string{"AGORA_LISTEN": "", "AGORA_LIST_TTL": "", "AGORA_UPSTREAM": ""}),
		GoEnv:  fixedGoEnv,
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(*c, defaults()) {
		t.Errorf("Load with empty variables =\n%+v\nwant the defaults\n%+v", *c, defaults())
	}
}

func TestGoEnvNotCalledWhenUpstreamSumDBAndNoSumAreSet(t *testing.T) {
	noGoEnv := func() (GoEnv, error) {
		t.Error("go env was called although upstream, sumdb and nosum are all set")
		return GoEnv{}, errors.New("unexpected")
	}
	tests := []struct {
		name string
		file string
		env  map[string]string
		args []string
	}{
		{"all flags", "", nil, []string{"--upstream=https://u.example", "--sumdb=off", "--nosum="}},
		{"all environment", "", map[string]string{"AGORA_UPSTREAM": "https://u.example", "AGORA_SUMDB": "off", "AGORA_NOSUM": "x.example"}, nil},
		{"all file, nosum empty", "upstream = \"https://u.example\"\nsumdb = \"off\"\nnosum = \"\"\n", nil, nil},
		{"mixed", "nosum = \"x.example\"\n", map[string]string{"AGORA_SUMDB": "sum.golang.org"}, []string{"--upstream", "off"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append(args, "--config", writeFile(t, tc.file))
			}
			if _, err := Load(Sources{Args: args, Getenv: mapEnv(tc.env), GoEnv: noGoEnv}); err != nil {
				t.Errorf("Load: %v", err)
			}
		})
	}
}

func TestGoEnvFillsOnlyWhatIsNotSet(t *testing.T) {
	calls := 0
	goEnv := func() (GoEnv, error) { calls++; return testGoEnv, nil }
	c, err := Load(Sources{
		Args:   []string{"--upstream=https://mine.example"},
		Getenv: mapEnv(map[string]string{"AGORA_NOSUM": "mine.example"}),
		GoEnv:  goEnv,
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("go env called %d times, want once", calls)
	}
	if c.Upstream != "https://mine.example" || c.SumDB != testGoEnv.GOSUMDB || c.NoSum != "mine.example" {
		t.Errorf("Upstream, SumDB, NoSum = %q, %q, %q; want the flag, go env, and environment values", c.Upstream, c.SumDB, c.NoSum)
	}
}

func TestGoEnvFailureIsReported(t *testing.T) {
	errGo := errors.New("go: command not found")
	_, err := Load(Sources{Getenv: mapEnv(nil), GoEnv: func() (GoEnv, error) { return GoEnv{}, errGo }})
	if !errors.Is(err, errGo) {
		t.Errorf("Load: got %v, want the go env error", err)
	}
}

func TestNoSumDefaultsToGONOSUMDBElseGOPRIVATE(t *testing.T) {
	tests := []struct {
		gonosumdb, goprivate, want string
	}{
		{"", "", ""},
		{"nosum.example", "", "nosum.example"},
		{"", "private.example", "private.example"},
		{"nosum.example", "private.example", "nosum.example"},
	}
	for _, tc := range tests {
		g := GoEnv{GOPROXY: "https://p.example", GOSUMDB: "sum.golang.org", GONOSUMDB: tc.gonosumdb, GOPRIVATE: tc.goprivate}
		c, err := Load(Sources{Getenv: mapEnv(nil), GoEnv: func() (GoEnv, error) { return g, nil }})
		if err != nil {
			t.Fatal(err)
		}
		if c.NoSum != tc.want {
			t.Errorf("GONOSUMDB=%q GOPRIVATE=%q: NoSum = %q, want %q", tc.gonosumdb, tc.goprivate, c.NoSum, tc.want)
		}
	}
}

func TestEmptyUpstreamAndSumDBMeanOff(t *testing.T) {
	c, err := Load(Sources{Getenv: mapEnv(nil), GoEnv: func() (GoEnv, error) { return GoEnv{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if c.Upstream != "off" || c.SumDB != "off" {
		t.Errorf("with empty GOPROXY and GOSUMDB: Upstream = %q, SumDB = %q; want off, off", c.Upstream, c.SumDB)
	}
	f := writeFile(t, "upstream = \"\"\nsumdb = \"\"\nnosum = \"\"\n")
	c, err = Load(Sources{Args: []string{"--config", f}, Getenv: mapEnv(nil), GoEnv: fixedGoEnv})
	if err != nil {
		t.Fatal(err)
	}
	if c.Upstream != "off" || c.SumDB != "off" {
		t.Errorf("with empty upstream and sumdb in the file: Upstream = %q, SumDB = %q; want off, off", c.Upstream, c.SumDB)
	}
}

func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--nope=1"}, "nope"},
		{"file key as flag", []string{"--data_dir=x"}, "data_dir"},
		{"extra argument", []string{"--listen=:1", "extra"}, "extra"},
		{"flag without value", []string{"--listen"}, "listen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Load(Sources{Args: tc.args, Getenv: mapEnv(nil), GoEnv: fixedGoEnv, Output: &out})
			if err == nil {
				t.Fatalf("Load(%q) succeeded", tc.args)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestHelpListsEverySettingWithItsVariable(t *testing.T) {
	var out bytes.Buffer
	_, err := Load(Sources{Args: []string{"-h"}, Getenv: mapEnv(nil), GoEnv: fixedGoEnv, Output: &out})
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("Load(-h): got %v, want ErrHelp", err)
	}
	help := out.String()
	for _, s := range settings {
		for _, want := range []string{"-" + flagName(s.name), envName(s.name)} {
			if !strings.Contains(help, want) {
				t.Errorf("help output does not mention %s", want)
			}
		}
	}
	if !strings.Contains(help, "-config") || !strings.Contains(help, "AGORA_CONFIG") {
		t.Error("help output does not mention -config and AGORA_CONFIG")
	}
}

func TestSummaryRoundTripsThroughTheFile(t *testing.T) {
	c := defaults()
	for _, tc := range settingCases {
		tc.want(&c)
	}
	sum := c.Summary()
	var names []string
	var file strings.Builder
	for _, kv := range sum {
		names = append(names, kv[0])
		fmt.Fprintf(&file, "%s = %q\n", kv[0], kv[1])
	}
	var want []string
	for _, s := range settings {
		want = append(want, s.name)
	}
	if !slices.Equal(names, want) {
		t.Errorf("Summary names = %q, want every setting once, in order: %q", names, want)
	}
	f := writeFile(t, file.String())
	got, err := Load(Sources{Args: []string{"--config", f}, Getenv: mapEnv(nil), GoEnv: fixedGoEnv})
	if err != nil {
		t.Fatalf("loading the summary as a file: %v", err)
	}
	c.ConfigFile = f
	if !reflect.DeepEqual(*got, c) {
		t.Errorf("loading the summary as a file =\n%+v\nwant\n%+v", *got, c)
	}
}

func TestParseTOMLValues(t *testing.T) {
	vals, _, err := parseTOML("t.toml", []byte(`
# comment
listen = "127.0.0.1:9"
memory_cache_mb = 7
log_client_addr = false
list_ttl = '2m'
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"listen": "127.0.0.1:9", "memory_cache_mb": "7", "log_client_addr": "false", "list_ttl": "2m"}
	if len(vals) != len(want) {
		t.Errorf("parseTOML = %q, want %q", vals, want)
	}
	for k, v := range want {
		if vals[k] != v {
			t.Errorf("parseTOML[%q] = %q, want %q", k, vals[k], v)
		}
	}
}

// FuzzParseTOML checks that the file parser never panics, only accepts
// known settings, and that every error names the file.
func FuzzParseTOML(f *testing.F) {
	f.Add([]byte("listen = \"127.0.0.1:3000\"\n"))
	f.Add([]byte("memory_cache_mb = 64\nlog_client_addr = true\n"))
	f.Add([]byte("[table]\nkey = 1\n"))
	f.Add([]byte("list_ttl = 1.5\n"))
	f.Add([]byte("upstream = [\"a\", {b = 1}]\n"))
	f.Add([]byte("a.b.c = 1979-05-27T07:32:00Z\n"))
	f.Add([]byte("listen = \"\\u0000\\uD800\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		vals, _, err := parseTOML("fuzz.toml", data)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.toml") {
				t.Fatalf("error %q does not name the file", err)
			}
			if vals != nil {
				t.Fatalf("parseTOML returned values %q along with an error", vals)
			}
			return
		}
		for k, v := range vals {
			var s *setting
			for i := range settings {
				if settings[i].name == k {
					s = &settings[i]
				}
			}
			if s == nil {
				t.Fatalf("parseTOML accepted unknown key %q", k)
			}
			c := Defaults()
			_ = s.set(&c, v) // may fail, must not panic
		}
	})
}

// TestBooleanFlags: a boolean setting's flag may be given alone, with
// "=", or with a separate value, and does not take the next flag or a
// positional argument as its value.
func TestBooleanFlags(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		offline     bool
		listen      string
		positionals []string
	}{
		{[]string{"--offline"}, true, "", nil},
		{[]string{"-offline", "--listen", "127.0.0.1:1"}, true, "127.0.0.1:1", nil},
		{[]string{"--offline", "true", "--listen", "127.0.0.1:1"}, true, "127.0.0.1:1", nil},
		{[]string{"--offline", "false"}, false, "", nil},
		{[]string{"--offline=false"}, false, "", nil},
		{[]string{"--listen", "--offline"}, false, "--offline", nil},
		{[]string{"--offline", "bundle.tar"}, true, "", []string{"bundle.tar"}},
		{[]string{"--offline", "T", "bundle.tar"}, true, "", []string{"T", "bundle.tar"}},
		{[]string{"--listen", "127.0.0.1:1", "--", "--offline"}, false, "127.0.0.1:1", []string{"--offline"}},
	} {
		c, err := Load(Sources{Args: tc.args, Getenv: mapEnv(nil), GoEnv: fixedGoEnv, Positional: true})
		if err != nil {
			t.Errorf("Load(%q): %v", tc.args, err)
			continue
		}
		listen := tc.listen
		if listen == "" {
			listen = Defaults().Listen
		}
		if c.Offline != tc.offline || c.Listen != listen || !slices.Equal(c.Args, tc.positionals) {
			t.Errorf("Load(%q): offline %v, listen %q, arguments %q; want %v, %q, %q", tc.args, c.Offline, c.Listen, c.Args, tc.offline, listen, tc.positionals)
		}
	}
	if _, err := Load(Sources{Args: []string{"--offline", "maybe"}, Getenv: mapEnv(nil), GoEnv: fixedGoEnv}); err == nil {
		t.Errorf("--offline maybe: no error (want \"maybe\" refused as an argument serve does not take)")
	}
}
