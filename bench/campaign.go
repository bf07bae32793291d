package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Call behaviours a demo recipient's SIP endpoint is programmed with.
const (
	CallAnswer  = "answer"    // answers, hangs up shortly after: completed
	CallBusy    = "busy"      // 486 Busy Here: busy
	CallDecline = "decline"   // 603 Decline: declined
	CallNoAnswr = "no_answer" // rings until the request's ring timeout: no_answer
)

// Item is one record of the demo campaign and the terminal statuses its id must reach.
type Item struct {
	ID    string
	Key   []byte // record key: the recipient
	Value []byte // record value: the request JSON (or a deliberately bad one)
	// Want lists the terminal statuses the id must reach, in any order: one, or two for
	// an id sent twice (the original's and "duplicate").
	Want []string
	Note string // what the item shows, e.g. "Finnish, UCS-2 with emoji, 2 parts"
}

// Campaign is the demo's sample campaign.
type Campaign struct {
	Name  string
	Items []Item
	// OptOuts are the numbers to opt out (tenant "default", channel "all") before the
	// campaign is produced.
	OptOuts []string
	// Calls maps each voice recipient to the behaviour its SIP endpoint must have.
	Calls map[string]string
	// Pool is the rotation pool voice requests use; PoolNumbers its caller numbers.
	Pool        string
	PoolNumbers []string
}

// CampaignOptions shape the demo campaign.
type CampaignOptions struct {
	RunID string    // id prefix
	Now   time.Time // for not_before and expires_at
	// ScheduleIn is how far ahead the scheduled requests are (default 3 s).
	ScheduleIn time.Duration
	// RingTimeoutS is the ring timeout of the calls nobody answers (default 3).
	RingTimeoutS int
	// Repeat multiplies the plain reminders (default 1: 27 of them).
	Repeat int
}

type reminder struct{ lang, text, note string }

// Reminders are the campaign's texts: English, Finnish and Swedish payment reminders in
// GSM-7 (with extension characters such as € [ ] ~), UCS-2 with emoji, single and
// multi-part.
var reminders = []reminder{
	{"en", "Hi Anna, a reminder: invoice 10234 of 49.90 € is due on 30 June. Pay at pay.example.com/10234", "English, GSM-7 with €, 1 part"},
	{"en", "Hi Tom, your invoice [10235] of 1 249.00 € is overdue. To avoid a late fee of 5 € please pay by Friday at pay.example.com/10235 ~ or call us on +358 9 123 4567 to agree an instalment plan {3 or 6 months}. Thank you!", "English, GSM-7 with € [ ] ~ { }, 2 parts"},
	{"en", "Hi Sam 👋 invoice 10236 (19.90 €) is due tomorrow ⏰ pay.example.com/10236", "English, UCS-2 with emoji, 2 parts"},
	{"fi", "Hei Matti, muistutus: lasku 10237 (49,90 €) erääntyy 30.6. Maksa osoitteessa pay.example.com/10237", "Finnish, GSM-7 with € ä, 1 part"},
	{"fi", "Hei Liisa, laskusi [10238] summa 1 249,00 € on erääntynyt. Välttääksesi 5 € muistutusmaksun maksa perjantaihin mennessä osoitteessa pay.example.com/10238 tai soita numeroon 09 123 4567 ja sovi maksuerät {3 tai 6 kk}. Kiitos!", "Finnish, GSM-7 with € [ ] { }, 2 parts"},
	{"fi", "Hei Aino 🔔 lasku 10239 erääntyy huomenna. Kiitos! 😊", "Finnish, UCS-2 with emoji, 1 part"},
	{"sv", "Hej Sara, påminnelse: faktura 10240 på 499 kr förfaller 30/6. Betala på pay.example.com/10240", "Swedish, GSM-7 with å ö, 1 part"},
	{"sv", "Hej Erik, din faktura [10241] på 12 490 kr är förfallen. För att undvika en påminnelseavgift på 60 kr, betala senast fredag på pay.example.com/10241 ~ eller ring 08-123 45 67 för en avbetalningsplan {3 eller 6 mån}. Tack!", "Swedish, GSM-7 with [ ] ~ { }, 2 parts"},
	{"sv", "Hej Maja 🙂 fakturan 10242 (499 kr) förfaller i morgon 📅 Tack för att du betalar i tid! pay.example.com/10242", "Swedish, UCS-2 with emoji, 2 parts"},
}

// recipient of a language: Finnish, Swedish or UK mobile numbers.
func demoNumber(lang string, i int) string {
	switch lang {
	case "fi":
		return fmt.Sprintf("+3584010%05d", i)
	case "sv":
		return fmt.Sprintf("+4670100%04d", i)
	}
	return fmt.Sprintf("+447700900%03d", i%1000)
}

