package testkit

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// echoHeaders answers with what reached the upstream: its protocol and the
// headers nginx sets.
func echoHeaders(w http.ResponseWriter, r *http.Request) {
	_ = json.NewEncoder(w).Encode(map[string]string{
		"proto":      r.Proto,
		"connection": r.Header.Get("Connection"),
		"for":        r.Header.Get("X-Forwarded-For"),
		"scheme":     r.Header.Get("X-Forwarded-Proto"),
		"host":       r.Header.Get("X-Forwarded-Host"),
	})
}

func getJSON(t *testing.T, c *http.Client, url string) (*http.Response, map[string]string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]string
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("GET %s: %d %q", url, resp.StatusCode, b)
	}
	return resp, m
}

func TestNginxTLSSpeaksHTTP2AndForwards(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(echoHeaders))
	t.Cleanup(up.Close)
	n := StartNginx(t, NginxOptions{Upstreams: []string{up.Listener.Addr().String()}, TLS: true})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.Pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, host := range []string{"127.0.0.1", "localhost"} { // both names are in the certificate
		url := strings.Replace(n.URL, "127.0.0.1", host, 1)
		resp, got := getJSON(t, c, url+"/x")
		if resp.ProtoMajor != 2 {
			t.Fatalf("%s: client got %s, want HTTP/2", url, resp.Proto)
		}
		want := map[string]string{"proto": "HTTP/1.1", "connection": "", "for": "127.0.0.1",
			"scheme": "https", "host": host}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: upstream saw %s %q, want %q (all: %v)", url, k, got[k], v, got)
			}
		}
	}
}

// A response still open has its first bytes at the client already, even
// one that does not say X-Accel-Buffering: no (Keyflux's streams do).
func TestNginxDoesNotBuffer(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select { // the response stays open, as a stream's does
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(release) })
	n := StartNginx(t, NginxOptions{Upstreams: []string{up.Listener.Addr().String()}, TLS: true})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: n.Pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Get(n.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		k, _ := io.ReadAtLeast(resp.Body, b, len("data: first\n\n"))
		got <- string(b[:k])
	}()
	select {
	case s := <-got:
		if s != "data: first\n\n" {
			t.Fatalf("read %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event is still held by nginx after 5s")
	}
}

func TestNginxPlainSpeaksHTTP1(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(echoHeaders))
	t.Cleanup(up.Close)
	n := StartNginx(t, NginxOptions{Upstreams: []string{up.Listener.Addr().String()}})
	if !strings.HasPrefix(n.URL, "http://") || n.Pool != nil {
		t.Fatalf("plain nginx: URL %s, pool %v", n.URL, n.Pool)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	resp, got := getJSON(t, &http.Client{Transport: tr, Timeout: 10 * time.Second}, n.URL+"/x")
	if resp.ProtoMajor != 1 || got["scheme"] != "http" {
		t.Fatalf("plain nginx: client %s, upstream saw %v", resp.Proto, got)
	}
}

func TestNginxFailsWithItsErrorLog(t *testing.T) {
	_, err := startNginx(NginxOptions{Upstreams: []string{"127.0.0.1:notaport"}})
	if err == nil || !strings.Contains(err.Error(), "invalid port") {
		t.Fatalf("nginx with a bad upstream: %v, want its error log naming the invalid port", err)
	}
}

// docs/deploy.md shows the configuration the tests run, not a copy that
// drifted.
func TestNginxConfIsInTheDocs(t *testing.T) {
	conf, err := readNginxConf()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := moduleRoot()
	doc, err := os.ReadFile(filepath.Join(root, "docs/deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```nginx\n"+conf+"```\n") {
		t.Fatalf("docs/deploy.md does not show %s as it is: copy it in again", NginxConf)
	}
}
