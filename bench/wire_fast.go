package bench

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/sendcore/sendcore/dispatch"
)

// Hand-written JSON for the two hot paths of the bench: decoding every status event and
// encoding every request. They run in the same process as the gateway being measured,
// which has 2 cores; encoding/json's reflection costs ~10 µs per event, about a tenth of
// the CPU of a bench run, taken from the pipeline it measures. Both are exact: the decoder
// returns what encoding/json.Unmarshal returns or, on anything it does not fully
// understand, hands the record to encoding/json (FuzzDecodeEvent); the encoder writes what
// encoding/json.Marshal writes (TestAppendRequest, FuzzAppendRequest).

// maxSkipDepth bounds the nesting of an unknown value the decoder skips; deeper ones go to
// encoding/json (whose own bound is 10000).
const maxSkipDepth = 64

// eventDecoder reads one event; buf is scratch for strings with escapes.
type eventDecoder struct {
	b   []byte
	i   int
	buf []byte
}

// decodeEventFast decodes value when it is a JSON object it fully understands: ok false
// means "not understood", and the caller must use encoding/json (which also reports the
// errors). With ok true, ev is what encoding/json.Unmarshal would return, with a nil error.
func decodeEventFast(value []byte) (ev Event, ok bool) {
	d := eventDecoder{b: value}
	d.ws()
	if !d.eat('{') {
		return Event{}, false
	}
	d.ws()
	if d.eat('}') {
		return ev, d.end()
	}
	for {
		if !d.eat('"') {
			return Event{}, false
		}
		key, ok := d.str()
		if !ok {
			return Event{}, false
		}
		d.ws()
		if !d.eat(':') {
			return Event{}, false
		}
		d.ws()
		if !d.field(&ev, key) {
			return Event{}, false
		}
		d.ws()
		if d.eat(',') {
			d.ws()
			continue
		}
		if d.eat('}') {
			return ev, d.end()
		}
		return Event{}, false
	}
}

