package segment

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// Capacities per segment (140 octets of user data).
const (
	gsmSingle  = 160 // septets, no UDH
	gsmUDH8    = 153 // septets after a 6-octet UDH (IEI 0x00)
	gsmUDH16   = 152 // septets after a 7-octet UDH (IEI 0x08)
	ucs2Single = 70  // UTF-16 code units, no UDH
	ucs2UDH8   = 67
	ucs2UDH16  = 66
	udh8Len    = 6 // 05 00 03 ref total seq
	udh16Len   = 7 // 06 08 04 refhi reflo total seq
	maxPayload = 65535
	dcGSM7     = 0x00
	dcUCS2     = 0x08
)

// MaxSegments is the most segments a concatenated message can have (the 8-bit total of
// the concatenation information element); more is a too_long error.
const MaxSegments = 255

// plan is everything CountText and Split decide before any byte is written.
type plan struct {
	text     string // after smart encoding and UTF-8 repair
	enc      Encoding
	units    int
	segments int
	single   bool // fits in one segment: no UDH, no SAR
	capMulti int  // capacity of one part of a concatenated message, in units
	udhLen   int  // octets of UDH per part (0 for SAR, payload, and single without lang)
	lang     Language
}

// makePlan chooses the encoding and counts units and segments, exactly where Split cuts
// (splitGSM, splitUCS2). With forSplit, the segments of a multi-part UCS-2 text with
// clusters are left 0 for splitUCS2 to count while it cuts.
func makePlan(text string, opt Options, forSplit bool) (plan, error) {
	if opt.Smart {
		text = Smart(text)
	}
	p := plan{text: text}
	if opt.Encoding != UCS2 {
		single, multi, udh := capacities(GSM7, opt.Concat)
		units, segs, bad := scanGSM(text, multi)
		if bad < 0 {
			p.enc, p.units, p.capMulti, p.udhLen, p.segments = GSM7, units, multi, udh, segs
			if units <= single {
				p.single, p.segments, p.udhLen = true, 1, 0
			}
			return p, p.check(opt)
		}
		if opt.National != 0 && opt.Encoding == GSM7 {
			if q, ok := planNational(text, opt); ok {
				return q, q.check(opt)
			}
		}
		if opt.Encoding == GSM7 {
			if !utf8.ValidString(text) {
				text = strings.ToValidUTF8(text, "\uFFFD")
				_, _, bad = scanGSM(text, multi)
			}
			r, _ := utf8.DecodeRuneInString(text[bad:])
			return plan{text: text, enc: GSM7}, &Error{Code: "encoding_mismatch",
				Detail: "encoding gsm7: character " + quoteRune(r) + " at byte " + strconv.Itoa(bad) + " is not in the GSM 03.38 alphabet"}
		}
	}
	units, simple, valid := scanUCS2(text)
	if !valid {
		text = strings.ToValidUTF8(text, "\uFFFD")
		p.text = text
		units, simple, _ = scanUCS2(text)
	}
	single, multi, udh := capacities(UCS2, opt.Concat)
	p.enc, p.units, p.capMulti, p.udhLen = UCS2, units, multi, udh
	switch {
	case units <= single:
		p.single, p.segments, p.udhLen = true, 1, 0
	case simple:
		p.segments = (units + multi - 1) / multi
	case forSplit && opt.National == 0 && opt.Concat != ConcatPayload:
		return p, nil // counted by splitUCS2
	default:
		p.segments = pack(text, multi, nil)
	}
	if opt.National != 0 && opt.Encoding == Auto && valid {
		// A national single shift table only when it saves segments compared with UCS-2.
		if q, ok := planNational(text, opt); ok && q.segments < p.segments {
			return q, q.check(opt)
		}
	}
	return p, p.check(opt)
}

