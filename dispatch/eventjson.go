package dispatch

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// The events topic, the ledger's status history and the outbox all carry an Event as
// JSON (contract §3). It is encoded by hand, not through encoding/json's reflection,
// because every request produces two or more events on the hot path and reflection made
// the encoding several times the cost of the rest of an event's handling; the bytes
// are proved identical to encoding/json.Marshal's (TestEventJSONIdentity, FuzzEventJSON).

// AppendEventJSON appends e as JSON to b, byte for byte what encoding/json.Marshal(e)
// produces (TestEventJSONIdentity, FuzzEventJSON), without reflection and with no
// allocation but b's growth. A time encoding/json would refuse (a year outside 0..9999,
// an offset that is not whole minutes) takes encoding/json's path and its error.
func AppendEventJSON(b []byte, e *Event) ([]byte, error) {
	if y := e.TS.Year(); y < 0 || y > 9999 {
		return appendMarshal(b, e)
	}
	if _, off := e.TS.Zone(); off%60 != 0 {
		return appendMarshal(b, e)
	}
	b = append(b, `{"id":`...)
	b = AppendJSONString(b, e.ID)
	b = append(b, `,"tenant":`...)
	b = AppendJSONString(b, e.Tenant)
	b = append(b, `,"campaign":`...)
	b = AppendJSONString(b, e.Campaign)
	b = append(b, `,"channel":`...)
	b = AppendJSONString(b, e.Channel)
	b = append(b, `,"to":`...)
	b = AppendJSONString(b, e.To)
	b = append(b, `,"from":`...)
	b = AppendJSONString(b, e.From)
	b = append(b, `,"status":`...)
	b = AppendJSONString(b, string(e.Status))
	b = append(b, `,"ts":"`...)
	b = e.TS.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","node":`...)
	b = AppendJSONString(b, e.Node)
	b = append(b, `,"meta":`...)
	b = AppendJSONStringMap(b, e.Meta)
	if e.Reason != "" {
		b = append(b, `,"reason":`...)
		b = AppendJSONString(b, e.Reason)
	}
	if e.Detail != "" {
		b = append(b, `,"detail":`...)
		b = AppendJSONString(b, e.Detail)
	}
	if e.Segments != 0 {
		b = append(b, `,"segments":`...)
		b = strconv.AppendInt(b, int64(e.Segments), 10)
	}
	if e.Encoding != "" {
		b = append(b, `,"encoding":`...)
		b = AppendJSONString(b, e.Encoding)
	}
	if e.Connection != "" {
		b = append(b, `,"connection":`...)
		b = AppendJSONString(b, e.Connection)
	}
	if len(e.SMSCIDs) > 0 {
		b = append(b, `,"smsc_ids":[`...)
		for i, id := range e.SMSCIDs {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, id)
		}
		b = append(b, ']')
	}
	if e.Part != 0 {
		b = append(b, `,"part":`...)
		b = strconv.AppendInt(b, int64(e.Part), 10)
	}
	if e.DurationMS != 0 {
		b = append(b, `,"duration_ms":`...)
		b = strconv.AppendInt(b, e.DurationMS, 10)
	}
	if len(e.Parts) > 0 {
		b = append(b, `,"parts":[`...)
		for i := range e.Parts {
			p := &e.Parts[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"part":`...)
			b = strconv.AppendInt(b, int64(p.Part), 10)
			b = append(b, `,"smsc_id":`...)
			b = AppendJSONString(b, p.SMSCID)
			b = append(b, `,"state":`...)
			b = AppendJSONString(b, p.State)
			if p.Err != "" {
				b = append(b, `,"err":`...)
				b = AppendJSONString(b, p.Err)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if e.Pool != "" {
		b = append(b, `,"pool":`...)
		b = AppendJSONString(b, e.Pool)
	}
	return append(b, '}'), nil
}

func appendMarshal(b []byte, e *Event) ([]byte, error) {
	v, err := json.Marshal(e)
	if err != nil {
		return b, err
	}
	return append(b, v...), nil
}

// AppendJSONStringMap appends m as encoding/json.Marshal writes a map[string]string:
// null for nil, keys sorted.
func AppendJSONStringMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	var small [8]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	// insertion sort: meta maps are small
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, k)
		b = append(b, ':')
		b = AppendJSONString(b, m[k])
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string the way encoding/json.Marshal writes it: HTML
// characters (<, >, &), U+2028 and U+2029 as \u escapes, invalid UTF-8 as \ufffd,
// control characters as \b \f \n \r \t or \u00XX.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	done := 0 // s[:done] is written
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[done:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			done = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[done:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[done:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		done = i
	}
	b = append(b, s[done:]...)
	return append(b, '"')
}
