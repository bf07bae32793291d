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
	if d := jsonDepth(value); d > maxJSONDepth {
		p.bad = fail(ReasonInvalidJSON, "value: nesting depth %d exceeds %d", d, maxJSONDepth)
		return p
	}
	err := json.Unmarshal(value, &p.req)
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
