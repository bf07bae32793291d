package segment

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Language is a national language of 3GPP TS 23.038 Annex A whose single shift table
// Split may use instead of the default extension table. Its value is the national
// language identifier carried in the UDH (information element 0x24).
type Language uint8

// Languages with a single shift table here (3GPP TS 23.038 A.2.1–A.2.3).
const (
	NoLanguage Language = 0 // default alphabet and extension table only
	Turkish    Language = 1
	Spanish    Language = 2
	Portuguese Language = 3
)

// String returns "turkish", "spanish", "portuguese", or "" for NoLanguage.
func (l Language) String() string {
	switch l {
	case Turkish:
		return "turkish"
	case Spanish:
		return "spanish"
	case Portuguese:
		return "portuguese"
	case NoLanguage:
		return ""
	}
	return "language(" + strconv.Itoa(int(l)) + ")"
}

// LanguageSet is a set of Languages a connection allows; the zero set allows none.
type LanguageSet uint8

// Languages returns the set of ls.
func Languages(ls ...Language) LanguageSet {
	var s LanguageSet
	for _, l := range ls {
		if l > NoLanguage && l <= Portuguese {
			s |= 1 << l
		}
	}
	return s
}

// Has reports whether l is in s.
func (s LanguageSet) Has(l Language) bool { return l > NoLanguage && l <= Portuguese && s&(1<<l) != 0 }

// nationalShift holds the national language single shift tables, indexed by the
// septet that follows the escape (0 where a table has no character). Each table keeps
// the default extension characters (form feed ^ { } \ [ ~ ] | €) at their usual places.
var nationalShift = [Portuguese + 1][128]rune{
	Turkish: { // A.2.1
		0x0A: '\f', 0x14: '^', 0x28: '{', 0x29: '}', 0x2F: '\\', 0x3C: '[', 0x3D: '~', 0x3E: ']', 0x40: '|',
		0x47: 'Ğ', 0x49: 'İ', 0x53: 'Ş', 0x63: 'ç', 0x65: '€', 0x67: 'ğ', 0x69: 'ı', 0x73: 'ş',
	},
	Spanish: { // A.2.2
		0x09: 'ç', 0x0A: '\f', 0x14: '^', 0x28: '{', 0x29: '}', 0x2F: '\\', 0x3C: '[', 0x3D: '~', 0x3E: ']', 0x40: '|',
		0x41: 'Á', 0x49: 'Í', 0x4F: 'Ó', 0x55: 'Ú', 0x61: 'á', 0x65: '€', 0x69: 'í', 0x6F: 'ó', 0x75: 'ú',
	},
	Portuguese: { // A.2.3
		0x05: 'ê', 0x09: 'ç', 0x0A: '\f', 0x0B: 'Ô', 0x0C: 'ô', 0x0E: 'Á', 0x0F: 'á',
		0x12: 'Φ', 0x13: 'Γ', 0x14: '^', 0x15: 'Ω', 0x16: 'Π', 0x17: 'Ψ', 0x18: 'Σ', 0x19: 'Θ', 0x1F: 'Ê',
		0x28: '{', 0x29: '}', 0x2F: '\\', 0x3C: '[', 0x3D: '~', 0x3E: ']',
		0x40: '|', 0x41: 'À', 0x49: 'Í', 0x4F: 'Ó', 0x55: 'Ú', 0x5B: 'Ã', 0x5C: 'Õ',
		0x61: 'Â', 0x65: '€', 0x69: 'í', 0x6F: 'ó', 0x75: 'ú', 0x7B: 'ã', 0x7C: 'õ', 0x7F: 'â',
	},
}

// Capacities with the national language IE (24 01 id) in the UDH, in septets, and the
// UDH lengths (with the UDHL octet): (140 octets − UDH) × 8 / 7, rounded down.
const (
	natSingle    = 155 // UDH 03 24 01 id: 4 octets
	natUDH8      = 149 // UDH 08 00 03 ref total seq 24 01 id: 9 octets
	natUDH16     = 148 // UDH 09 08 04 ref ref total seq 24 01 id: 10 octets
	natSingleUDH = 4
	natUDH8Len   = 9
	natUDH16Len  = 10
)

