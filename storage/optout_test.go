package storage_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/storage"
)

func TestGetAndCountOptOuts(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir, storage.Options{})
	ts := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	for _, o := range []dispatch.OptOut{
		{Tenant: "a", Channel: "sms", Address: "+358 40 1234567", OptedOut: true, Source: "keyword", TS: ts},
		{Tenant: "a", Channel: "sms", Address: "+358401234567", OptedOut: true, Source: "api", TS: ts}, // same record again
		{Tenant: "a", Channel: "all", Address: "+358401234567", OptedOut: true},
		{Tenant: "b", Channel: "voice", Address: "+46701234567", OptedOut: true},
		{Tenant: "b", Channel: "voice", Address: "+46701234567", OptedOut: false},
		{Tenant: "b", Channel: "voice", Address: "+46701234567", OptedOut: false},
	} {
		if err := db.SetOptOut(o); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := db.CountOptOuts(); n != 2 {
		t.Errorf("CountOptOuts = %d, want 2", n)
	}
	got, ok, err := db.GetOptOut("a", "sms", "+358401234567")
	if err != nil || !ok || got.Source != "api" || !got.TS.Equal(ts) || !got.OptedOut || got.Channel != "sms" {
		t.Errorf("GetOptOut = %+v, %v, %v", got, ok, err)
	}
	if _, ok, _ := db.GetOptOut("a", "voice", "+358401234567"); ok {
		t.Error("GetOptOut(voice) found a record: it must not match all")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir, storage.Options{})
	defer db.Close()
	if n, _ := db.CountOptOuts(); n != 2 {
		t.Errorf("CountOptOuts after reopen = %d, want 2", n)
	}
}

