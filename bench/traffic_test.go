package bench

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sendcore/sendcore/segment"
)

// The texts of each kind have the segment counts the bench's mix promises.
func TestTextSegments(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		enc        segment.Encoding
		segments   int
	}{
		{"gsm", TextGSM, segment.GSM7, 1},
		{"gsm_multi", TextGSMMulti, segment.GSM7, 2},
		{"ucs2", TextUCS2, segment.UCS2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := segment.CountText(tc.text, segment.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if c.Encoding != tc.enc || c.Segments != tc.segments {
				t.Fatalf("CountText = %v %d segments, want %v %d", c.Encoding, c.Segments, tc.enc, tc.segments)
			}
		})
	}
}

func TestMixValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mix  Mix
		bad  string // "" = valid; else a word the error names
	}{
		{"zero", Mix{}, ""},
		{"all voice", Mix{Voice: 1}, ""},
		{"sum one", Mix{UCS2: 0.2, Multipart: 0.3, Voice: 0.5}, ""},
		{"negative", Mix{UCS2: -0.1}, "ucs2"},
		{"over one", Mix{Multipart: 1.5}, "multipart"},
		{"sum over one", Mix{UCS2: 0.6, Voice: 0.6}, "at most 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.mix.Validate()
			if tc.bad == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.bad) {
				t.Fatalf("err = %v, want ErrInvalid naming %q", err, tc.bad)
			}
		})
	}
}

func TestTrafficValidate(t *testing.T) {
	ok := Traffic{Requests: 10, RunID: "r"}
	for _, tc := range []struct {
		name string
		mod  func(*Traffic)
		bad  string
	}{
		{"ok", func(*Traffic) {}, ""},
		{"duration only", func(t *Traffic) { t.Requests, t.Duration = 0, time.Second }, ""},
		{"neither", func(t *Traffic) { t.Requests = 0 }, "requests or duration"},
		{"negative rate", func(t *Traffic) { t.Rate = -1 }, "rate"},
		{"no run id", func(t *Traffic) { t.RunID = "" }, "run id"},
		{"voice without pool", func(t *Traffic) { t.Mix.Voice = 0.1 }, "voice pool"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := ok
			tc.mod(&tr)
			err := tr.Validate()
			if (err == nil) != (tc.bad == "") || (err != nil && !strings.Contains(err.Error(), tc.bad)) {
				t.Fatalf("err = %v, want one naming %q", err, tc.bad)
			}
		})
	}
}

// The builder writes contract §2 requests keyed by recipient, with the mix's shares, t0
// in meta, and recipients spread over the configured number of valid E.164 numbers.
func TestBuilder(t *testing.T) {
	tr := Traffic{Requests: 4000, RunID: "run1", Tenant: "default", Campaign: "c", VoicePool: "p", DLR: true,
		Mix: Mix{UCS2: 0.25, Multipart: 0.25, Voice: 0.25}, Recipients: 100, Seed: 7}
	b := newBuilder(tr)
	t0 := time.Unix(1700000000, 123)
	kinds := map[string]int{}
	tos := map[string]bool{}
	for n := range tr.Requests {
		key, value, kind := b.build(n, t0)
		var r Request
		if err := json.Unmarshal(value, &r); err != nil {
			t.Fatal(err)
		}
		if r.ID != "run1-"+strconv.Itoa(n) || string(key) != r.To || r.Meta[MetaKind] != kind {
			t.Fatalf("request %d: id %q key %q to %q kind %q/%q", n, r.ID, key, r.To, r.Meta[MetaKind], kind)
		}
		if r.Meta[MetaT0] != strconv.FormatInt(t0.UnixNano(), 10) {
			t.Fatalf("t0 = %q", r.Meta[MetaT0])
		}
		switch kind {
		case KindVoice:
			if r.Channel != "voice" || r.Pool != "p" || r.Text != "" || r.Voice == nil {
				t.Fatalf("voice request %+v", r)
			}
		default:
			if r.Channel != "sms" || r.Text == "" || r.DLR == nil || !*r.DLR {
				t.Fatalf("sms request %+v", r)
			}
		}
		kinds[kind]++
		tos[r.To] = true
	}
	for _, k := range []string{KindGSM, KindGSMMulti, KindUCS2, KindVoice} {
		if kinds[k] < 850 || kinds[k] > 1150 { // 1000 expected each
			t.Errorf("kind %s: %d of 4000, want about 1000", k, kinds[k])
		}
	}
	if len(tos) < 90 || len(tos) > 100 {
		t.Errorf("%d distinct recipients, want about 100", len(tos))
	}
	for to := range tos {
		if !validE164(to) {
			t.Errorf("recipient %q is not E.164", to)
		}
	}
}

func validE164(s string) bool {
	return len(s) >= 8 && len(s) <= 16 && s[0] == '+' && s[1] != '0' && strings.Trim(s[1:], "0123456789") == ""
}

// Recipients and opted-out numbers are valid E.164 and never overlap.
func TestNumbers(t *testing.T) {
	seen := map[string]bool{}
	for i := range 2000 {
		r := Recipient(i)
		if !validE164(r) || seen[r] {
			t.Fatalf("Recipient(%d) = %q (valid %v, repeated %v)", i, r, validE164(r), seen[r])
		}
		seen[r] = true
	}
	for i := range 2000 {
		o := OptOutNumber(i)
		if !validE164(o) || seen[o] {
			t.Fatalf("OptOutNumber(%d) = %q (valid %v, overlaps %v)", i, o, validE164(o), seen[o])
		}
	}
}
