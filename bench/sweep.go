package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Cell is one point of a sweep: its settings and the report of its run.
type Cell struct {
	Window      int           `json:"window"`
	Binds       int           `json:"binds"`
	SMSCLatency time.Duration `json:"smsc_latency"`
	Report      Report        `json:"report"`
}

// Grid returns the cells of windows × binds × latencies, in that nesting order (window
// varies fastest), without reports.
func Grid(windows, binds []int, latencies []time.Duration) []Cell {
	if len(latencies) == 0 {
		latencies = []time.Duration{0}
	}
	cells := make([]Cell, 0, len(windows)*len(binds)*len(latencies))
	for _, l := range latencies {
		for _, b := range binds {
			for _, w := range windows {
				cells = append(cells, Cell{Window: w, Binds: b, SMSCLatency: l})
			}
		}
	}
	return cells
}

// WriteSweepTable writes one row per cell.
func WriteSweepTable(w io.Writer, cells []Cell) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "binds\twindow\tsmsc latency\trequests\trequests/s\tsegments/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\tcpu s\tincomplete\t")
	for _, c := range cells {
		r := c.Report
		fmt.Fprintf(tw, "%d\t%d\t%v\t%d\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t\n", c.Binds, c.Window, c.SMSCLatency,
			r.Requests, r.RequestsPerS, r.SegmentsPerS, r.LatencyMS.P50, r.LatencyMS.P90, r.LatencyMS.P99,
			r.LatencyMS.Max, r.CPUS, r.Incomplete)
	}
	return tw.Flush()
}

// series groups cells by (binds, latency), each sorted by window.
func series(cells []Cell) (keys []string, byKey map[string][]Cell) {
	byKey = map[string][]Cell{}
	for _, c := range cells {
		k := fmt.Sprintf("binds %d, smsc %v", c.Binds, c.SMSCLatency)
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], c)
	}
	for _, k := range keys {
		slices.SortFunc(byKey[k], func(a, b Cell) int { return cmp.Compare(a.Window, b.Window) })
	}
	return keys, byKey
}

// WriteSweepSVG draws two charts against the window, one line per binds × SMSC latency:
// throughput (segments/s) above, p99 latency (ms) below, and writes them as SVG.
func WriteSweepSVG(w io.Writer, cells []Cell) error {
	if len(cells) == 0 {
		return fmt.Errorf("%w: sweep: no cells to draw", ErrInvalid)
	}
	keys, byKey := series(cells)
	top, bottom := plot.New(), plot.New()
	top.Title.Text = "sendcore bench sweep: throughput"
	top.X.Label.Text = "window (submit_sm in flight per bind)"
	top.Y.Label.Text = "segments/s"
	bottom.Title.Text = "latency produce → submit_sm_resp"
	bottom.X.Label.Text = "window (submit_sm in flight per bind)"
	bottom.Y.Label.Text = "p99 ms"
	for i, k := range keys {
		cs := byKey[k]
		tp, lat := make(plotter.XYs, len(cs)), make(plotter.XYs, len(cs))
		for j, c := range cs {
			tp[j] = plotter.XY{X: float64(c.Window), Y: c.Report.SegmentsPerS}
			lat[j] = plotter.XY{X: float64(c.Window), Y: c.Report.LatencyMS.P99}
		}
		for _, pl := range []struct {
			p   *plot.Plot
			xys plotter.XYs
		}{{top, tp}, {bottom, lat}} {
			l, pts, err := plotter.NewLinePoints(pl.xys)
			if err != nil {
				return fmt.Errorf("bench: sweep chart: %w", err)
			}
			l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
			l.Dashes = plotutil.Dashes(i)
			pts.Shape = plotutil.Shape(i)
			pl.p.Add(l, pts)
			pl.p.Legend.Add(k, l, pts)
		}
	}
	for _, p := range []*plot.Plot{top, bottom} {
		p.Add(plotter.NewGrid())
		p.Legend.Top = true
		p.Y.Min = 0
	}
	c := vgsvg.New(8*vg.Inch, 9*vg.Inch)
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	canvases := plot.Align([][]*plot.Plot{{top}, {bottom}}, tiles, dc)
	top.Draw(canvases[0][0])
	bottom.Draw(canvases[1][0])
	if _, err := c.WriteTo(w); err != nil {
		return fmt.Errorf("bench: sweep chart: %w", err)
	}
	return nil
}
