package dispatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/sendcore/sendcore/segment"
)

// Rejection reasons (contract §3 `rejected`).
const (
	ReasonInvalidJSON      = "invalid_json"
	ReasonMissingField     = "missing_field"
	ReasonInvalidAddress   = "invalid_address"
	ReasonInvalidField     = "invalid_field"
	ReasonEncodingMismatch = "encoding_mismatch"
	ReasonTooLong          = "too_long"
	ReasonUnknownPool      = "unknown_pool"
	ReasonNoRoute          = "no_route"
)

// Bounds applied before the JSON decoder sees a record, so that junk, huge values and
// deeply nested documents cost little and never stop a partition.
const (
	maxIDLen      = 128
	maxJSONDepth  = 8
	maxVoiceRingS = 300
	maxVoiceDurS  = 24 * 3600
)

// invalid is a validation failure: the reason code of the rejected event, the detail
// naming the field and value, and whether the id could be read.
type invalid struct {
	reason string
	detail string
}

func (e *invalid) Error() string { return e.reason + ": " + e.detail }

func fail(reason, format string, args ...any) *invalid {
	return &invalid{reason: reason, detail: fmt.Sprintf(format, args...)}
}

// parsed is a request that passed decoding; bad is set when validation failed (then the
// id is set when it could be read).
type parsed struct {
	req   Request
	to    string        // normalised recipient
	count segment.Count // billing count (sms)
	opt   segment.Options
	bad   *invalid
}

// countFunc is segment.CountText; a field of the pipeline so the stage is testable alone.
type countFunc func(text string, opt segment.Options) (segment.Count, error)

// parseRequest decodes and validates one record value (contract §2). It never panics and
// bounds its work by maxBytes and maxJSONDepth before decoding.
func parseRequest(value []byte, maxBytes int, smartDefault bool, count countFunc) parsed {
	var p parsed
	if len(value) > maxBytes {
		p.bad = fail(ReasonInvalidJSON, "value: %d bytes exceeds the limit of %d", len(value), maxBytes)
		return p
	}
	if !utf8.Valid(value) {
		p.bad = fail(ReasonInvalidJSON, "value: not valid UTF-8")
		return p
	}
	var err error
	if !decodeRequestFast(value, &p.req) {
		// The fast path takes nothing nested deeper than meta; what it refuses is
		// bounded before encoding/json recurses into it.
		if d := jsonDepth(value); d > maxJSONDepth {
			p.req = Request{}
			p.bad = fail(ReasonInvalidJSON, "value: nesting depth %d exceeds %d", d, maxJSONDepth)
			return p
		}
		p.req = Request{}
		err = json.Unmarshal(value, &p.req)
	}
	if err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			p.req = Request{}
			p.bad = fail(ReasonInvalidJSON, "value: %v at offset %d", se, se.Offset)
			return p
		case errors.As(err, &te):
			if te.Field == "" {
				p.req = Request{}
				p.bad = fail(ReasonInvalidJSON, "value: must be a JSON object, got %s", te.Value)
				return p
			}
			if te.Field == "id" {
				p.req.ID = ""
			}
			p.bad = fail(ReasonInvalidField, "%s: must be %s, got %s", te.Field, typeName(te.Type.String()), te.Value)
		default:
			// An Unmarshaler's error, e.g. a time that is not RFC 3339.
			p.bad = fail(ReasonInvalidField, "%v", err)
		}
	}
	if len(p.req.ID) > maxIDLen {
		id := p.req.ID
		p.req.ID = ""
		p.bad = fail(ReasonInvalidField, "id: longer than %d bytes: %.40q...", maxIDLen, id)
		return p
	}
	if p.bad != nil {
		return p
	}
	p.bad = validate(&p, smartDefault, count)
	return p
}

func typeName(t string) string {
	switch t {
	case "map[string]string":
		return "an object of strings"
	case "*dispatch.VoiceOptions", "dispatch.VoiceOptions":
		return "an object"
	case "*bool", "bool":
		return "a boolean"
	case "int":
		return "an integer"
	}
	return "a " + t
}

