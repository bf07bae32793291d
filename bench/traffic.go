package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/sendcore/sendcore/dispatch"
)

// ErrInvalid reports bad bench settings; the message names the field.
var ErrInvalid = errors.New("bench: invalid settings")

// Traffic kinds, carried in meta[MetaKind].
const (
	KindGSM      = "gsm"       // GSM-7, one segment
	KindGSMMulti = "gsm_multi" // GSM-7 with extension characters, several segments
	KindUCS2     = "ucs2"      // UCS-2 with emoji, one segment
	KindVoice    = "voice"     // a voice call
)

// Texts of each SMS kind: realistic payment reminders. Their segment counts are fixed
// (tested against the segment package): GSM 1, GSM multi-part 2, UCS-2 1.
const (
	TextGSM = "Reminder: invoice 48213 of 42.50 EUR is due on 15 June. Pay at example.com/pay. Reply STOP to opt out."
	// TextGSMMulti uses €, [ ] and ~, which take two septets each, and needs two segments.
	TextGSMMulti = "Payment reminder [invoice 48213]: 1 250,00 € is due on 15 June. " +
		"Amounts over 1 000 € can be split ~ ask us about instalments {3, 6 or 12 months}. " +
		"If you have already paid, thank you and please ignore this message. Reply STOP to opt out."
	// TextUCS2 has emoji (two UTF-16 units each) and stays within one UCS-2 segment (70 units).
	TextUCS2 = "Muistutus 🔔 lasku 48213 (42,50 €) erääntyy 15.6. Kiitos! ✅"
)

// Mix is the share of each kind in the traffic; GSM one-part takes the rest.
type Mix struct {
	UCS2      float64 `json:"ucs2"`
	Multipart float64 `json:"multipart"`
	Voice     float64 `json:"voice"`
}

// Validate checks that every share is in [0,1] and that they sum to at most 1.
func (m Mix) Validate() error {
	for _, s := range []struct {
		name string
		v    float64
	}{{"ucs2", m.UCS2}, {"multipart", m.Multipart}, {"voice", m.Voice}} {
		if s.v < 0 || s.v > 1 {
			return fmt.Errorf("%w: %s: must be 0..1, got %v", ErrInvalid, s.name, s.v)
		}
	}
	if sum := m.UCS2 + m.Multipart + m.Voice; sum > 1+1e-9 {
		return fmt.Errorf("%w: ucs2+multipart+voice: must be at most 1, got %v", ErrInvalid, sum)
	}
	return nil
}

// kind maps u in [0,1) to a kind according to the shares.
func (m Mix) kind(u float64) string {
	switch {
	case u < m.Voice:
		return KindVoice
	case u < m.Voice+m.UCS2:
		return KindUCS2
	case u < m.Voice+m.UCS2+m.Multipart:
		return KindGSMMulti
	}
	return KindGSM
}

// Traffic describes the requests a Generator produces. The zero value is not valid: set
// Requests or Duration.
type Traffic struct {
	// Requests is how many requests to produce; 0 with Duration set: as many as fit.
	Requests int
	// Duration bounds the production time; 0: until Requests are produced.
	Duration time.Duration
	// Rate is the target in requests per second (open loop: the schedule does not wait
	// for the pipeline); 0 produces as fast as the broker takes them.
	Rate float64
	Mix  Mix
	// Recipients is the number of distinct E.164 numbers requests go to (default 10000);
	// they alternate between Finnish (+35840…) and Swedish (+4670…) mobile numbers.
	Recipients int
	// RunID prefixes every request id ("<RunID>-<n>"), so that runs never share ids.
	RunID  string
	Tenant string
	// Campaign is carried in every request.
	Campaign string
	// VoicePool is the rotation pool voice requests take their caller number from.
	VoicePool string
	// DLR asks for delivery receipts (contract §2 `dlr`).
	DLR bool
	// Seed makes the mix and the recipients reproducible.
	Seed uint64
}

// Validate checks the traffic settings and names the first bad field.
func (t Traffic) Validate() error {
	switch {
	case t.Requests < 0:
		return fmt.Errorf("%w: requests: must be >= 0, got %d", ErrInvalid, t.Requests)
	case t.Duration < 0:
		return fmt.Errorf("%w: duration: must be >= 0, got %v", ErrInvalid, t.Duration)
	case t.Requests == 0 && t.Duration == 0:
		return fmt.Errorf("%w: requests or duration: one must be set", ErrInvalid)
	case t.Rate < 0:
		return fmt.Errorf("%w: rate: must be >= 0, got %v", ErrInvalid, t.Rate)
	case t.Recipients < 0:
		return fmt.Errorf("%w: recipients: must be >= 0, got %d", ErrInvalid, t.Recipients)
	case t.RunID == "":
		return fmt.Errorf("%w: run id: must not be empty", ErrInvalid)
	case t.Mix.Voice > 0 && t.VoicePool == "":
		return fmt.Errorf("%w: voice pool: must be set when the voice share is > 0", ErrInvalid)
	}
	return t.Mix.Validate()
}