// check returns the too_long error, if any.
func (p *plan) check(opt Options) error {
	if opt.Concat == ConcatPayload {
		if n := p.octets(); n > maxPayload {
			return &Error{Code: "too_long", Detail: "message_payload of " + strconv.Itoa(n) + " octets exceeds 65535"}
		}
		return nil
	}
	if p.segments > MaxSegments {
		return &Error{Code: "too_long", Detail: strconv.Itoa(p.segments) + " segments exceed the maximum of 255"}
	}
	return nil
}

// octets is the encoded size of the whole text without any UDH.
func (p *plan) octets() int {
	if p.enc == UCS2 {
		return 2 * p.units
	}
	return p.units
}

// capacities returns the single-part capacity, the per-part capacity of a concatenated
// message, and the UDH length of each concatenated part. SAR and message_payload carry
// no UDH in short_message, but the SMSC builds one, so parts are sized as with an 8-bit
// reference UDH (the SMSC's usual choice) and billed likewise.
func capacities(enc Encoding, c Concat) (single, multi, udh int) {
	if enc == UCS2 {
		switch c {
		case ConcatUDH16:
			return ucs2Single, ucs2UDH16, udh16Len
		case ConcatUDH8:
			return ucs2Single, ucs2UDH8, udh8Len
		}
		return ucs2Single, ucs2UDH8, 0
	}
	switch c {
	case ConcatUDH16:
		return gsmSingle, gsmUDH16, udh16Len
	case ConcatUDH8:
		return gsmSingle, gsmUDH8, udh8Len
	}
	return gsmSingle, gsmUDH8, 0
}

// scanGSM returns the septets of text and the segments it makes at capacity septets per
// segment (an extension character and its escape never separated), or bad >= 0: the
// byte offset of the first character that is not GSM-7 (including invalid UTF-8).
// GSM-7 characters never join into larger grapheme clusters, so each is atomic.
// splitGSM cuts at the same places.
func scanGSM(text string, capacity int) (units, segs int, bad int) {
	cost := &tab.cost
	segs = 1
	used := 0
	for i := 0; i < len(text); {
		stop := len(text)
		if i+8 <= len(text) {
			v := load8(text, i)
			if plain8(v) {
				// Eight one-septet characters: any cut between them is allowed.
				units += 8
				used += 8
				if used > capacity {
					segs++
					used -= capacity
				}
				i += 8
				continue
			}
			if ext, ok := gsm8(v); ok {
				if n := 8 + ext; used+n <= capacity {
					units += n
					used += n
					i += 8
					continue
				}
			}
			stop = i + 8 // go character by character through this word
		}
		for i < stop {
			c := text[i]
			k := int(cost[c])
			if k != 0 {
				i++
			} else {
				if c < utf8.RuneSelf {
					return 0, 0, i
				}
				g, size := decodeGSM(text, i)
				if g == 0 {
					return 0, 0, i
				}
				k = 1 + int(g>>14&1)
				i += size
			}
			units += k
			if used+k > capacity {
				segs++
				used = 0
			}
			used += k
		}
	}
	return units, segs, -1
}

// scanUCS2 returns the UTF-16 code units of text, whether every character is one code
// unit and certainly its own grapheme cluster, and whether text is valid UTF-8.
func scanUCS2(text string) (units int, simple, valid bool) {
	simple = true
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			units++
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		if r == utf8.RuneError && size == 1 {
			return 0, false, false
		}
		if r >= 0x10000 {
			units += 2
			simple = false
		} else {
			units++
			if simple && !isolated(r) {
				simple = false
			}
		}
		i += size
	}
	return units, simple, true
}