// validate checks the decoded request and fills the derived fields.
func validate(p *parsed, smartDefault bool, count countFunc) *invalid {
	r := &p.req
	if r.ID == "" {
		return fail(ReasonMissingField, "id: missing or empty")
	}
	if r.Channel == "" {
		return fail(ReasonMissingField, "channel: missing")
	}
	if r.Channel != ChannelSMS && r.Channel != ChannelVoice {
		return fail(ReasonInvalidField, "channel: must be \"sms\" or \"voice\", got %q", r.Channel)
	}
	if r.Tenant == "" {
		r.Tenant = "default"
	}
	if r.To == "" {
		return fail(ReasonMissingField, "to: missing")
	}
	to, err := NormalizeE164(r.To, "")
	if err != nil {
		return fail(ReasonInvalidAddress, "to: %q is not a phone number in international form", r.To)
	}
	p.to = to
	if r.From != "" {
		if !validFrom(r.From) {
			return fail(ReasonInvalidField, "from: %q is not an E.164 number, short code or alphanumeric sender ID of at most 11 characters", r.From)
		}
	}
	switch r.Priority {
	case "", PriorityHigh, PriorityNormal, PriorityBulk:
	default:
		return fail(ReasonInvalidField, "priority: must be high, normal or bulk, got %q", r.Priority)
	}
	if r.NotBefore != nil {
		t := r.NotBefore.UTC()
		r.NotBefore = &t
	}
	if r.ExpiresAt != nil {
		t := r.ExpiresAt.UTC()
		r.ExpiresAt = &t
	}
	if r.Channel == ChannelVoice {
		if v := r.Voice; v != nil {
			if v.RingTimeoutS < 0 || v.RingTimeoutS > maxVoiceRingS {
				return fail(ReasonInvalidField, "voice.ring_timeout_s: must be 0..%d, got %d", maxVoiceRingS, v.RingTimeoutS)
			}
			if v.MaxDurationS < 0 || v.MaxDurationS > maxVoiceDurS {
				return fail(ReasonInvalidField, "voice.max_duration_s: must be 0..%d, got %d", maxVoiceDurS, v.MaxDurationS)
			}
		}
		return nil
	}
	if r.Text == "" {
		return fail(ReasonMissingField, "text: missing or empty")
	}
	switch r.Encoding {
	case "", "auto":
		p.opt.Encoding = segment.Auto
	case "gsm7":
		p.opt.Encoding = segment.GSM7
	case "ucs2":
		p.opt.Encoding = segment.UCS2
	default:
		return fail(ReasonInvalidField, "encoding: must be auto, gsm7 or ucs2, got %q", r.Encoding)
	}
	p.opt.Smart = smartDefault
	if r.SmartEncoding != nil {
		p.opt.Smart = *r.SmartEncoding
	}
	c, err := count(r.Text, p.opt)
	if err != nil {
		var se *segment.Error
		if errors.As(err, &se) {
			return fail(se.Code, "text: %s", se.Detail)
		}
		return fail(ReasonInvalidField, "text: %v", err)
	}
	p.count = c
	return nil
}

// validFrom accepts an E.164 number, a short code (3..8 digits) or an alphanumeric
// sender ID (1..11 printable ASCII characters with at least one letter).
func validFrom(s string) bool {
	if strings.HasPrefix(s, "+") {
		_, err := NormalizeE164(s, "")
		return err == nil
	}
	digits, letters := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letters++
		case c == ' ', c == '-', c == '.', c == '&', c == '_':
		default:
			return false
		}
	}
	if letters == 0 {
		return digits >= 3 && digits <= 15 && digits == len(s)
	}
	return len(s) <= 11
}

// jsonDepth returns the maximum nesting depth of objects and arrays in b, ignoring
// brackets inside strings. It reads b once and allocates nothing; it does not validate.
func jsonDepth(b []byte) int {
	depth, max := 0, 0
	inStr, esc := false, false
	for _, c := range b {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			depth++
			if depth > max {
				max = depth
			}
			if max > maxJSONDepth {
				return max
			}
		case '}', ']':
			depth--
		}
	}
	return max
}

// decodeRequestFast decodes the common shape of a request without reflection: one JSON
// object whose keys are spelled exactly as in Request's tags, with string values, true or
// false for dlr and smart_encoding, and meta an object of strings. It reports false, with
// r in an unspecified state, on anything else (another key or spelling, a repeated key,
// null, numbers, times, voice, a \u escape of a surrogate, a syntax error, trailing
// data): the caller then uses encoding/json, whose result and errors stay the reference.
// When it reports true, r is exactly what json.Unmarshal would have produced
// (FuzzDecodeRequestFast). value must be valid UTF-8.
func decodeRequestFast(value []byte, r *Request) bool {
	d := fastDecoder{b: value}
	d.ws()
	if !d.eat('{') {
		return false
	}
	var seen uint32
	d.ws()
	if d.eat('}') {
		return d.end()
	}
	for {
		d.ws()
		key, ok := d.rawKey()
		if !ok {
			return false
		}
		d.ws()
		if !d.eat(':') {
			return false
		}
		d.ws()
		bit, dst, flag := requestField(r, key)
		if bit == 0 || seen&bit != 0 {
			return false
		}
		seen |= bit
		switch {
		case dst != nil:
			if *dst, ok = d.str(); !ok {
				return false
			}
		case flag != nil:
			v, ok := d.boolean()
			if !ok {
				return false
			}
			*flag = &v
		default: // meta
			if r.Meta, ok = d.stringMap(); !ok {
				return false
			}
		}
		d.ws()
		if d.eat(',') {
			continue
		}
		if d.eat('}') {
			return d.end()
		}
		return false
	}
}

