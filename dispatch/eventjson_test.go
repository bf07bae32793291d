package dispatch

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// eventCases are events whose JSON must be byte-identical to encoding/json's: every
// optional field empty and set, nil and empty collections, strings that need escaping.
func eventCases() map[string]Event {
	ts := time.Date(2026, 11, 27, 15, 4, 5, 120034000, time.UTC)
	return map[string]Event{
		"zero":     {},
		"accepted": {ID: "r-1", Tenant: "default", Campaign: "c", Channel: "sms", To: "+358401234567", From: "Sendcore", Status: StatusAccepted, TS: ts, Node: "gw-1", Meta: map[string]string{"bench_t0": "1764255845120034000"}},
		"submitted": {ID: "r-2", Tenant: "t", Channel: "sms", To: "+1", Status: StatusSubmitted, TS: ts, Segments: 2, Encoding: "gsm7",
			Connection: "carrier-a", SMSCIDs: []string{"1a2b", ""}, Meta: map[string]string{}},
		"delivered": {ID: "r-3", Status: StatusUndelivered, TS: ts.Truncate(time.Second), Reason: "receipt_undeliv", Detail: "part 2: UNDELIV err 001",
			Parts: []PartReceipt{{Part: 1, SMSCID: "a", State: "DELIVRD"}, {Part: 2, SMSCID: "b", State: "UNDELIV", Err: "001"}}, Pool: "p"},
		"voice":     {ID: "v", Status: StatusCompleted, TS: ts, DurationMS: 50, Part: 3, SMSCIDs: []string{}, Parts: []PartReceipt{}},
		"escapes":   {ID: "a\"b\\c<d>e&f", Detail: "tab\there\nnl\r\b\f\x00\x1f\x7f é 😀 \u2028\u2029 \xff\xfe bad", Meta: map[string]string{"z": "<", "a": "&", "m\n": "x", "": ""}},
		"meta-many": {ID: "m", Meta: map[string]string{"k9": "9", "k1": "1", "k5": "5", "k3": "3", "k7": "7", "k2": "2", "k8": "8", "k4": "4", "k6": "6", "k0": "0"}},
		"offset":    {ID: "o", TS: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 2*3600+30*60))},
		"odd-zone":  {ID: "z", TS: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("y", 17))},
		"negative":  {ID: "n", Segments: -1, Part: -2, DurationMS: -3},
	}
}

// TestEventJSONIdentity guarantees that the hand-written encoder of the events topic
// produces exactly encoding/json's bytes, so consumers see the same records as before.
func TestEventJSONIdentity(t *testing.T) {
	for name, ev := range eventCases() {
		t.Run(name, func(t *testing.T) {
			checkEventJSON(t, ev)
		})
	}
}

// TestEventJSONBadTime: a time encoding/json refuses is an error here too.
func TestEventJSONBadTime(t *testing.T) {
	ev := Event{ID: "x", TS: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := AppendEventJSON(nil, &ev); err == nil {
		t.Fatal("year 10000 encoded without error")
	}
}

func checkEventJSON(t *testing.T, ev Event) {
	t.Helper()
	want, werr := json.Marshal(&ev)
	got, gerr := AppendEventJSON([]byte("prefix"), &ev)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("errors differ: encoding/json %v, ours %v", werr, gerr)
	}
	if werr != nil {
		return
	}
	if !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("differs from encoding/json\n got %s\nwant %s", got[len("prefix"):], want)
	}
}

func FuzzEventJSON(f *testing.F) {
	f.Add("r-1", "hello <b>&</b>", "k", "v", "DELIVRD", int64(1764255845120034000), 2)
	f.Add("\xff\u2028", "\x00\t\"\\", "\u2029", "😀", "", int64(-1), -5)
	f.Fuzz(func(t *testing.T, id, text, k, v, state string, ns int64, n int) {
		ev := Event{ID: id, Detail: text, Reason: state, Meta: map[string]string{k: v, v: k}, TS: time.Unix(0, ns).UTC(),
			Segments: n, SMSCIDs: []string{text, id}, Parts: []PartReceipt{{Part: n, SMSCID: k, State: state, Err: v}}}
		checkEventJSON(t, ev)
	})
}
