package storage

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// parseAll runs the import parser over in and describes every outcome, one per string:
// the line and message of a bad row, or the line, key and value of a good one.
func parseAll(t testing.TB, in string, allSlow bool, chunked bool) []string {
	t.Helper()
	opt := ImportOptions{Tenant: DefaultTenant, Channel: "all", Source: "import", Region: "FI"}
	var r io.Reader = strings.NewReader(in)
	if chunked {
		r = &oneByteReader{s: in}
	}
	p := newCSVParser(r, &opt, time.Unix(1700000000, 0).UTC())
	p.allSlow = allSlow
	return describe(p.next)
}

// describe calls next until an error and describes each result.
func describe(next func(*[]byte) (importRow, int, string, error)) []string {
	var out []string
	buf := make([]byte, 0, 64)
	for {
		row, line, msg, err := next(&buf)
		if err != nil {
			out = append(out, "end: "+err.Error())
			return out
		}
		switch {
		case msg != "":
			out = append(out, fmt.Sprintf("%d: bad: %s", line, msg))
		case row.key == nil:
			out = append(out, fmt.Sprintf("%d: header", line))
		default:
			out = append(out, fmt.Sprintf("%d: %q=%q", line, row.key, row.val))
		}
	}
}

// referenceParse parses in as the importer did before the fast path: every record
// through one encoding/csv reader over the whole input.
func referenceParse(t testing.TB, in string) []string {
	t.Helper()
	opt := ImportOptions{Tenant: DefaultTenant, Channel: "all", Source: "import", Region: "FI"}
	p := newCSVParser(strings.NewReader(""), &opt, time.Unix(1700000000, 0).UTC())
	cr := csv.NewReader(strings.NewReader(in))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	return describe(func(buf *[]byte) (importRow, int, string, error) {
		rec, err := cr.Read()
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return importRow{}, pe.StartLine, "csv: " + pe.Err.Error(), nil
			}
			return importRow{}, 0, "", err
		}
		line, _ := cr.FieldPos(0)
		var fields [][]byte
		for _, f := range rec {
			fields = append(fields, []byte(f))
		}
		return p.row(fields, line, buf)
	})
}

// oneByteReader returns its input one byte per Read: lines cross every buffer boundary.
type oneByteReader struct{ s string }

func (r *oneByteReader) Read(b []byte) (int, error) {
	if len(r.s) == 0 {
		return 0, io.EOF
	}
	if len(b) == 0 {
		return 0, nil
	}
	b[0] = r.s[0]
	r.s = r.s[1:]
	return 1, nil
}

var csvCorpus = []string{
	"",
	"\n\n",
	"+358401111111\n+358 40 2222222\n\n+358401111111\n",
	"address,channel,tenant\n+358401111111,sms,acme\n+358402222222,,\nnope,sms,acme\n+358403333333,fax,acme\n",
	"t1,voice,+46701234567,keyword,2026-01-01T00:00:00Z\n,,+46701234568\n",
	"tenant,channel,address,source,ts\nt,sms,+3584\"01111111\nt,sms,+358402222222,api,yesterday\nt,sms,+358403333333,api,\n",
	"0401111111\r\n+358401111111\r\n\r\n  +358402222222  \r",
	"tenant,channel,address,source\n\"acme, inc\",sms,+358401111111,\"multi\nline\"\nacme,sms,+358402222222,x\n\"unterminated,sms,+358403333333\n+358404444444\n",
	"tenant,channel,address,source\nt,sms,\"+358401111111\"x,s\nt,sms,+358402222222,s\n  \"t\",sms,+358403333333,\"a\"\"b\"\n",
	"address\n\"+358401111111\nt\"\n+358402222222\n",
	"a,b,address\nx,y,+358401111111\n\n\"\"\n",
	"tenant,channel,address\nt\xff,sms,+358401111111\nt,sms,+35840\xff\n",
	",,,,\n+358401111111,all\n",
	"t,all,+999123456789\nt,sms,+3584012\nt,sms,+35840123456789012\n",
	"\"tenant\",\"address\"\nx,+358401111111",
}

// TestCSVFastPathMatchesEncodingCSV guarantees that the hand-written path for unquoted
// lines gives exactly what encoding/csv gives for every line: same rows, same bad rows at
// the same lines, also when lines cross read boundaries.
func TestCSVFastPathMatchesEncodingCSV(t *testing.T) {
	for i, in := range csvCorpus {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			want := referenceParse(t, in)
			if got := parseAll(t, in, true, false); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("all through encoding/csv\n got %q\nwant %q", got, want)
			}
			for _, chunked := range []bool{false, true} {
				got := parseAll(t, in, false, chunked)
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Fatalf("chunked=%v\n got %q\nwant %q", chunked, got, want)
				}
			}
		})
	}
}

// TestCSVQuotedLinesKeepLineNumbers checks the line numbers around records that span
// lines and bad quotes.
func TestCSVQuotedLinesKeepLineNumbers(t *testing.T) {
	in := "tenant,channel,address,source\n" + // 1
		"t,sms,+358401111111,\"two\nlines\"\n" + // 2-3
		"t,sms,nope,x\n" + // 4
		"t,sms,+358402222222,\"bad\"quote\n" + // 5
		"t,sms,\"+358403333333\",ok\n" + // 6
		"t,sms,bad\"bare,x\n" + // 7
		"t,sms,+358404444444,x\n" // 8
	got := parseAll(t, in, false, false)
	var lines []string
	for _, g := range got {
		lines = append(lines, g[:strings.IndexByte(g, ':')])
	}
	if want := "1 2 4 5 6 7 8 end"; strings.Join(lines, " ") != want {
		t.Fatalf("lines %v, want %s\n%q", lines, want, got)
	}
}

func FuzzCSVFastPath(f *testing.F) {
	for _, s := range csvCorpus {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		want := strings.Join(referenceParse(t, in), "\n")
		for _, allSlow := range []bool{false, true} {
			if got := parseAll(t, in, allSlow, false); strings.Join(got, "\n") != want {
				t.Fatalf("allSlow=%v\n got %q\nwant %q", allSlow, got, want)
			}
		}
	})
}