func TestImportExportCSV(t *testing.T) {
	cases := []struct {
		name, csv   string
		opt         storage.ImportOptions
		imported    int
		rejectLines []int
		want        []string // tenant/channel/address/source that must be opted out
	}{
		{
			name:     "AddressOnly",
			csv:      "+358401111111\n+358 40 2222222\n\n+358401111111\n",
			imported: 3,
			want:     []string{"default/all/+358401111111/import", "default/all/+358402222222/import"},
		},
		{
			name:        "HeaderAnyOrder",
			csv:         "address,channel,tenant\n+358401111111,sms,acme\n+358402222222,,\nnope,sms,acme\n+358403333333,fax,acme\n",
			imported:    2,
			rejectLines: []int{4, 5},
			want:        []string{"acme/sms/+358401111111/import", "default/all/+358402222222/import"},
		},
		{
			name:     "ExportOrderNoHeaderWithDefaults",
			csv:      "t1,voice,+46701234567,keyword,2026-01-01T00:00:00Z\n,,+46701234568\n",
			opt:      storage.ImportOptions{Tenant: "cli", Channel: "sms", Source: "cli"},
			imported: 2,
			want:     []string{"t1/voice/+46701234567/keyword", "cli/sms/+46701234568/cli"},
		},
		{
			name:        "BadQuotesAndTS",
			csv:         "tenant,channel,address,source,ts\nt,sms,+3584\"01111111\nt,sms,+358402222222,api,yesterday\nt,sms,+358403333333,api,\n",
			imported:    1,
			rejectLines: []int{2, 3},
			want:        []string{"t/sms/+358403333333/api"},
		},
		{
			name:        "NationalNeedsRegion",
			csv:         "0401111111\n",
			imported:    0,
			rejectLines: []int{1},
		},
		{
			name:     "NationalWithRegion",
			csv:      "0401111111\n",
			opt:      storage.ImportOptions{Region: "FI"},
			imported: 1,
			want:     []string{"default/all/+358401111111/import"},
		},
		{
			name:        "StopOnError",
			csv:         "+358401111111\nbad\n+358402222222\n",
			opt:         storage.ImportOptions{StopOnError: true},
			imported:    1,
			rejectLines: []int{2},
			want:        []string{"default/all/+358401111111/import"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := openDB(t, t.TempDir(), storage.Options{})
			defer db.Close()
			var lines []int
			c.opt.OnReject = func(e storage.RowError) { lines = append(lines, e.Line) }
			res, err := db.ImportOptOutsCSV(strings.NewReader(c.csv), c.opt)
			if err != nil {
				t.Fatal(err)
			}
			if res.Imported != c.imported || res.Rejected != len(c.rejectLines) || fmt.Sprint(lines) != fmt.Sprint(c.rejectLines) {
				t.Fatalf("import = %+v, rejected lines %v; want %d imported, rejected lines %v", res, lines, c.imported, c.rejectLines)
			}
			var buf bytes.Buffer
			if err := db.ExportOptOutsCSV(&buf); err != nil {
				t.Fatal(err)
			}
			recs, err := csv.NewReader(&buf).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(recs[0], ",") != "tenant,channel,address,source,ts" {
				t.Fatalf("export header %v", recs[0])
			}
			var got []string
			for _, r := range recs[1:] {
				got = append(got, strings.Join(r[:4], "/"))
				if _, err := time.Parse(time.RFC3339Nano, r[4]); err != nil {
					t.Errorf("export ts %q: %v", r[4], err)
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("export = %v, want %v", got, c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(strings.Join(got, " "), w) {
					t.Errorf("export %v lacks %s", got, w)
				}
			}
			if n, _ := db.CountOptOuts(); n != len(c.want) {
				t.Errorf("CountOptOuts = %d, want %d", n, len(c.want))
			}
		})
	}
}

// TestImportMillionRows guarantees that a large CSV with bad rows imports every valid
// row, reports every bad row by its line, and that export gives them all back.
func TestImportMillionRows(t *testing.T) {
	rows := 1_000_000
	if raceEnabled || testing.Short() {
		rows = 50_000 // the race detector makes it 10-15x slower; 1M rows without it
	}
	path := filepath.Join(t.TempDir(), "optouts.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "tenant,channel,address")
	var wantBad []int
	for i := range rows {
		line := i + 2
		switch {
		case i%9973 == 5:
			fmt.Fprintf(w, "t%d,sms,+999%07d\n", i%3, i) // bad address: no country 999
			wantBad = append(wantBad, line)
		case i%10007 == 7:
			fmt.Fprintf(w, "t%d,fax,+35840%07d\n", i%3, i) // bad channel
			wantBad = append(wantBad, line)
		default:
			fmt.Fprintf(w, "t%d,sms,+35840%07d\n", i%3, i)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	db := openDB(t, t.TempDir(), storage.Options{})
	defer db.Close()
	var bad []int
	start := time.Now()
	res, err := db.ImportOptOutsCSV(f, storage.ImportOptions{OnReject: func(e storage.RowError) { bad = append(bad, e.Line) }})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("%d rows in %v: %.0f rows/s", rows, took, float64(rows)/took.Seconds())
	if fmt.Sprint(bad) != fmt.Sprint(wantBad) {
		t.Fatalf("rejected lines %v, want %v", bad, wantBad)
	}
	if res.Imported != rows-len(wantBad) || res.Rejected != len(wantBad) {
		t.Fatalf("result %+v, want %d imported, %d rejected", res, rows-len(wantBad), len(wantBad))
	}
	if n, _ := db.CountOptOuts(); n != res.Imported {
		t.Fatalf("CountOptOuts = %d, want %d", n, res.Imported)
	}
	for i := 0; i < rows; i += 997 {
		if i%9973 == 5 || i%10007 == 7 {
			continue
		}
		ok, err := db.OptedOut(fmt.Sprintf("t%d", i%3), "sms", fmt.Sprintf("+35840%07d", i))
		if err != nil || !ok {
			t.Fatalf("row %d not opted out: %v", i, err)
		}
	}
	var cnt countWriter
	if err := db.ExportOptOutsCSV(&cnt); err != nil {
		t.Fatal(err)
	}
	if cnt.lines != res.Imported+1 {
		t.Fatalf("export has %d lines, want %d", cnt.lines, res.Imported+1)
	}
}

type countWriter struct{ lines int }

func (c *countWriter) Write(p []byte) (int, error) {
	c.lines += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}
