package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The journal deployment tests run each Keyflux instance as a process of
// its own (this test binary again, running TestKeyfluxJournalChild), so
// that it can be stopped with a real SIGTERM, killed with SIGKILL and
// started again on the same port, as systemd does. Like the unit of
// docs/deploy.md, an instance is configured by KEYFLUX_* variables only.
const journalChildEnv = "KEYFLUX_TEST_JOURNAL_CHILD"

// TestKeyfluxJournalChild is the child: Keyflux configured by its
// environment, until SIGTERM. It exits at once when Keyflux has stopped,
// without the test binary's leak check (a killed sibling's connections are
// not this process's concern).
func TestKeyfluxJournalChild(t *testing.T) {
	if os.Getenv(journalChildEnv) == "" {
		t.Skip("the child process of the journal deployment tests")
	}
	err := run(context.Background(), nil, os.Stderr, func(s *server) {
		fmt.Printf("LISTENING %s\n", s.addr())
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyflux:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// instance is one Keyflux process of a deployment.
type instance struct {
	t    *testing.T
	name string
	env  []string // KEYFLUX_* settings, KEYFLUX_LISTEN aside
	addr string   // host:port; "127.0.0.1:0" until the first start
	logs *syncBuffer
	// mu guards cmd and exited, which each start replaces while clients'
	// goroutines ask whether the instance is alive.
	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the current process has exited.
	exited chan struct{}
	starts int
}

func (in *instance) current() (*exec.Cmd, chan struct{}) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cmd, in.exited
}

// startInstance runs Keyflux with env (KEYFLUX_NAME=value settings) on a
// free loopback port, which it keeps across restarts, and stops it with
// SIGTERM when the test ends.
func startInstance(t *testing.T, name string, env ...string) *instance {
	t.Helper()
	in := &instance{t: t, name: name, env: env, addr: "127.0.0.1:0", logs: &syncBuffer{}}
	t.Cleanup(func() {
		start := time.Now()
		in.stop()
		if took := time.Since(start); took > 2*time.Second {
			t.Logf("%s took %v to stop on SIGTERM", in.name, took)
		}
		logs := in.logs.String()
		if strings.Contains(logs, "WARNING: DATA RACE") {
			t.Errorf("%s had a data race:\n%s", in.name, logs)
		} else if t.Failed() {
			in.dumpLogs()
		}
	})
	in.start()
	return in
}

// start launches the process on in.addr and waits until it listens.
func (in *instance) start() {
	in.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKeyfluxJournalChild$", "-test.count=1")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYFLUX_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, journalChildEnv+"=1", "KEYFLUX_LISTEN="+in.addr)
	cmd.Env = append(cmd.Env, in.env...)
	in.starts++
	fmt.Fprintf(in.logs, "--- %s: start %d on %s ---\n", in.name, in.starts, in.addr)
	cmd.Stderr = in.logs
	// An instance must not outlive the test binary, even a killed one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		in.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	exited := make(chan struct{})
	in.mu.Lock()
	in.cmd, in.exited = cmd, exited
	in.mu.Unlock()
	listening := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "LISTENING "); ok {
				listening <- a
			}
		}
		_, _ = io.Copy(io.Discard, out)
		err := cmd.Wait()
		fmt.Fprintf(in.logs, "--- %s: exited: %v ---\n", in.name, err)
	}()
	select {
	case addr := <-listening:
		if in.starts == 1 {
			in.addr = addr // set once, before any client reads it
		} else if addr != in.addr {
			in.t.Fatalf("%s restarted on %s, not %s", in.name, addr, in.addr)
		}
	case <-exited:
		in.t.Fatalf("%s did not start:\n%s", in.name, in.logs)
	case <-time.After(30 * time.Second):
		in.t.Fatalf("%s did not listen within 30 s:\n%s", in.name, in.logs)
	}
}

// base is the instance's own URL.
func (in *instance) base() string { return "http://" + in.addr }

// alive reports whether the process is running.
func (in *instance) alive() bool {
	_, exited := in.current()
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL and waits until it is gone.
func (in *instance) kill() {
	in.t.Helper()
	cmd, exited := in.current()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// stop ends the process with SIGTERM, as systemd does, and waits until it
// has exited: Keyflux closes its streams and stops within its 5 s drain.
func (in *instance) stop() {
	in.t.Helper()
	cmd, exited := in.current()
	if cmd == nil || !in.alive() {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		in.t.Errorf("%s did not stop within 15 s of SIGTERM", in.name)
	}
}

// restart starts the stopped process again on the same port and waits
// until it is ready.
func (in *instance) restart() {
	in.t.Helper()
	if in.alive() {
		in.t.Fatalf("%s restarted while running", in.name)
	}
	in.start()
	in.waitReady()
}

// waitReady polls /readyz until it answers 200: readiness is a state with
// no event to await, as for a load balancer or the loop in docs/deploy.md.
func (in *instance) waitReady() {
	in.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if !in.alive() {
			in.t.Fatalf("%s exited before it was ready:\n%s", in.name, in.logs)
		}
		resp, err := plainClient.Get(in.base() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("%s not ready within 20 s (last: %v):\n%s", in.name, err, in.logs)
		}
		time.Sleep(20 * time.Millisecond) // polling a state
	}
}

// metrics is the instance's /metrics, "" when it does not answer.
func (in *instance) metrics() string {
	resp, err := plainClient.Get(in.base() + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// journalWriter reports whether the instance says it writes the journal
// whose key starts with prefix (gauge keyflux_journal_writer is 1), and
// whether it reports that journal at all.
func (in *instance) journalWriter(prefix string) (writer, known bool) {
	for line := range strings.SplitSeq(in.metrics(), "\n") {
		rest, ok := strings.CutPrefix(line, `keyflux_journal_writer{journal="`+prefix)
		if !ok {
			continue
		}
		known = true
		if strings.HasSuffix(rest, "} 1") {
			writer = true
		}
	}
	return writer, known
}

// dumpLogs writes the instance's whole log to a file kept after the test,
// and its end to the test's output.
func (in *instance) dumpLogs() {
	logs := in.logs.String()
	f, err := os.CreateTemp("", "keyflux-"+in.name+"-*.log")
	if err == nil {
		_, _ = f.WriteString(logs)
		f.Close()
		in.t.Logf("%s: full log in %s", in.name, f.Name())
	}
	var keep []string
	for line := range strings.SplitSeq(logs, "\n") {
		if !strings.Contains(line, `msg="stream closed"`) {
			keep = append(keep, line)
		}
	}
	logs = strings.Join(keep, "\n")
	if len(logs) > 6000 {
		logs = "..." + logs[len(logs)-6000:]
	}
	in.t.Logf("%s log (end, without \"stream closed\" lines):\n%s", in.name, logs)
}