// Recipient returns the i-th recipient number (0 ≤ i): even i Finnish, odd i Swedish
// mobile numbers, all valid E.164.
func Recipient(i int) string {
	if i%2 == 0 {
		return "+35840" + pad7(i/2)
	}
	return "+4670" + pad7(i/2)
}

// OptOutNumber returns the i-th number of the opted-out set the bench preloads: Finnish
// numbers (+35850…) disjoint from every Recipient, so opt-out lookups are the misses a
// large list causes in production.
func OptOutNumber(i int) string { return "+35850" + pad7(i) }

func pad7(n int) string {
	s := strconv.Itoa(n % 10_000_000)
	for len(s) < 7 {
		s = "0" + s
	}
	return s
}

// builder makes the requests of one Traffic; it is not safe for concurrent use.
type builder struct {
	t   Traffic
	rng *rand.Rand
	dlr bool
	// slab is where keys and values are written, each capped so that an append by the
	// holder cannot reach its neighbour. A full slab is never written again: the Kafka
	// writer keeps a message until its batch is acknowledged, so a slab is dropped, not
	// reused, and one allocation serves many requests.
	slab []byte
}

// slabSize holds about a hundred requests (a GSM-7 multi-part one is ~460 bytes).
const slabSize = 64 << 10

func newBuilder(t Traffic) *builder {
	if t.Recipients == 0 {
		t.Recipients = 10000
	}
	return &builder{t: t, rng: rand.New(rand.NewPCG(t.Seed, t.Seed^0x9e3779b97f4a7c15)), dlr: t.DLR}
}

// build returns the key (the recipient) and JSON value of request n produced at t0, and
// its kind. The value is what encoding/json.Marshal writes for the Request (TestBuild).
func (b *builder) build(n int, t0 time.Time) (key, value []byte, kind string) {
	kind = b.t.Mix.kind(b.rng.Float64())
	recipient := b.rng.IntN(b.t.Recipients)
	if cap(b.slab)-len(b.slab) < 1024 {
		b.slab = make([]byte, 0, slabSize)
	}
	start := len(b.slab)
	s := appendRecipient(b.slab, recipient)
	key = s[start:len(s):len(s)]
	vstart := len(s)
	s = append(s, `{"id":`...)
	s = dispatch.AppendJSONString(s, b.t.RunID)
	s = append(s[:len(s)-1], '-') // reopen the string: id is "<RunID>-<n>"
	s = strconv.AppendInt(s, int64(n), 10)
	s = append(s, '"')
	channel, pool, text := "sms", "", ""
	switch kind {
	case KindVoice:
		channel, pool = "voice", b.t.VoicePool
	case KindGSM:
		text = TextGSM
	case KindGSMMulti:
		text = TextGSMMulti
	case KindUCS2:
		text = TextUCS2
	}
	s = append(s, `,"channel":"`...)
	s = append(s, channel...)
	s = append(s, '"')
	s = appendOmitEmpty(s, `,"tenant":`, b.t.Tenant)
	s = append(s, `,"to":"`...)
	s = append(s, key...) // E.164: nothing to escape
	s = append(s, '"')
	s = appendOmitEmpty(s, `,"pool":`, pool)
	s = appendOmitEmpty(s, `,"text":`, text)
	s = appendOmitEmpty(s, `,"campaign":`, b.t.Campaign)
	if channel == "sms" {
		s = append(s, `,"dlr":`...)
		s = strconv.AppendBool(s, b.dlr)
	} else {
		s = append(s, `,"voice":{"ring_timeout_s":5,"max_duration_s":1}`...)
	}
	s = append(s, `,"meta":{"`+MetaKind+`":"`...) // meta keys sorted: bench_kind < bench_t0
	s = append(s, kind...)
	s = append(s, `","`+MetaT0+`":"`...)
	s = strconv.AppendInt(s, t0.UnixNano(), 10)
	s = append(s, `"}}`...)
	b.slab = s
	return key, s[vstart:len(s):len(s)], kind
}

// appendRecipient appends Recipient(i) without its intermediate strings.
func appendRecipient(b []byte, i int) []byte {
	if i%2 == 0 {
		b = append(b, "+35840"...)
	} else {
		b = append(b, "+4670"...)
	}
	n := (i / 2) % 10_000_000
	var d [7]byte
	for k := 6; k >= 0; k-- {
		d[k] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[:]...)
}