// DemoCampaign returns the sample campaign: plain reminders (delivered), reminders to
// opted-out recipients (suppressed), reminders scheduled ahead (delivered), one already
// expired (expired), invalid requests (rejected), an id sent twice (delivered and
// duplicate), and voice calls from a pool of three caller numbers (completed, busy,
// no_answer, declined).
func DemoCampaign(o CampaignOptions) Campaign {
	if o.ScheduleIn <= 0 {
		o.ScheduleIn = 3 * time.Second
	}
	if o.RingTimeoutS <= 0 {
		o.RingTimeoutS = 3
	}
	if o.Repeat <= 0 {
		o.Repeat = 1
	}
	c := Campaign{Name: "payment-reminders", Calls: map[string]string{}, Pool: "demo-callers",
		PoolNumbers: []string{"+358401110001", "+358401110002", "+358401110003"}}
	yes := true
	n := 0
	add := func(r Request, note string, want ...string) {
		n++
		if r.ID == "" {
			r.ID = fmt.Sprintf("%s-%03d", o.RunID, n)
		}
		r.Tenant, r.Campaign = "default", c.Name
		if r.Channel == "sms" && r.DLR == nil {
			r.DLR = &yes
		}
		v, _ := json.Marshal(r)
		c.Items = append(c.Items, Item{ID: r.ID, Key: []byte(r.To), Value: v, Want: want, Note: note})
	}
	num := 0
	next := func(lang string) string { num++; return demoNumber(lang, num) }
	for range o.Repeat {
		for _, rm := range reminders {
			for range 3 {
				add(Request{Channel: "sms", To: next(rm.lang), Text: rm.text, Module: "reminders"}, rm.note, "delivered")
			}
		}
	}
	// Opted out before the campaign: suppressed.
	for i, rm := range reminders[:4] {
		to := next(rm.lang)
		c.OptOuts = append(c.OptOuts, to)
		add(Request{Channel: "sms", To: to, Text: rm.text}, fmt.Sprintf("opted out (%d)", i+1), "suppressed")
	}
	// Scheduled a few seconds ahead: held, then delivered.
	at := o.Now.Add(o.ScheduleIn).UTC().Truncate(time.Second).Add(time.Second)
	for _, rm := range []reminder{reminders[0], reminders[4], reminders[8]} {
		add(Request{Channel: "sms", To: next(rm.lang), Text: rm.text, NotBefore: &at}, "scheduled "+at.Format(time.TimeOnly)+" UTC", "delivered")
	}
	// Expired before it could be sent.
	past := o.Now.Add(-time.Minute).UTC().Truncate(time.Second)
	add(Request{Channel: "sms", To: next("en"), Text: reminders[0].text, ExpiresAt: &past}, "expires_at in the past", "expired")
	// Invalid requests: rejected.
	add(Request{Channel: "sms", To: "not-a-number", Text: reminders[0].text}, "invalid: to is not a phone number", "rejected")
	add(Request{Channel: "sms", To: next("fi")}, "invalid: sms without text", "rejected")
	add(Request{Channel: "sms", To: next("fi"), Text: reminders[5].text, Encoding: "gsm7"}, "invalid: encoding gsm7 on a text with emoji", "rejected")
	add(Request{Channel: "voice", To: next("sv"), Pool: "no-such-pool"}, "invalid: unknown pool", "rejected")
	// The same id twice: the second is a duplicate.
	dupTo := next("fi")
	dupID := o.RunID + "-dup"
	add(Request{ID: dupID, Channel: "sms", To: dupTo, Text: reminders[3].text}, "original of a duplicated id", "delivered", "duplicate")
	v := c.Items[len(c.Items)-1]
	c.Items = append(c.Items, Item{ID: v.ID, Key: v.Key, Value: v.Value, Note: "the same id again"}) // no Want: counted on the first

	// Voice reminders from the pool: three numbers, round robin.
	calls := []string{CallAnswer, CallAnswer, CallBusy, CallAnswer, CallNoAnswr, CallAnswer, CallDecline, CallAnswer, CallBusy}
	want := map[string]string{CallAnswer: "completed", CallBusy: "busy", CallDecline: "declined", CallNoAnswr: "no_answer"}
	for i, b := range calls {
		to := fmt.Sprintf("+3584020%05d", i+1)
		c.Calls[to] = b
		add(Request{Channel: "voice", To: to, Pool: c.Pool, Voice: &Voice{RingTimeoutS: o.RingTimeoutS, MaxDurationS: 5}},
			"voice reminder, callee "+b, want[b])
	}
	return c
}

// WantTerminals is the number of terminal events the campaign must produce.
func (c Campaign) WantTerminals() int {
	n := 0
	for _, it := range c.Items {
		n += len(it.Want)
	}
	return n
}

// Mismatch is an id that did not reach the terminal statuses it should have.
type Mismatch struct {
	ID   string
	Note string
	Want []string
	Got  []string
}