// isolated reports whether r certainly forms a grapheme cluster of its own next to any
// other isolated rune (Unicode UAX #29: r is none of Extend, ZWJ, SpacingMark, Prepend,
// Regional_Indicator, Hangul syllable types; CR LF is split on purpose, see pack). The
// ranges are conservative: anything else goes through uniseg.
func isolated(r rune) bool {
	switch {
	case r < 0x300: // Latin, Latin-1, Latin Extended-A/B, IPA, spacing modifiers
		return true
	case r >= 0x370 && r <= 0x3FF: // Greek and Coptic
		return true
	case r >= 0x400 && r <= 0x482, r >= 0x48A && r <= 0x52F: // Cyrillic letters
		return true
	case r >= 0x2000 && r <= 0x200A, r >= 0x2010 && r <= 0x2027, r >= 0x2030 && r <= 0x205F && r != 0x203C && r != 0x2049:
		// spaces and punctuation (‼ and ⁉ are Extended_Pictographic)
		return true
	case r == 0x20AC: // €
		return true
	case r >= 0x3041 && r <= 0x3096, r >= 0x30A0 && r <= 0x30FF: // Hiragana, Katakana letters
		return true
	case r >= 0x4E00 && r <= 0x9FFF: // CJK unified ideographs
		return true
	}
	return false
}

// pack splits a UCS-2 text into segments of at most capacity UTF-16 code units and
// returns how many. A grapheme cluster moves whole to the next segment when it does not
// fit in the current one but fits in an empty one; a cluster longer than a segment is cut
// between code points, never inside a surrogate pair. CR LF counts as two clusters, as
// the widely used public calculators count it, so it may be split.
//
// ends, if non-nil, receives the byte offset in text where each segment ends.
func pack(text string, capacity int, ends []int32) int {
	segs, used := 1, 0
	for i := 0; i < len(text); {
		var end, units int
		if c := text[i]; c < 0xCC {
			// ASCII or a two-byte rune below U+0300: isolated; so is the next one if its
			// lead byte is below 0xCC too, and then this rune is a cluster of one unit.
			end = i + 1
			if c >= utf8.RuneSelf {
				end = i + 2
			}
			if end < len(text) && text[end] >= 0xCC {
				end, units = nextCluster(text, i)
			} else {
				units = 1
			}
		} else {
			end, units = nextCluster(text, i)
		}
		if used+units > capacity {
			if units <= capacity {
				if segs <= len(ends) {
					ends[segs-1] = int32(i)
				}
				segs++
				used = 0
			} else {
				// Longer than a segment: cut between code points.
				for i < end {
					r, size := utf8.DecodeRuneInString(text[i:])
					k := 1
					if r >= 0x10000 {
						k = 2
					}
					if used+k > capacity {
						if segs <= len(ends) {
							ends[segs-1] = int32(i)
						}
						segs++
						used = 0
					}
					used += k
					i += size
				}
				continue
			}
		}
		used += units
		i = end
	}
	if segs <= len(ends) {
		ends[segs-1] = int32(len(text))
	}
	return segs
}

// nextCluster returns the end of the grapheme cluster that starts at text[i] and its
// UTF-16 code units. Runes that are isolated on both sides skip uniseg.
func nextCluster(text string, i int) (end, units int) {
	r, size := rune(text[i]), 1
	if r >= utf8.RuneSelf {
		r, size = utf8.DecodeRuneInString(text[i:])
	}
	j := i + size
	if j == len(text) || isolated(r) && nextIsolated(text[j:]) {
		if r >= 0x10000 {
			return j, 2
		}
		return j, 1
	}
	if r == '\r' {
		// CR LF is two clusters here (see pack); UAX #29 joins CR with nothing else.
		return j, 1
	}
	cluster, _, _, _ := uniseg.FirstGraphemeClusterInString(text[i:], -1)
	end = i + len(cluster)
	for _, c := range cluster {
		units++
		if c >= 0x10000 {
			units++
		}
	}
	return end, units
}

// nextIsolated reports whether the first rune of s is isolated.
func nextIsolated(s string) bool {
	if s[0] < utf8.RuneSelf {
		return true
	}
	r, _ := utf8.DecodeRuneInString(s)
	return isolated(r)
}

// quoteRune names r for error details: 'ç' (U+00E7).
func quoteRune(r rune) string {
	h := strings.ToUpper(strconv.FormatInt(int64(r), 16))
	for len(h) < 4 {
		h = "0" + h
	}
	return strconv.QuoteRune(r) + " (U+" + h + ")"
}