// natCode returns the septet of r and its cost with lang's single shift table: 1 for the
// default alphabet, 2 for the shift table (escape + septet), 0 when r is in neither.
func natCode(r rune, lang Language) (byte, int) {
	if g := gsmCode(r); g != 0 && g&gsmIsExt == 0 {
		return byte(g & 0x7F), 1
	}
	if c, ok := tab.shift[lang][r]; ok {
		return c, 2
	}
	return 0, 0
}

// scanNational returns the septets and segments of text with lang's single shift table at
// capacity septets per segment, or ok false when a character is in neither table.
func scanNational(text string, lang Language, capacity int) (units, segs int, ok bool) {
	segs = 1
	used := 0
	for _, r := range text {
		_, k := natCode(r, lang)
		if k == 0 {
			return 0, 0, false
		}
		units += k
		if used+k > capacity {
			segs++
			used = 0
		}
		used += k
	}
	return units, segs, true
}

// planNational returns the best plan with a national single shift table in opt.National
// (fewest segments, then the lowest identifier), or ok false when none fits the text.
func planNational(text string, opt Options) (p plan, ok bool) {
	if opt.Concat != ConcatUDH8 && opt.Concat != ConcatUDH16 {
		return plan{}, false
	}
	multi, udh := natUDH8, natUDH8Len
	if opt.Concat == ConcatUDH16 {
		multi, udh = natUDH16, natUDH16Len
	}
	for l := Turkish; l <= Portuguese; l++ {
		if !opt.National.Has(l) {
			continue
		}
		units, segs, fits := scanNational(text, l, multi)
		if !fits {
			continue
		}
		q := plan{text: text, enc: GSM7, lang: l, units: units, segments: segs, capMulti: multi, udhLen: udh}
		if units <= natSingle {
			q.single, q.segments, q.udhLen = true, 1, natSingleUDH
		}
		if !ok || q.segments < p.segments {
			p, ok = q, true
		}
	}
	return p, ok
}

// appendNatUDH appends the UDH of a part with the national language IE: alone for a
// single part, after the concatenation IE otherwise.
func appendNatUDH(buf []byte, c Concat, lang Language, ref uint16, total, seq int) []byte {
	switch {
	case total == 1:
		return append(buf, 0x03, 0x24, 0x01, byte(lang))
	case c == ConcatUDH16:
		return append(buf, 0x09, 0x08, 0x04, byte(ref>>8), byte(ref), byte(total), byte(seq), 0x24, 0x01, byte(lang))
	}
	return append(buf, 0x08, 0x00, 0x03, byte(ref), byte(total), byte(seq), 0x24, 0x01, byte(lang))
}

// splitNational encodes text with lang's single shift table into parts cut where
// scanNational counts, and sets each part's ShortMessage. buf has room for everything.
func splitNational(buf []byte, parts []Part, text string, lang Language, capacity int, c Concat, ref uint16) []byte {
	seq, used := 0, 0
	off := len(buf)
	buf = appendNatUDH(buf, c, lang, ref, len(parts), 1)
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		i += size
		code, k := natCode(r, lang)
		if used+k > capacity {
			parts[seq].ShortMessage = buf[off:len(buf):len(buf)]
			seq++
			off = len(buf)
			buf = appendNatUDH(buf, c, lang, ref, len(parts), seq+1)
			used = 0
		}
		used += k
		if k == 2 {
			buf = append(buf, esc, code)
		} else {
			buf = append(buf, code)
		}
	}
	parts[seq].ShortMessage = buf[off:len(buf):len(buf)]
	return buf
}

// ParseLanguage reads a language name as configuration and the CLI write it: "turkish",
// "spanish", "portuguese", or their ISO 639-1 codes "tr", "es", "pt" (any case).
func ParseLanguage(s string) (Language, bool) {
	switch strings.ToLower(s) {
	case "turkish", "tr":
		return Turkish, true
	case "spanish", "es":
		return Spanish, true
	case "portuguese", "pt":
		return Portuguese, true
	}
	return NoLanguage, false
}