// field decodes the value of key into ev, or skips it when ev has no such field.
func (d *eventDecoder) field(ev *Event, key []byte) bool {
	switch string(key) {
	case "id":
		return d.strField(&ev.ID, false)
	case "tenant":
		return d.strField(&ev.Tenant, true)
	case "campaign":
		return d.strField(&ev.Campaign, true)
	case "channel":
		return d.strField(&ev.Channel, true)
	case "to":
		return d.strField(&ev.To, false)
	case "from":
		return d.strField(&ev.From, true)
	case "status":
		return d.strField(&ev.Status, true)
	case "reason":
		return d.strField(&ev.Reason, true)
	case "encoding":
		return d.strField(&ev.Encoding, true)
	case "connection":
		return d.strField(&ev.Connection, true)
	case "segments":
		n, ok := d.intField(strconv.IntSize)
		if ok && n != nil {
			ev.Segments = int(*n)
		}
		return ok
	case "duration_ms":
		n, ok := d.intField(64)
		if ok && n != nil {
			ev.DurationMS = *n
		}
		return ok
	case "ts":
		return d.tsField(ev)
	case "meta":
		return d.metaField(ev)
	}
	// encoding/json matches keys case-insensitively (with Unicode folding, so "ſ" matches
	// "s"): a key with an upper-case or non-ASCII letter might be one of ours.
	for _, c := range key {
		if c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return d.skip(0)
}

// strField decodes a string (null leaves dst as it is, as encoding/json does); with
// common, the words every event repeats are not allocated again.
func (d *eventDecoder) strField(dst *string, common bool) bool {
	if d.eatNull() {
		return true
	}
	if !d.eat('"') {
		return false
	}
	s, ok := d.str()
	if ok && common {
		*dst = intern(s)
	} else if ok {
		*dst = string(s)
	}
	return ok
}

// intern returns string(s) without allocating for the words most events carry: statuses,
// channels, encodings (ucs2 is KindUCS2), the bench's own tenant, campaign and meta.
func intern(s []byte) string {
	switch string(s) { // compiled to comparisons, no conversion
	case "submitted":
		return "submitted"
	case "accepted":
		return "accepted"
	case "delivered":
		return "delivered"
	case "undelivered":
		return "undelivered"
	case "failed":
		return "failed"
	case "completed":
		return "completed"
	case "rejected":
		return "rejected"
	case "sms":
		return "sms"
	case "voice":
		return "voice"
	case "gsm7":
		return "gsm7"
	case "default":
		return "default"
	case "bench":
		return "bench"
	case MetaKind:
		return MetaKind
	case MetaT0:
		return MetaT0
	case KindGSM:
		return KindGSM
	case KindGSMMulti:
		return KindGSMMulti
	case KindUCS2:
		return KindUCS2
	}
	return string(s)
}

// intField decodes an integer of bits bits; nil for null. A number with a fraction or
// an exponent, or out of range, is an error for encoding/json: not understood.
func (d *eventDecoder) intField(bits int) (*int64, bool) {
	if d.eatNull() {
		return nil, true
	}
	start := d.i
	if !d.number() {
		return nil, false
	}
	n, err := strconv.ParseInt(string(d.b[start:d.i]), 10, bits)
	if err != nil {
		return nil, false
	}
	return &n, true
}

// tsField decodes ts the way encoding/json does: time.Time's UnmarshalJSON on the raw
// literal (escapes not decoded), which parses RFC 3339 strictly.
func (d *eventDecoder) tsField(ev *Event) bool {
	if d.eatNull() {
		return true
	}
	start := d.i
	if !d.eat('"') || !d.skipString() {
		return false
	}
	return ev.TS.UnmarshalJSON(d.b[start:d.i]) == nil
}

// metaField decodes a flat object of strings; encoding/json fills an existing map (a
// repeated "meta" key merges) and null sets it to nil.
func (d *eventDecoder) metaField(ev *Event) bool {
	if d.eatNull() {
		ev.Meta = nil
		return true
	}
	if !d.eat('{') {
		return false
	}
	if ev.Meta == nil {
		ev.Meta = make(map[string]string, 4)
	}
	d.ws()
	if d.eat('}') {
		return true
	}
	for {
		if !d.eat('"') {
			return false
		}
		k, ok := d.str()
		if !ok {
			return false
		}
		key := intern(k)
		d.ws()
		if !d.eat(':') {
			return false
		}
		d.ws()
		if !d.eat('"') { // null, a number…: encoding/json's business
			return false
		}
		v, ok := d.str()
		if !ok {
			return false
		}
		ev.Meta[key] = intern(v)
		d.ws()
		if d.eat(',') {
			d.ws()
			continue
		}
		return d.eat('}')
	}
}

// str decodes a string whose opening quote is read, as encoding/json unquotes it: escapes
// (a lone or reversed surrogate becomes U+FFFD), invalid UTF-8 as U+FFFD. The result
// aliases d.b or d.buf, valid until the next call.
func (d *eventDecoder) str() ([]byte, bool) {
	start := d.i
	var high byte // OR of the bytes: ≥ 0x80 when UTF-8 must be checked
	for i := start; i < len(d.b); i++ {
		switch c := d.b[i]; {
		case c == '"':
			s := d.b[start:i]
			if high >= utf8.RuneSelf && !utf8.Valid(s) {
				return d.strSlow(start)
			}
			d.i = i + 1
			return s, true
		case c == '\\':
			return d.strSlow(start)
		case c < 0x20:
			return nil, false
		default:
			high |= c
		}
	}
	return nil, false
}

func (d *eventDecoder) strSlow(start int) ([]byte, bool) {
	out := d.buf[:0]
	b := d.b
	for i := start; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			d.i, d.buf = i+1, out
			return out, true
		case c < 0x20:
			return nil, false
		case c == '\\':
			if i+1 >= len(b) {
				return nil, false
			}
			switch e := b[i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(b[i:])
				if r < 0 {
					return nil, false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if dec := utf16.DecodeRune(r, hex4(b[i:])); dec != utf8.RuneError {
						i += 6
						out = utf8.AppendRune(out, dec)
						continue
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
				continue
			default:
				return nil, false
			}
			i += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			out = utf8.AppendRune(out, r)
			i += size
		}
	}
	return nil, false
}

// hex4 returns the code unit of a `\uXXXX` at the start of b, or -1.
func hex4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// skip passes over one valid JSON value of any kind.
func (d *eventDecoder) skip(depth int) bool {
	if d.i >= len(d.b) || depth > maxSkipDepth {
		return false
	}
	switch c := d.b[d.i]; {
	case c == '"':
		d.i++
		return d.skipString()
	case c == '{':
		d.i++
		d.ws()
		if d.eat('}') {
			return true
		}
		for {
			if !d.eat('"') || !d.skipString() {
				return false
			}
			d.ws()
			if !d.eat(':') {
				return false
			}
			d.ws()
			if !d.skip(depth + 1) {
				return false
			}
			d.ws()
			if d.eat(',') {
				d.ws()
				continue
			}
			return d.eat('}')
		}
	case c == '[':
		d.i++
		d.ws()
		if d.eat(']') {
			return true
		}
		for {
			if !d.skip(depth + 1) {
				return false
			}
			d.ws()
			if d.eat(',') {
				d.ws()
				continue
			}
			return d.eat(']')
		}
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	case c == 't':
		return d.lit("true")
	case c == 'f':
		return d.lit("false")
	case c == 'n':
		return d.lit("null")
	}
	return false
}

// skipString passes over the rest of a string whose opening quote is read, checking what
// JSON's grammar requires (no control characters, valid escapes); any other byte is
// allowed, as encoding/json's scanner allows it.
func (d *eventDecoder) skipString() bool {
	b := d.b
	for i := d.i; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			d.i = i + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if hex4(b[i:]) < 0 {
					return false
				}
				i += 5
			default:
				return false
			}
		}
	}
	return false
}

