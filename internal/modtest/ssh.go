package modtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SSHServer is OpenSSH's sshd on 127.0.0.1, letting in one client key as
// the user the tests run as, for git over ssh: a client runs
// git-upload-pack on the server's file system, so a bare repository is
// reached at [SSHServer.URL] of its absolute directory.
//
// sshd reads only the configuration NewSSHServer writes (its own host
// key, the one authorized key, public keys only, no PAM); git on the
// server side runs with that user's login environment.
type SSHServer struct {
	// Addr is "127.0.0.1:<port>".
	Addr string
	// User is the user clients log in as: the current user.
	User string
	// ClientKey is the private key file sshd lets in (no passphrase).
	ClientKey string
	// KnownHosts is a known_hosts file naming the server's host key for
	// Addr, as ssh looks it up.
	KnownHosts string

	log    string // sshd's log file: written by sshd itself, so a line is there once sshd has logged it
	logins int    // logins before the server was handed out (its own check)
}

// NewSSHServer starts sshd, stopped by t.Cleanup, and logs in once with
// ClientKey to check that it lets clients in. It skips the test when sshd
// (Debian package openssh-server) or ssh-keygen is not installed, and
// fails it, with sshd's log, when sshd does not start or let that login
// in.
func NewSSHServer(t testing.TB) *SSHServer {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if sshd, err = exec.LookPath("/usr/sbin/sshd"); err != nil {
			t.Skip("no sshd on this machine (Debian package openssh-server)")
		}
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("no ssh-keygen on this machine (Debian package openssh-client)")
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("modtest.NewSSHServer: %v", err)
	}
	if os.Geteuid() == 0 {
		// sshd started by root checks its privilege separation directory
		// (Debian's is made by the service, which does not run here).
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("modtest.NewSSHServer: %v", err)
		}
	}
	dir := t.TempDir()
	s := &SSHServer{
		User:       u.Username,
		ClientKey:  filepath.Join(dir, "client_key"),
		KnownHosts: filepath.Join(dir, "known_hosts"),
		log:        filepath.Join(dir, "sshd.log"),
	}
	hostKey := filepath.Join(dir, "host_key")
	for _, k := range []string{hostKey, s.ClientKey} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "agora-test", "-f", k).CombinedOutput(); err != nil {
			t.Fatalf("modtest.NewSSHServer: ssh-keygen: %v\n%s", err, out)
		}
	}
	clientPub, err := os.ReadFile(s.ClientKey + ".pub")
	if err != nil {
		t.Fatalf("modtest.NewSSHServer: %v", err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, clientPub, 0o600); err != nil {
		t.Fatalf("modtest.NewSSHServer: %v", err)
	}
	hostPub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatalf("modtest.NewSSHServer: %v", err)
	}
	keyType, keyData, _ := strings.Cut(strings.TrimSpace(string(hostPub)), " ")
	keyData, _, _ = strings.Cut(keyData, " ") // drop the comment

	// sshd takes a port number; one just freed on loopback may be taken
	// again before sshd binds it, so a start that fails is tried again.
	var lastErr error
	for range 5 {
		port, err := freeLoopbackPort()
		if err != nil {
			t.Fatalf("modtest.NewSSHServer: %v", err)
		}
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		config := filepath.Join(dir, "sshd_config")
		conf := strings.Join([]string{
			"ListenAddress " + s.Addr,
			"HostKey " + hostKey,
			"AuthorizedKeysFile " + authorized,
			"PidFile " + filepath.Join(dir, "sshd.pid"),
			"AllowUsers " + s.User,
			"AuthenticationMethods publickey",
			"PubkeyAuthentication yes",
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"PermitRootLogin prohibit-password",
			"UsePAM no",
			"StrictModes no", // t.TempDir's modes are not sshd's business
			"PrintMotd no",
			"X11Forwarding no",
			"AllowTcpForwarding no",
			"MaxStartups 100",
			"LogLevel VERBOSE",
			"",
		}, "\n")
		if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
			t.Fatalf("modtest.NewSSHServer: %v", err)
		}
		logFile, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatalf("modtest.NewSSHServer: %v", err)
		}
		cmd := exec.Command(sshd, "-D", "-e", "-f", config)
		cmd.Stdout = logFile
		cmd.Stderr = logFile
		err = cmd.Start()
		logFile.Close() // sshd has its own descriptor
		if err != nil {
			t.Fatalf("modtest.NewSSHServer: %v", err)
		}
		done := make(chan struct{}) // closed when sshd has exited
		go func() { cmd.Wait(); close(done) }()
		stop := func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
		// Its own line, not just any SSH greeting on the port: another
		// sshd may hold a port this one failed to bind.
		listening := fmt.Sprintf("Server listening on 127.0.0.1 port %d.", port)
		if lastErr = s.waitForLog(listening, done); lastErr != nil {
			stop()
			continue
		}
		t.Cleanup(stop)
		line := fmt.Sprintf("[127.0.0.1]:%d %s %s\n", port, keyType, keyData)
		if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
			t.Fatalf("modtest.NewSSHServer: %v", err)
		}
		// One login, so that a server that lets nobody in (sshd without
		// PAM refuses a locked account, such as root on some systems)
		// fails here, saying why, rather than in the test.
		check := exec.Command("ssh", "-F", "/dev/null", "-p", strconv.Itoa(port), "-i", s.ClientKey,
			"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile="+s.KnownHosts,
			"-o", "StrictHostKeyChecking=yes", s.User+"@127.0.0.1", "true")
		if out, err := check.CombinedOutput(); err != nil {
			t.Fatalf("modtest.NewSSHServer: logging in as %s: %v\n%s\nsshd:\n%s", s.User, err, out, s.Log())
		}
		s.logins = s.countLogins()
		return s
	}
	t.Fatalf("modtest.NewSSHServer: sshd did not start: %v\n%s", lastErr, s.Log())
	return nil
}

// waitForLog waits until sshd's log holds line, or done is closed, or
// 10 s pass.
func (s *SSHServer) waitForLog(line string, done <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.Log(), line) {
		select {
		case <-done:
			return errors.New("sshd exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd did not log %q", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment
// ago.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URL returns the ssh URL of the absolute directory dir on the server:
// ssh://<User>@<Addr><dir>.
func (s *SSHServer) URL(dir string) string {
	return "ssh://" + s.User + "@" + s.Addr + dir
}

// Logins returns how many times a client was let in (not counting
// NewSSHServer's own check).
func (s *SSHServer) Logins() int { return s.countLogins() - s.logins }

func (s *SSHServer) countLogins() int {
	return strings.Count(s.Log(), "Accepted publickey for ")
}

// Log returns what sshd has logged.
func (s *SSHServer) Log() string {
	data, _ := os.ReadFile(s.log)
	return string(data)
}
