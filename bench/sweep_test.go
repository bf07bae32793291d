package bench

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

func TestGrid(t *testing.T) {
	cells := Grid([]int{1, 10}, []int{1, 2}, []time.Duration{0, 5 * time.Millisecond})
	if len(cells) != 8 || cells[0].Window != 1 || cells[0].Binds != 1 || cells[0].SMSCLatency != 0 || cells[1].Window != 10 || cells[2].Binds != 2 ||
		cells[4].SMSCLatency != 5*time.Millisecond {
		t.Fatalf("grid %+v", cells)
	}
	if got := Grid([]int{1}, []int{1}, nil); len(got) != 1 {
		t.Fatalf("grid without latencies: %+v", got)
	}
}

func sweepCells() []Cell {
	cells := Grid([]int{1, 10, 50, 100}, []int{1, 2}, []time.Duration{0, 5 * time.Millisecond})
	for i := range cells {
		c := &cells[i]
		c.Report = Report{Requests: 1000, SegmentsPerS: float64(c.Window*c.Binds) * 100, RequestsPerS: float64(c.Window * c.Binds * 90),
			LatencyMS: Latency{P50: 1, P99: float64(c.Window) / 10}}
	}
	return cells
}

// The chart is well-formed SVG with a line per binds × latency in its legend.
func TestWriteSweepSVG(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSweepSVG(&buf, sweepCells()); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("not well-formed XML: %v", err)
			}
			break
		}
	}
	s := buf.String()
	for _, want := range []string{"<svg", "binds 1, smsc 0s", "binds 2, smsc 5ms", "segments/s", "p99 ms"} {
		if !strings.Contains(s, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if err := WriteSweepSVG(&buf, nil); err == nil {
		t.Fatal("no cells: want an error")
	}
}

func TestWriteSweepTable(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSweepTable(&buf, sweepCells()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 17 || !strings.Contains(lines[0], "requests/s") || !strings.Contains(lines[16], "20000") {
		t.Fatalf("table:\n%s", buf.String())
	}
}