// number passes over a number in JSON's grammar:
// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func (d *eventDecoder) number() bool {
	b, i := d.b, d.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return false
		}
		i = j
	}
	d.i = i
	return true
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

func (d *eventDecoder) lit(s string) bool {
	if len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		return false
	}
	d.i += len(s)
	return true
}

func (d *eventDecoder) eatNull() bool {
	if d.i < len(d.b) && d.b[d.i] == 'n' {
		return d.lit("null")
	}
	return false
}

func (d *eventDecoder) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// ws passes over JSON whitespace.
func (d *eventDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// end reports whether only whitespace follows.
func (d *eventDecoder) end() bool {
	d.ws()
	return d.i == len(d.b)
}

// appendRequest appends r as encoding/json.Marshal(r) writes it. ok false (b unchanged)
// for a request with not_before or expires_at, which it leaves to encoding/json.
func appendRequest(b []byte, r *Request) (_ []byte, ok bool) {
	if r.NotBefore != nil || r.ExpiresAt != nil {
		return b, false
	}
	b = append(b, `{"id":`...)
	b = dispatch.AppendJSONString(b, r.ID)
	b = append(b, `,"channel":`...)
	b = dispatch.AppendJSONString(b, r.Channel)
	b = appendOmitEmpty(b, `,"tenant":`, r.Tenant)
	b = append(b, `,"to":`...)
	b = dispatch.AppendJSONString(b, r.To)
	b = appendOmitEmpty(b, `,"from":`, r.From)
	b = appendOmitEmpty(b, `,"pool":`, r.Pool)
	b = appendOmitEmpty(b, `,"text":`, r.Text)
	b = appendOmitEmpty(b, `,"encoding":`, r.Encoding)
	b = appendOmitEmpty(b, `,"campaign":`, r.Campaign)
	b = appendOmitEmpty(b, `,"module":`, r.Module)
	if r.DLR != nil {
		b = append(b, `,"dlr":`...)
		b = strconv.AppendBool(b, *r.DLR)
	}
	if v := r.Voice; v != nil {
		b = append(b, `,"voice":{`...)
		n := len(b)
		if v.RingTimeoutS != 0 {
			b = append(b, `,"ring_timeout_s":`...)
			b = strconv.AppendInt(b, int64(v.RingTimeoutS), 10)
		}
		if v.MaxDurationS != 0 {
			b = append(b, `,"max_duration_s":`...)
			b = strconv.AppendInt(b, int64(v.MaxDurationS), 10)
		}
		b = appendOmitEmpty(b, `,"prompt":`, v.Prompt)
		if len(b) > n { // drop the first field's comma
			b = append(b[:n], b[n+1:]...)
		}
		b = append(b, '}')
	}
	if len(r.Meta) > 0 {
		b = append(b, `,"meta":`...)
		b = dispatch.AppendJSONStringMap(b, r.Meta)
	}
	return append(b, '}'), true
}

func appendOmitEmpty(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return dispatch.AppendJSONString(append(b, key...), s)
}
