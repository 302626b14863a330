package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestBenchFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-mode", "bench"}, // no -url
		{"-mode", "bench", "-url", "http://127.0.0.1:1/s", "-publish", "http"},                                // no -publish-url
		{"-mode", "bench", "-url", "http://127.0.0.1:1/s", "-publish", "redis-set"},                           // no -redis
		{"-mode", "bench", "-url", "http://127.0.0.1:1/s", "-publish", "carrier-pigeon"},                      // unknown kind
		{"-mode", "bench", "-url", "http://192.0.2.1:1/s", "-publish", "http", "-publish-url", "x"},           // not loopback
		{"-mode=bench", "-url", "http://127.0.0.1:1/s", "-publish-url", "http://127.0.0.1:1/p", "-pids", "x"}, // bad pid
		{"-mode", "chart", "-in", "a.json"},                                                                   // no -out
		{"-mode", "floor-server", "-batch", "0"},
		{"-mode", "floor-server", "-batch", "65"},
		{"-mode", "floor-server", "-batch-idle", "0s"},
	} {
		var out, log bytes.Buffer
		if code := run(args, &out, &log); code != exitUsage {
			t.Errorf("sseload %q: exit %d, want %d\n%s", args, code, exitUsage, log.String())
		}
	}
	if m, ok := benchMode([]string{"-clients", "3", "--mode=floor-server"}); !ok || m != modeFloorServer {
		t.Errorf("benchMode = %q, %v", m, ok)
	}
	if _, ok := benchMode([]string{"-mode", "fanout"}); ok {
		t.Error("fanout taken for a bench mode")
	}
}

func TestLeadingIntAndSeqSet(t *testing.T) {
	for in, want := range map[string]int{"12\"}": 12, "0": 0, "7x": 7} {
		if got, ok := leadingInt([]byte(in)); !ok || got != want {
			t.Errorf("leadingInt(%q) = %d, %v", in, got, ok)
		}
	}
	if _, ok := leadingInt([]byte("*\"")); ok {
		t.Error("leadingInt accepted a non-digit")
	}
	s := newSeqSet(130)
	if !s.add(129) || s.add(129) || !s.add(0) {
		t.Error("seqSet does not tell a repeat from a first")
	}
}

// TestChart renders a fixture, an array and a lone object, and checks the
// SVG is well-formed XML with one bar per run that has a CPU figure.
func TestChart(t *testing.T) {
	dir := t.TempDir()
	fixture := `[
 {"server": "keyflux", "run": "5000x20", "server_cpu_us_per_delivery": 8.6},
 {"server": "nchan", "run": "5000x20", "server_cpu_us_per_delivery": 7.7},
 {"server": "floor", "run": "5000x20", "server_cpu_us_per_delivery": 5.4},
 {"server": "keyflux", "run": "19000 idle", "server_cpu_us_per_delivery": null},
 {"server": "keyflux", "run": "100x2000 <&>", "server_cpu_us_per_delivery": 4.7}
]
{"server": "floor", "run": "100x2000 <&>", "server_cpu_us_per_delivery": 4.6}
`
	in := filepath.Join(dir, "runs.json")
	if err := os.WriteFile(in, []byte(fixture), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "chart.svg")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-mode", "chart", "-in", in, "-out", out}, &stdout, &stderr); code != exitOK {
		t.Fatalf("chart: exit %d: %s", code, stderr.String())
	}
	svg, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	bars, root := 0, ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not valid XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "title" {
				bars++
			}
		}
	}
	if root != "svg" || bars != 5 {
		t.Errorf("root %q with %d bars, want svg with 5\n%s", root, bars, svg)
	}
	if !strings.Contains(string(svg), "100x2000 &lt;&amp;&gt;") {
		t.Errorf("run names not escaped:\n%s", svg)
	}
	if _, err := chartSVG(nil, "t"); err == nil {
		t.Error("an empty chart was drawn")
	}

	// A run repeated is drawn at its median.
	three := []chartRun{}
	for _, v := range []float64{9, 1, 2} {
		three = append(three, chartRun{Server: "keyflux", Run: "5000x20", CPUPerDeli: &v})
	}
	if svg, err := chartSVG(three, "t"); err != nil || !strings.Contains(string(svg), "keyflux 5000x20: 2.00 µs") {
		t.Errorf("three repeats of 9, 1 and 2 µs not drawn at 2 µs (%v):\n%s", err, svg)
	}

	// Seven servers, as bench:compare draws them: each its own colour, and
	// the legend inside the picture.
	var many []chartRun
	for i, name := range []string{"keyflux", "keyflux keyspace", "keyflux --coalesce 2ms", "keyflux --coalesce 25ms", "nchan", "floor", "floor, 2 a write"} {
		v := float64(i + 1)
		many = append(many, chartRun{Server: name, Run: "100x2000", CPUPerDeli: &v})
	}
	svg, err = chartSVG(many, "t")
	if err != nil {
		t.Fatal(err)
	}
	fills := map[string]bool{}
	for _, m := range regexp.MustCompile(`<rect x="[^"]*" y="[^"]*" width="20" height="[^"]*" fill="([^"]*)"`).FindAllStringSubmatch(string(svg), -1) {
		fills[m[1]] = true
	}
	if len(fills) != 7 {
		t.Errorf("7 servers drawn in %d colours\n%s", len(fills), svg)
	}
	var width float64
	fmt.Sscanf(string(svg), `<svg xmlns="http://www.w3.org/2000/svg" width="%g"`, &width)
	for _, m := range regexp.MustCompile(`<text x="([0-9.]+)" y="[^"]*">([^<]*)</text>`).FindAllStringSubmatch(string(svg), -1) {
		x, _ := strconv.ParseFloat(m[1], 64)
		if end := x + 7*float64(len([]rune(m[2]))); end > width {
			t.Errorf("legend entry %q ends at %.0f, past the chart's width %.0f", m[2], end, width)
		}
	}
}
