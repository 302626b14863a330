package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// chartRun is what the chart needs of one bench result.
type chartRun struct {
	Server     string   `json:"server"`
	Run        string   `json:"run"`
	CPUPerDeli *float64 `json:"server_cpu_us_per_delivery"`
}

// readRuns reads every JSON value of the files: bench result objects, or
// arrays of them, one after another.
func readRuns(paths []string) ([]chartRun, error) {
	var runs []chartRun
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		for {
			var v json.RawMessage
			if err := dec.Decode(&v); err == io.EOF {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '[' {
				var many []chartRun
				if err := json.Unmarshal(v, &many); err != nil {
					return nil, fmt.Errorf("%s: %w", p, err)
				}
				runs = append(runs, many...)
				continue
			}
			var one chartRun
			if err := json.Unmarshal(v, &one); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			runs = append(runs, one)
		}
	}
	return runs, nil
}

// chartSVG draws grouped bars: one group per run (in the order first
// seen), one bar per server (keyflux, nchan, floor first, then others),
// height the CPU per delivery, the median where a run was repeated. Runs
// without the figure (idle) are left out.
func chartSVG(runs []chartRun, title string) ([]byte, error) {
	var groups, servers []string
	values := map[[2]string][]float64{}
	for _, r := range runs {
		if r.CPUPerDeli == nil || math.IsNaN(*r.CPUPerDeli) {
			continue
		}
		if !slices.Contains(groups, r.Run) {
			groups = append(groups, r.Run)
		}
		if !slices.Contains(servers, r.Server) {
			servers = append(servers, r.Server)
		}
		k := [2]string{r.Run, r.Server}
		values[k] = append(values[k], *r.CPUPerDeli)
	}
	// A run repeated (compare.sh's REPEAT) is drawn at its median.
	value := map[[2]string]float64{}
	for k, vs := range values {
		slices.Sort(vs)
		n := len(vs)
		value[k] = (vs[(n-1)/2] + vs[n/2]) / 2
	}
	if len(groups) == 0 {
		return nil, errors.New("no run has server_cpu_us_per_delivery")
	}
	order := map[string]int{"keyflux": 0, "nchan": 1, "floor": 2}
	slices.SortStableFunc(servers, func(a, b string) int {
		oa, ok := order[strings.Fields(a + " x")[0]]
		if !ok {
			oa = 3
		}
		ob, ok := order[strings.Fields(b + " x")[0]]
		if !ok {
			ob = 3
		}
		return oa - ob
	})
	top := 0.0
	for _, v := range value {
		top = max(top, v)
	}
	top = niceCeil(top)
	const (
		left, right, topPad = 60.0, 20.0, 50.0
		barW, gap           = 22.0, 30.0
		plotH               = 260.0
		legendRow           = 18.0
	)
	groupW := float64(len(servers))*barW + gap
	width := max(left+right+float64(len(groups))*groupW, 640)
	// The legend flows in rows under the groups' names, each entry as
	// wide as its name (about 7 px a character at 12 px).
	type entry struct{ x, y float64 }
	legend := make([]entry, len(servers))
	lx, ly := left, topPad+plotH+45
	for i, s := range servers {
		w := 16 + 7*float64(len([]rune(s))) + 18
		if lx > left && lx+w > width-right {
			lx, ly = left, ly+legendRow
		}
		legend[i] = entry{lx, ly}
		lx += w
	}
	height := ly + 15
	// The floor is grey, and its variants lighter: they are the reference
	// the others are read against. Other servers take the next free colour.
	named := map[string]string{"keyflux": "#1f77b4", "keyflux keyspace": "#9ecae1", "nchan": "#ff7f0e", "floor": "#7f7f7f"}
	others := []string{"#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf"}
	colors := make([]string, len(servers))
	next := 0
	for i, s := range servers {
		switch c, ok := named[s]; {
		case ok:
			colors[i] = c
		case strings.HasPrefix(s, "floor"):
			colors[i] = "#c7c7c7"
		default:
			colors[i] = others[next%len(others)]
			next++
		}
	}

	var b bytes.Buffer
	esc := func(s string) string {
		var e bytes.Buffer
		_ = xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, esc(title))
	y0 := topPad + plotH
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		y := y0 - plotH*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, width-right, y)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%g</text>`+"\n", left-6, y+4, v)
	}
	fmt.Fprintf(&b, `<text x="14" y="%.0f" transform="rotate(-90 14 %.0f)" text-anchor="middle">µs of server CPU per delivery</text>`+"\n", topPad+plotH/2, topPad+plotH/2)
	for gi, g := range groups {
		x := left + gap/2 + float64(gi)*groupW
		for si, s := range servers {
			v, ok := value[[2]string{g, s}]
			if !ok {
				continue
			}
			h := plotH * v / top
			bx := x + float64(si)*barW
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.0f" height="%.1f" fill="%s"><title>%s %s: %.2f µs</title></rect>`+"\n",
				bx, y0-h, barW-2, h, colors[si], esc(s), esc(g), v)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="9">%.1f</text>`+"\n", bx+(barW-2)/2, y0-h-3, v)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x+float64(len(servers))*barW/2, y0+18, esc(g))
	}
	for si, s := range servers {
		e := legend[si]
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n",
			e.x, e.y-10, colors[si], e.x+16, e.y, esc(s))
	}
	b.WriteString("</svg>\n")
	return b.Bytes(), nil
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// runChart is -mode chart.
func runChart(cfg benchConfig, out io.Writer) error {
	runs, err := readRuns(cfg.In)
	if err != nil {
		return err
	}
	svg, err := chartSVG(runs, cfg.Title)
	if err != nil {
		return err
	}
	if err := os.WriteFile(cfg.Out, svg, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s (%d runs)\n", cfg.Out, len(runs))
	return nil
}