// requestField returns the seen-bit of key and where its value goes: a string, a
// *bool, or (both nil) Meta. A zero bit means the fast path does not take key.
func requestField(r *Request, key []byte) (bit uint32, dst *string, flag **bool) {
	switch string(key) { // no allocation: compared in place
	case "id":
		return 1 << 0, &r.ID, nil
	case "channel":
		return 1 << 1, &r.Channel, nil
	case "tenant":
		return 1 << 2, &r.Tenant, nil
	case "to":
		return 1 << 3, &r.To, nil
	case "from":
		return 1 << 4, &r.From, nil
	case "pool":
		return 1 << 5, &r.Pool, nil
	case "text":
		return 1 << 6, &r.Text, nil
	case "encoding":
		return 1 << 7, &r.Encoding, nil
	case "campaign":
		return 1 << 8, &r.Campaign, nil
	case "module":
		return 1 << 9, &r.Module, nil
	case "priority":
		return 1 << 10, &r.Priority, nil
	case "smart_encoding":
		return 1 << 11, nil, &r.SmartEncoding
	case "dlr":
		return 1 << 12, nil, &r.DLR
	case "meta":
		return 1 << 13, nil, nil
	}
	return 0, nil, nil
}

type fastDecoder struct {
	b []byte
	i int
}

func (d *fastDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *fastDecoder) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// end reports whether only whitespace follows.
func (d *fastDecoder) end() bool {
	d.ws()
	return d.i == len(d.b)
}

// rawKey returns an object key without escapes, in place.
func (d *fastDecoder) rawKey() ([]byte, bool) {
	if !d.eat('"') {
		return nil, false
	}
	start := d.i
	for d.i < len(d.b) {
		switch c := d.b[d.i]; {
		case c == '"':
			d.i++
			return d.b[start : d.i-1], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		d.i++
	}
	return nil, false
}

func (d *fastDecoder) boolean() (bool, bool) {
	switch {
	case len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "true":
		d.i += 4
		return true, true
	case len(d.b)-d.i >= 5 && string(d.b[d.i:d.i+5]) == "false":
		d.i += 5
		return false, true
	}
	return false, false
}

// str decodes a JSON string.
func (d *fastDecoder) str() (string, bool) {
	if !d.eat('"') {
		return "", false
	}
	start := d.i
	for d.i < len(d.b) {
		switch c := d.b[d.i]; {
		case c == '"':
			d.i++
			return string(d.b[start : d.i-1]), true
		case c == '\\':
			return d.escaped(start)
		case c < 0x20:
			return "", false
		}
		d.i++
	}
	return "", false
}

// escaped decodes the rest of a string that has an escape at d.i; b[start:d.i] is plain.
func (d *fastDecoder) escaped(start int) (string, bool) {
	out := make([]byte, 0, d.i-start+16)
	out = append(out, d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			return "", false
		}
		e := d.b[d.i+1]
		d.i += 2
		switch e {
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
			if d.i+4 > len(d.b) {
				return "", false
			}
			var r rune
			for _, h := range d.b[d.i : d.i+4] {
				switch {
				case h >= '0' && h <= '9':
					h -= '0'
				case h >= 'a' && h <= 'f':
					h = h - 'a' + 10
				case h >= 'A' && h <= 'F':
					h = h - 'A' + 10
				default:
					return "", false
				}
				r = r<<4 | rune(h)
			}
			if r >= 0xD800 && r < 0xE000 { // surrogates: encoding/json's rules
				return "", false
			}
			d.i += 4
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return "", false
}

// stringMap decodes an object of strings into a new map (empty, not nil, for {}).
func (d *fastDecoder) stringMap() (map[string]string, bool) {
	if !d.eat('{') {
		return nil, false
	}
	m := make(map[string]string, 2)
	d.ws()
	if d.eat('}') {
		return m, true
	}
	for {
		d.ws()
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.ws()
		if !d.eat(':') {
			return nil, false
		}
		d.ws()
		v, ok := d.str()
		if !ok {
			return nil, false
		}
		m[k] = v
		d.ws()
		if d.eat(',') {
			continue
		}
		if d.eat('}') {
			return m, true
		}
		return nil, false
	}
}
