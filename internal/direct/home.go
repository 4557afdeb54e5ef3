package direct

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// tokenLogin is the netrc login under which Options.Tokens are sent.
const tokenLogin = "x-access-token"

// gitconfig is the global git configuration of every go process. Auto
// gc and maintenance run in the foreground, so they belong to the go
// process's group and end with it instead of outliving it detached.
const gitconfig = `# Written by Agora's direct fetcher; rewritten at every start.
[gc]
	autoDetach = false
[maintenance]
	autoDetach = false
`

// home is what writeHome made.
type home struct {
	netrc, gitconfig string
	secrets          *redactor
	creds            *netrc
}

// writeHome fills the private HOME: the telemetry mode "off" (otherwise
// the go command starts a child that outlives it), .gitconfig (including
// o.GitConfig, an absolute name, if set), and .netrc (mode 0600) with the
// Tokens' entries followed by the Netrc file's.
func writeHome(dir string, o Options) (*home, error) {
	modeDir := filepath.Join(dir, ".config", "go", "telemetry")
	if err := os.MkdirAll(modeDir, 0o700); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(modeDir, "mode"), []byte("off\n"), 0o600); err != nil {
		return nil, err
	}
	h := &home{netrc: filepath.Join(dir, ".netrc"), gitconfig: filepath.Join(dir, ".gitconfig")}
	config := gitconfig
	if o.GitConfig != "" {
		if strings.ContainsAny(o.GitConfig, "\n\x00") {
			return nil, fmt.Errorf("Options.GitConfig %q: a git configuration cannot name it", o.GitConfig)
		}
		// Included first: for a setting made twice the last one wins, and
		// ours keep git's children in the go process's group.
		config = "[include]\n\tpath = " + gitQuote(o.GitConfig) + "\n" + config
	}
	if err := writeFileAtomic(h.gitconfig, []byte(config), 0o600); err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	var secrets []string
	hosts := make([]string, 0, len(o.Tokens))
	for host := range o.Tokens {
		hosts = append(hosts, host)
	}
	sort.Strings(hosts)
	for _, host := range hosts {
		token := o.Tokens[host]
		if !netrcWord(host) || !netrcWord(token) {
			// Name the host only: the token is a secret.
			return nil, fmt.Errorf("Options.Tokens: host %q or its token is empty or contains white space", host)
		}
		fmt.Fprintf(&buf, "machine %s login %s password %s\n", host, tokenLogin, token)
		secrets = append(secrets, token)
	}
	if o.Netrc != "" {
		data, err := os.ReadFile(o.Netrc)
		if err != nil {
			return nil, fmt.Errorf("reading Options.Netrc: %w", err)
		}
		buf.Write(data)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			buf.WriteByte('\n')
		}
	}
	h.creds = parseNetrc(buf.String())
	secrets = append(secrets, h.creds.passwords()...)
	h.secrets = newRedactor(secrets)
	if err := writeFileAtomic(h.netrc, buf.Bytes(), 0o600); err != nil {
		return nil, err
	}
	return h, nil
}

// gitQuote quotes s as a git configuration value.
func gitQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// readable reports why the regular file name cannot be read, or nil.
func readable(name string) error {
	fi, err := os.Stat(name)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		// Not opened: a named pipe would block.
		return fmt.Errorf("%s is not a regular file", name)
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	return f.Close()
}

// netrcWord reports whether s can be one word of a netrc file.
func netrcWord(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\r\n\"'")
}

// writeFileAtomic writes data to name through a temporary file renamed
// into place, so no process ever reads half a file.
func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if err := f.Chmod(perm); werr == nil {
		werr = err
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Rename(tmp, name)
	}
	if werr != nil {
		os.Remove(tmp)
	}
	return werr
}

// sshCommand returns GIT_SSH_COMMAND: Options.GitSSHCommand if set, else
// ssh that never prompts (BatchMode), does not share connections, and
// uses SSHKey and SSHKnownHosts when given.
func sshCommand(o Options) string {
	if o.GitSSHCommand != "" {
		return o.GitSSHCommand
	}
	args := []string{"ssh", "-o", "BatchMode=yes", "-o", "ControlMaster=no"}
	if o.SSHKey != "" {
		args = append(args, "-i", shellQuote(o.SSHKey), "-o", "IdentitiesOnly=yes")
	}
	if o.SSHKnownHosts != "" {
		args = append(args, "-o", shellQuote("UserKnownHostsFile="+o.SSHKnownHosts), "-o", "StrictHostKeyChecking=yes")
	}
	return strings.Join(args, " ")
}

// shellQuote quotes s for sh, which git uses to run GIT_SSH_COMMAND.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=+,:@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// netrc is a parsed netrc file: machine entries in order, then the
// default entry.
type netrc struct {
	entries []netrcEntry
}

type netrcEntry struct {
	machine  string // "" for default
	login    string
	password string
}

// parseNetrc reads the machine, default, login and password tokens of a
// netrc file, the way the go command does (whitespace-separated words;
// macdef bodies skipped up to the next empty line).
func parseNetrc(data string) *netrc {
	n := &netrc{}
	var cur *netrcEntry
	var def *netrcEntry
	inMacro := false
	for _, line := range strings.Split(data, "\n") {
		if inMacro {
			if strings.TrimSpace(line) == "" {
				inMacro = false
			}
			continue
		}
		f := strings.Fields(line)
		for i := 0; i < len(f); i++ {
			switch f[i] {
			case "machine":
				if i+1 < len(f) {
					n.entries = append(n.entries, netrcEntry{machine: f[i+1]})
					cur = &n.entries[len(n.entries)-1]
					i++
				}
			case "default":
				def = &netrcEntry{}
				cur = def
			case "login", "password", "account":
				if i+1 < len(f) && cur != nil {
					switch f[i] {
					case "login":
						cur.login = f[i+1]
					case "password":
						cur.password = f[i+1]
					}
				}
				i++
			case "macdef":
				inMacro = true
				i = len(f)
			}
		}
	}
	if def != nil {
		n.entries = append(n.entries, *def)
	}
	return n
}

// lookup returns the credentials for host: its first machine entry, else
// the default entry.
func (n *netrc) lookup(host string) (login, password string, ok bool) {
	for _, e := range n.entries {
		if e.machine == "" || strings.EqualFold(e.machine, host) {
			return e.login, e.password, true
		}
	}
	return "", "", false
}

// passwords returns every password in the file, and the login of every
// entry without one (a token given as the user name).
func (n *netrc) passwords() []string {
	var p []string
	for _, e := range n.entries {
		switch {
		case e.password != "":
			p = append(p, e.password)
		case e.login != "":
			p = append(p, e.login)
		}
	}
	return p
}
