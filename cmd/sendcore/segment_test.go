package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sendcore/sendcore/segment"
)

// runSegment calls cmdSegment with buffers and returns exit code, stdout and stderr.
func runSegment(t *testing.T, ctx context.Context, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cmdSegment(ctx, args, stdio{in: strings.NewReader(stdin), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func TestSegmentSummary(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  []string
	}{
		{"gsm text from args", "", []string{"Hello", "world"}, []string{"encoding  gsm7 (data_coding 0x00)", "segments  1", "units     11 septets", "data 48656c6c6f20776f726c64"}},
		{"stdin without trailing newline", "Hi\n", nil, []string{"units     2 septets", "data 4869\n"}},
		{"ucs2 names the characters", "", []string{"ça"}, []string{"encoding  ucs2", "'ç' U+00E7"}},
		{"smart", "", []string{"--smart", "“Hi”"}, []string{"encoding  gsm7", `text      "\"Hi\"" (after smart encoding)`}},
		{"two parts with udh16", "", []string{"--concat", "udh16", "--ref", "4660", strings.Repeat("a", 161)}, []string{"segments  2", "part 1/2  152 septets, udh 06080412340201", "part 2/2  9 septets, udh 06080412340202"}},
		{"forced ucs2", "", []string{"--encoding", "ucs2", "A"}, []string{"encoding  ucs2", "data 0041"}},
		{"national turkish", "", []string{"--national", "tr,pt", "--encoding", "gsm7", "ş"}, []string{"language  turkish", "udh 03240101", "data 1b73"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runSegment(t, context.Background(), tt.stdin, tt.args...)
			if code != exitOK {
				t.Fatalf("exit %d, stderr %s", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestSegmentJSON(t *testing.T) {
	code, out, _ := runSegment(t, context.Background(), "", "--json", strings.Repeat("€", 81))
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	var r segmentResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.ID != nil || r.Encoding != "gsm7" || r.Segments != 2 || r.Units != 162 || len(r.Parts) != 2 {
		t.Fatalf("result %+v", r)
	}
	if r.Parts[0].UDH != "050003000201" || r.Parts[1].UDH != "050003000202" || r.Parts[1].Data != strings.Repeat("1b65", 5) {
		t.Fatalf("parts %+v", r.Parts)
	}
}

func TestSegmentErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		code    int
		stdout  string
		stderr  string
		context context.Context
	}{
		{"bad encoding flag", []string{"--encoding", "utf8", "x"}, exitUsage, "", "--encoding", nil},
		{"bad concat flag", []string{"--concat", "sar", "x"}, exitUsage, "", "--concat", nil},
		{"bad ref", []string{"--ref", "70000", "x"}, exitUsage, "", "--ref", nil},
		{"bad national", []string{"--national", "klingon", "x"}, exitUsage, "", "--national", nil},
		{"unknown flag", []string{"--nope"}, exitUsage, "", "nope", nil},
		{"jsonl with argument", []string{"--jsonl", "x"}, exitUsage, "", "unexpected argument", nil},
		{"forced gsm7 mismatch", []string{"--encoding", "gsm7", "ç"}, exitFailure, "", "encoding_mismatch", nil},
		{"forced gsm7 mismatch as json", []string{"--json", "--encoding", "gsm7", "ç"}, exitFailure, `"code":"encoding_mismatch"`, "", nil},
		{"too long", []string{strings.Repeat("a", 255*153+1)}, exitFailure, "", "too_long", nil},
		{"help", []string{"--help"}, exitOK, "", "Usage: sendcore segment", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.context
			if ctx == nil {
				ctx = context.Background()
			}
			code, out, errOut := runSegment(t, ctx, "", tt.args...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout %s\nstderr %s", code, tt.code, out, errOut)
			}
		})
	}
}

// TestSegmentJSONL checks that every non-blank input line gets exactly one output line in
// order, that a bad line yields an error line and does not stop the rest, and that udh +
// data are exactly the short_message bytes Split makes.
func TestSegmentJSONL(t *testing.T) {
	long := strings.Repeat("ж", 80)
	input := strings.Join([]string{
		`{"id":"ok","text":"hello","channel":"sms","to":"+358401234567"}`,
		``,
		`{"id":"long","text":"` + long + `"}`,
		`{"id":"mismatch","text":"ç","encoding":"gsm7"}`,
		`not json`,
		`{"id":"notext"}`,
		`{"id":"empty","text":""}`,
		`{"id":"badenc","text":"x","encoding":"latin1"}`,
		`{"id":"badsmart","text":"x","smart_encoding":"yes"}`,
		`{"id":7,"text":"x"}`,
		`{"id":"smart","text":"“q”","smart_encoding":true}`,
		`{"id":"flagsmart","text":"“q”"}`,
		`{"text":"no id"}`,
		`{"id":"last","text":"bye"}`, // no trailing newline
	}, "\n")
	code, out, errOut := runSegment(t, context.Background(), input, "--jsonl", "--smart")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := []struct{ id, errCode string }{
		{"ok", ""}, {"long", ""}, {"mismatch", "encoding_mismatch"}, {"", "invalid_json"},
		{"notext", "missing_field"}, {"empty", "missing_field"}, {"badenc", "invalid_field"},
		{"badsmart", "invalid_field"}, {"", "invalid_field"}, {"smart", ""}, {"flagsmart", ""}, {"", ""}, {"last", ""},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d output lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		var r struct {
			ID       *string `json:"id"`
			Encoding string  `json:"encoding"`
			Segments int     `json:"segments"`
			Parts    []segmentPart
			Error    *segmentErrorBody `json:"error"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, lines[i])
		}
		gotID := ""
		if r.ID != nil {
			gotID = *r.ID
		}
		gotCode := ""
		if r.Error != nil {
			gotCode = r.Error.Code
			if r.Error.Message == "" {
				t.Errorf("line %d: error without message", i+1)
			}
		}
		if !strings.HasPrefix(lines[i], `{"id":`) {
			t.Errorf("line %d does not start with the id: %s", i+1, lines[i])
		}
		if gotID != w.id || gotCode != w.errCode {
			t.Errorf("line %d: id %q error %q, want id %q error %q: %s", i+1, gotID, gotCode, w.id, w.errCode, lines[i])
		}
		if w.id == "long" {
			var m segment.Message
			if err := segment.Split(&m, long, segment.Options{Smart: true}, 0); err != nil {
				t.Fatal(err)
			}
			if r.Encoding != "ucs2" || r.Segments != 2 || len(r.Parts) != 2 {
				t.Fatalf("long: %s", lines[i])
			}
			for j, p := range r.Parts {
				if got := p.UDH + p.Data; got != hex.EncodeToString(m.Parts[j].ShortMessage) || p.DataCoding != 0x08 {
					t.Errorf("long part %d: udh+data %s, want %x", j+1, got, m.Parts[j].ShortMessage)
				}
			}
		}
		if (w.id == "smart" || w.id == "flagsmart") && (r.Encoding != "gsm7" || r.Parts[0].Data != "227122") {
			t.Errorf("%s: %s", w.id, lines[i])
		}
	}
}

func TestSegmentJSONLLineTooLong(t *testing.T) {
	input := `{"id":"a","text":"` + strings.Repeat("x", maxJSONLLine) + `"}` + "\n" + `{"id":"b","text":"ok"}` + "\n"
	code, out, _ := runSegment(t, context.Background(), input, "--jsonl")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != exitOK || len(lines) != 2 || !strings.Contains(lines[0], `"line_too_long"`) || !strings.Contains(lines[1], `"id":"b"`) {
		t.Fatalf("exit %d, output %.300s", code, out)
	}
}

func TestSegmentJSONLCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code, _, errOut := runSegment(t, ctx, `{"id":"a","text":"x"}`+"\n", "--jsonl")
	if code != exitFailure || !strings.Contains(errOut, "canceled") {
		t.Fatalf("exit %d stderr %s", code, errOut)
	}
}
