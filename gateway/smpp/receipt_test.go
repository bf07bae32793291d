package smpp

import (
	"testing"
	"time"
)

func TestParseReceiptText(t *testing.T) {
	for _, tc := range []struct {
		name, in, id, state, err string
		done                     time.Time
	}{
		{"standard", "id:1a2b sub:001 dlvrd:001 submit date:2603040506 done date:2603040507 stat:DELIVRD err:000 text:hello", "1a2b", "DELIVRD", "000", time.Date(2026, 3, 4, 5, 7, 0, 0, time.UTC)},
		{"upper case, extra spaces", "ID: 42  SUB:001 DLVRD:000 SUBMIT DATE:2603040506 DONE DATE:260304050709 STAT: undeliv ERR:  012 TEXT:x", "42", "UNDELIV", "012", time.Date(2026, 3, 4, 5, 7, 9, 0, time.UTC)},
		{"missing fields, long state", "id:7 stat:DELIVERED", "7", "DELIVRD", "", time.Time{}},
		{"underscore dates", "id:9 done_date:2603040507 stat:EXPIRED err:1", "9", "EXPIRED", "1", time.Date(2026, 3, 4, 5, 7, 0, 0, time.UTC)},
		{"no id inside words", "msgid:5 id:6 stat:REJECTD", "6", "REJECTD", "", time.Time{}},
		{"empty", "", "", "", "", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := parseReceiptText([]byte(tc.in))
			if r.id != tc.id || r.state != tc.state || r.err != tc.err || !r.done.Equal(tc.done) {
				t.Fatalf("got %+v", r)
			}
		})
	}
}

func TestConvertID(t *testing.T) {
	for _, tc := range []struct{ id, from, to, want string }{
		{"74565", "decimal", "hex", "12345"},
		{"0001A", "hex", "hex", "1a"},
		{"1a", "hex", "decimal", "26"},
		{"not-a-number", "decimal", "hex", "not-a-number"},
		{"AbC", "", "", "AbC"},
	} {
		if got := convertID(tc.id, tc.from, tc.to); got != tc.want {
			t.Errorf("convertID(%q,%s,%s) = %q, want %q", tc.id, tc.from, tc.to, got, tc.want)
		}
	}
}

func FuzzParseReceiptText(f *testing.F) {
	f.Add([]byte("id:1 sub:001 dlvrd:001 submit date:2603040506 done date:2603040507 stat:DELIVRD err:000 text:x"))
	f.Fuzz(func(t *testing.T, b []byte) { _ = parseReceiptText(b) })
}
