package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sendcore/sendcore/segment"
)

// Every reminder has the encoding and segment count its note claims.
func TestRemindersSegments(t *testing.T) {
	for _, rm := range reminders {
		t.Run(rm.note, func(t *testing.T) {
			c, err := segment.CountText(rm.text, segment.Options{})
			if err != nil {
				t.Fatal(err)
			}
			wantEnc := segment.GSM7
			if strings.Contains(rm.note, "UCS-2") {
				wantEnc = segment.UCS2
			}
			var parts int
			fmt.Sscanf(rm.note[strings.LastIndex(rm.note, ", ")+2:], "%d part", &parts)
			if c.Encoding != wantEnc || c.Segments != parts {
				t.Fatalf("%v, %d segments; note says %v, %d", c.Encoding, c.Segments, wantEnc, parts)
			}
		})
	}
}

func TestDemoCampaign(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	c := DemoCampaign(CampaignOptions{RunID: "demo", Now: now, ScheduleIn: 2 * time.Second})
	ids := map[string]int{}
	want := map[string]int{}
	for _, it := range c.Items {
		ids[it.ID]++
		for _, w := range it.Want {
			want[w]++
		}
		var r Request
		if err := json.Unmarshal(it.Value, &r); err != nil {
			t.Fatalf("%s: %v", it.ID, err)
		}
		if r.ID != it.ID || string(it.Key) != r.To || r.Campaign != c.Name {
			t.Fatalf("item %s: request %+v key %q", it.ID, r, it.Key)
		}
		if r.NotBefore != nil && !r.NotBefore.After(now.Add(2*time.Second)) {
			t.Fatalf("%s scheduled at %v, not after now+2s", it.ID, r.NotBefore)
		}
		if r.Channel == "voice" && r.Pool == c.Pool && c.Calls[r.To] == "" {
			t.Fatalf("voice recipient %s has no call behaviour", r.To)
		}
	}
	if ids["demo-dup"] != 2 {
		t.Fatalf("duplicate id sent %d times", ids["demo-dup"])
	}
	for id, n := range ids {
		if n > 1 && id != "demo-dup" {
			t.Fatalf("id %s repeated", id)
		}
	}
	for _, s := range []string{"delivered", "suppressed", "expired", "rejected", "duplicate", "completed", "busy", "no_answer", "declined"} {
		if want[s] == 0 {
			t.Errorf("no request expects %s", s)
		}
	}
	if len(c.OptOuts) != want["suppressed"] || len(c.PoolNumbers) != 3 || c.WantTerminals() != len(c.Items) {
		t.Fatalf("opt-outs %d, suppressed %d, pool %v, want terminals %d for %d items", len(c.OptOuts), want["suppressed"],
			c.PoolNumbers, c.WantTerminals(), len(c.Items))
	}
}

// Check names every id whose terminal statuses differ from the expected ones, and the
// summary prints them and the places to look next.
func TestCampaignCheckAndSummary(t *testing.T) {
	c := DemoCampaign(CampaignOptions{RunID: "d", Now: time.Now()})
	ta := NewTally("d-", true)
	for _, it := range c.Items {
		for _, w := range it.Want {
			ta.Observe(Event{ID: it.ID, Status: w, Channel: map[bool]string{true: "voice"}[strings.Contains(it.Note, "voice")], From: "+358401110001"})
		}
	}
	if bad := c.Check(ta); len(bad) != 0 {
		t.Fatalf("all as expected, yet Check = %+v", bad)
	}
	wrong := c.Items[0].ID
	ta.Observe(Event{ID: wrong, Status: "duplicate"})
	bad := c.Check(ta)
	if len(bad) != 1 || bad[0].ID != wrong {
		t.Fatalf("Check = %+v, want only %s", bad, wrong)
	}
	var buf bytes.Buffer
	l := Links{Control: "http://127.0.0.1:1234", Token: "demo-token-0123456789", Brokers: []string{"127.0.0.1:9"}}
	if err := c.WriteSummary(&buf, ta.Snapshot(), 2*time.Second, bad, l); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, w := range []string{"by terminal status", "delivered=", "segments sent", "calls from +358401110001", "did NOT reach",
		wrong, "Bearer demo-token-0123456789", "/metrics", "/v1/messages/"} {
		if !strings.Contains(out, w) {
			t.Errorf("summary lacks %q:\n%s", w, out)
		}
	}
}
