package main

import (
	"bufio"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests run the real keyflux binary, built from ./app, with
// the private redis-server it launches itself: sseload's verdicts are only
// worth something against the real server. Linux only, for Pdeathsig,
// which ends the server (and so its redis-server) if the test binary dies.

// keyfluxProc is a running keyflux.
type keyfluxProc struct {
	base  string // http://127.0.0.1:port
	redis string // host:port of its redis-server
	pid   int
}

// logURL finds the url attribute of keyflux's text log lines.
var logURL = regexp.MustCompile(`url=(\S+)`)

// startKeyflux builds keyflux, runs it on a free loopback port with extra
// flags, and stops it when the test ends.
func startKeyflux(t *testing.T, flags ...string) keyfluxProc {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "keyflux")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/keyflux/keyflux/app").CombinedOutput(); err != nil {
		t.Fatalf("building keyflux: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0"}, flags...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The log is read to its end, so keyflux never blocks on a full pipe.
	lines, logDone := make(chan string, 64), make(chan struct{})
	go func() {
		defer close(logDone)
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-logDone
		_ = cmd.Wait()
		http.DefaultClient.CloseIdleConnections() // the /metrics scrapes' keep-alives
	})

	k := keyfluxProc{pid: cmd.Process.Pid}
	timeout := time.After(30 * time.Second)
	for k.base == "" || k.redis == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("keyflux exited before it listened")
			}
			m := logURL.FindStringSubmatch(line)
			switch {
			case m == nil:
			case strings.Contains(line, "launched a private redis-server"):
				u, err := url.Parse(m[1])
				if err != nil {
					t.Fatalf("redis url in %q: %v", line, err)
				}
				k.redis = u.Host
			case strings.Contains(line, "keyflux listening"):
				k.base = m[1]
			}
		case <-timeout:
			t.Fatal("keyflux did not say where it listens within 30s")
		}
	}
	return k
}