// Check compares every item's wanted terminal statuses with those t observed.
func (c Campaign) Check(t *Tally) []Mismatch {
	var bad []Mismatch
	for _, it := range c.Items {
		if len(it.Want) == 0 {
			continue
		}
		got := t.Terminals(it.ID)
		w, g := slices.Clone(it.Want), slices.Clone(got)
		slices.Sort(w)
		slices.Sort(g)
		if !slices.Equal(w, g) {
			bad = append(bad, Mismatch{ID: it.ID, Note: it.Note, Want: it.Want, Got: got})
		}
	}
	return bad
}

// Links are where a demo user looks next.
type Links struct {
	Control string // control plane base URL, e.g. http://127.0.0.1:34567 ("" when off)
	Token   string // the demo admin token
	Brokers []string
	SMSC    string
	SIP     string
	Kept    bool // the peers stay up after the summary (demo --keep)
}

// WriteSummary writes what the campaign did: requests by terminal status, segments (the
// billing count), receipts, calls by outcome and by caller number, throughput, the
// mismatches, and where to look next.
func (c Campaign) WriteSummary(w io.Writer, s TallySnapshot, elapsed time.Duration, bad []Mismatch, l Links) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(f string, a ...any) { fmt.Fprintf(tw, f+"\n", a...) }
	ids := map[string]bool{}
	for _, it := range c.Items {
		ids[it.ID] = true
	}
	p("\nSummary of campaign %q", c.Name)
	p("  requests\t%d records, %d ids", len(c.Items), len(ids))
	p("  by terminal status\t%s", joinCounts(s.TerminalEvents))
	p("  segments sent\t%d (the billing count)", s.Segments)
	p("  receipts\t%d", s.Receipts)
	calls := map[string]int{}
	for _, m := range s.Calls {
		for k, v := range m {
			calls[k] += v
		}
	}
	p("  calls by outcome\t%s", joinCounts(calls))
	for _, from := range slices.Sorted(maps.Keys(s.Calls)) {
		p("  calls from %s\t%s", from, joinCounts(s.Calls[from]))
	}
	if elapsed > 0 {
		p("  throughput\t%.1f requests/s over %v", float64(s.Done)/elapsed.Seconds(), elapsed.Round(10*time.Millisecond))
	}
	if s.Latency.Count > 0 {
		p("  latency produce → submit_sm_resp\tp50 %.1f ms, p99 %.1f ms, max %.1f ms", s.Latency.P50, s.Latency.P99, s.Latency.Max)
	}
	if len(bad) == 0 {
		p("  expectations\tevery request reached its expected terminal status")
	} else {
		p("  expectations\t%d requests did NOT reach their expected terminal status:", len(bad))
		for _, m := range bad {
			got := strings.Join(m.Got, ",")
			if got == "" {
				got = "(none)"
			}
			p("    %s\twant %s, got %s\t%s", m.ID, strings.Join(m.Want, ","), got, m.Note)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if l.Kept {
		fmt.Fprintln(w, "\nWhere to look next (up until Ctrl-C):")
	} else {
		fmt.Fprintln(w, "\nWhere to look next (run `sendcore demo --keep` to keep these up):")
	}
	if l.Control != "" {
		auth := fmt.Sprintf("-H 'Authorization: Bearer %s'", l.Token)
		fmt.Fprintf(w, "  control plane   %s  (token %s)\n", l.Control, l.Token)
		fmt.Fprintf(w, "  metrics         curl -s %s/metrics | grep ^sendcore_\n", l.Control)
		fmt.Fprintf(w, "  health          curl -s %s/readyz\n", l.Control)
		fmt.Fprintf(w, "  a message       curl -s %s %s/v1/messages/%s\n", auth, l.Control, c.Items[0].ID)
		fmt.Fprintf(w, "  connections     curl -s %s %s/v1/connections\n", auth, l.Control)
		fmt.Fprintf(w, "  the pool        curl -s %s %s/v1/pools/%s\n", auth, l.Control, c.Pool)
		fmt.Fprintf(w, "  an opt-out      curl -s %s %s/v1/optouts/default/sms/%s\n", auth, l.Control, strings.ReplaceAll(c.OptOuts[0], "+", "%2B"))
		fmt.Fprintf(w, "  segmentation    curl -s %s -d '{\"text\":\"Hei 👋 €\"}' %s/v1/segment\n", auth, l.Control)
	}
	if len(l.Brokers) > 0 {
		fmt.Fprintf(w, "  kafka           %s (topics sendcore.requests, sendcore.events, sendcore.dlq)\n", strings.Join(l.Brokers, ","))
	}
	if l.SMSC != "" || l.SIP != "" {
		fmt.Fprintf(w, "  smsc simulator  %s    sip endpoint %s\n", l.SMSC, l.SIP)
	}
	return nil
}
