package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NginxPath is Debian's nginx; `go tool task nginx` installs it.
const NginxPath = "/usr/sbin/nginx"

// NginxConf is the deployment's nginx configuration (docs/deploy.md), from
// the module's root; StartNginx runs exactly it, placeholders filled in.
const NginxConf = "docs/deploy/nginx.conf"

// NginxOptions say what StartNginx puts nginx in front of.
type NginxOptions struct {
	// Upstreams are the host:port addresses of the Keyflux instances.
	Upstreams []string
	// TLS serves HTTPS with HTTP/2 (a certificate for 127.0.0.1 and
	// localhost made for the test); otherwise plain HTTP/1.1.
	TLS bool
}

// Nginx is a running nginx in front of test servers.
type Nginx struct {
	// URL is the base URL, https://127.0.0.1:port or http://...
	URL string
	// Pool trusts the certificate nginx serves (nil without TLS).
	Pool *x509.CertPool

	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartNginx runs nginx in the foreground on a free loopback port with the
// deployment's configuration, and stops it when the test ends.
func StartNginx(t testing.TB, opts NginxOptions) *Nginx {
	t.Helper()
	n, err := startNginx(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n
}

func startNginx(opts NginxOptions) (*Nginx, error) {
	if _, err := os.Stat(NginxPath); err != nil {
		return nil, fmt.Errorf("nginx tests need Debian's nginx (go tool task nginx installs it): %w", err)
	}
	if len(opts.Upstreams) == 0 {
		return nil, errors.New("StartNginx: no upstreams")
	}
	template, err := readNginxConf()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keyflux-nginx-")
	if err != nil {
		return nil, err
	}
	// nginx's workers run as nobody when started by root: they must reach
	// the folder's temp paths.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	n := &Nginx{dir: dir, done: make(chan struct{})}
	if err := n.start(opts, template); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return n, nil
}

func (n *Nginx) start(opts NginxOptions, template string) error {
	port, err := freeNginxPort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	site := fill(template, opts, addr, n.dir)
	if opts.TLS {
		if n.Pool, err = writeCert(n.dir); err != nil {
			return err
		}
		n.URL = "https://" + addr
	} else {
		n.URL = "http://" + addr
	}
	if err := os.WriteFile(filepath.Join(n.dir, "keyflux.conf"), []byte(site), 0o644); err != nil {
		return err
	}
	conf := filepath.Join(n.dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(mainConf(n.dir)), 0o644); err != nil {
		return err
	}
	errLog := filepath.Join(n.dir, "error.log")
	out, err := os.Create(filepath.Join(n.dir, "stderr.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(NginxPath, "-p", n.dir, "-c", conf, "-e", errLog, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = out, out
	// nginx must not outlive the test binary, even if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("starting nginx: %w", err)
	}
	n.cmd = cmd
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(n.done)
	}()
	return n.waitListening(addr)
}

// waitListening polls the port until nginx accepts, or fails with its logs.
func (n *Nginx) waitListening(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-n.done:
			return fmt.Errorf("nginx exited at start: %s", n.logs())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(10 * time.Millisecond) // polling a port that is not yet open
	}
	logs := n.logs()
	n.Stop()
	return fmt.Errorf("nginx did not listen on %s: %s", addr, logs)
}

// Stop ends nginx at once (SIGTERM: streams do not hold it up, as they
// would a graceful SIGQUIT) and removes its folder.
func (n *Nginx) Stop() {
	if n.cmd != nil {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(5 * time.Second):
			_ = n.cmd.Process.Kill()
			<-n.done
		}
	}
	os.RemoveAll(n.dir)
}

// ErrorLog is what nginx has logged so far.
func (n *Nginx) ErrorLog() string { return n.logs() }

func (n *Nginx) logs() string {
	errLog, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
	stderr, _ := os.ReadFile(filepath.Join(n.dir, "stderr.log"))
	return strings.TrimSpace(string(errLog) + "\n" + string(stderr))
}

// mainConf is what Debian's /etc/nginx/nginx.conf would be, with every path
// in dir: Debian's build puts its pid file and temp paths under /run and
// /var/lib, which a test must not touch.
func mainConf(dir string) string {
	return fmt.Sprintf(`worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/keyflux.conf;
}
`, dir)
}

// NginxServerParams are the parameters of each upstream's server line, as
// docs/deploy.md gives them: an instance is never marked unavailable.
// nginx counts a stream as a success only when it ends, so an instance
// marked failed (max_fails) would take back one new stream per
// fail_timeout; after a rolling restart that is "no live upstreams" (502)
// for every reconnecting client. A stopped instance refuses at once and
// nginx passes the request to the next one.
const NginxServerParams = "max_fails=0"

// fill puts the test's values in the deployment's configuration. Without
// TLS the listen line loses "ssl http2" and the ssl_ lines go.
func fill(template string, opts NginxOptions, addr, dir string) string {
	var servers []string
	for _, u := range opts.Upstreams {
		servers = append(servers, "server "+u+" "+NginxServerParams+";")
	}
	site := strings.NewReplacer(
		"{{upstreams}}", strings.Join(servers, "\n    "),
		"{{listen}}", addr,
		"{{server_name}}", "localhost",
		"{{cert}}", filepath.Join(dir, "cert.pem"),
		"{{key}}", filepath.Join(dir, "key.pem"),
	).Replace(template)
	if opts.TLS {
		return site
	}
	var b strings.Builder
	for line := range strings.SplitAfterSeq(site, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "ssl_"):
			continue
		case strings.HasPrefix(trimmed, "listen "):
			line = strings.Replace(line, " ssl http2;", ";", 1)
		}
		b.WriteString(line)
	}
	return b.String()
}

// readNginxConf reads NginxConf from the module's root.
func readNginxConf() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(root, NginxConf))
	return string(b), err
}

// moduleRoot is the nearest folder up from the test's with a go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// writeCert makes a self-signed ECDSA P-256 certificate for 127.0.0.1 and
// localhost, writes it and its key into dir, and returns a pool trusting it.
func writeCert(dir string) (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "keyflux test nginx"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := writePEM(filepath.Join(dir, "cert.pem"), "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	// Read by nginx's master (root or the test's user) before it drops
	// privileges: the key stays private to that user.
	if err := writePEM(filepath.Join(dir, "key.pem"), "PRIVATE KEY", keyDER, 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}

func writePEM(path, kind string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), mode)
}

func freeNginxPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
