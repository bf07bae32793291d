package segment

import (
	"encoding/binary"
	"unicode/utf8"
)

// GSM 7-bit default alphabet and its extension table, written from 3GPP TS 23.038
// §6.2.1 and §6.2.1.1. Septets are sent unpacked in short_message: one septet per octet.

// esc is the septet that switches the next septet to the extension table (0x1B). It is
// not a character of its own, and a part never ends with it.
const esc = 0x1B

// gsmBasic is the default alphabet indexed by septet. Index 0x1B is the escape, not a
// character; it holds 0 and is never produced by decoding.
var gsmBasic = [128]rune{
	// 0x00
	'@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
	// 0x10
	'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', 0, 'Æ', 'æ', 'ß', 'É',
	// 0x20
	' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
	// 0x30
	'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
	// 0x40
	'¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
	// 0x50
	'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
	// 0x60
	'¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	// 0x70
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
}

// gsmExt is the extension table indexed by the septet that follows the escape; 0 where
// the table has no character. Each of these characters costs two septets.
var gsmExt = [128]rune{
	0x0A: '\f', // form feed (page break)
	0x14: '^',
	0x28: '{',
	0x29: '}',
	0x2F: '\\',
	0x3C: '[',
	0x3D: '~',
	0x3E: ']',
	0x40: '|',
	0x65: '€',
}

// Encoded forms in the lookup tables: gsmOK marks a GSM character, gsmIsExt one of the
// extension table (escape + code), the low 7 bits are the septet.
const (
	gsmOK    = 0x8000
	gsmIsExt = 0x4000
)

// gsmTabLen covers Latin-1 and the Greek capitals of the basic table; the euro sign is
// the only GSM character above it.
const gsmTabLen = 0x3B0

// tables are the read-only lookup tables derived from gsmBasic and gsmExt, so encoding
// and decoding cannot disagree. Built once, never written afterwards.
type tables struct {
	code  [gsmTabLen]uint16             // rune → gsmOK|gsmIsExt|septet
	cost  [256]uint8                    // UTF-8 byte → septets for ASCII GSM characters; 0 otherwise
	shift [Portuguese + 1]map[rune]byte // national single shift tables: rune → septet
}

var tab = buildTables()

func buildTables() *tables {
	t := new(tables)
	for i, r := range gsmBasic {
		if i == esc {
			continue
		}
		t.code[r] = gsmOK | uint16(i)
	}
	for i, r := range gsmExt {
		if r == 0 || r >= gsmTabLen {
			continue // '€' is handled in gsmCode
		}
		t.code[r] = gsmOK | gsmIsExt | uint16(i)
	}
	for l := Turkish; l <= Portuguese; l++ {
		t.shift[l] = make(map[rune]byte)
		for i, r := range nationalShift[l] {
			if r != 0 {
				t.shift[l][r] = byte(i)
			}
		}
	}
	for b := 0; b < 0x80; b++ {
		switch c := t.code[b]; {
		case c&gsmIsExt != 0:
			t.cost[b] = 2
		case c&gsmOK != 0:
			t.cost[b] = 1
		}
	}
	return t
}

// gsmCode returns the table entry of r: 0 when r is not a GSM 03.38 character.
func gsmCode(r rune) uint16 {
	if uint32(r) < gsmTabLen {
		return tab.code[r]
	}
	if r == '€' {
		return gsmOK | gsmIsExt | 0x65
	}
	return 0
}

// decodeGSM returns the table entry (0: not GSM-7) and UTF-8 length of the non-ASCII
// character at text[i]; two-byte sequences and '€' are decoded inline.
func decodeGSM(text string, i int) (uint16, int) {
	c := text[i]
	if c >= 0xC2 && c < 0xE0 && i+1 < len(text) {
		if d := text[i+1]; d&0xC0 == 0x80 {
			return gsmCode(rune(c&0x1F)<<6 | rune(d&0x3F)), 2
		}
	}
	if c == 0xE2 && i+2 < len(text) && text[i+1] == 0x82 && text[i+2] == 0xAC {
		return gsmOK | gsmIsExt | 0x65, 3 // €
	}
	r, size := utf8.DecodeRuneInString(text[i:])
	return gsmCode(r), size
}

// IsGSM7 reports whether r is in the GSM 03.38 default alphabet or its extension table.
func IsGSM7(r rune) bool { return gsmCode(r) != 0 }

// GSM7Septets returns how many septets r costs in GSM-7 (1 basic, 2 extension), or 0
// when r is not a GSM 03.38 character.
func GSM7Septets(r rune) int {
	c := gsmCode(r)
	switch {
	case c == 0:
		return 0
	case c&gsmIsExt != 0:
		return 2
	}
	return 1
}

// encode appends the short_message payload of text (which must be encodable as enc) to dst.
func encode(dst []byte, text string, enc Encoding) []byte {
	if enc == UCS2 {
		for _, r := range text {
			if r >= 0x10000 {
				r -= 0x10000
				hi, lo := 0xD800+(r>>10), 0xDC00+(r&0x3FF)
				dst = append(dst, byte(hi>>8), byte(hi), byte(lo>>8), byte(lo))
				continue
			}
			dst = append(dst, byte(r>>8), byte(r))
		}
		return dst
	}
	for i := 0; i < len(text); {
		if i+8 <= len(text) {
			if v := load8(text, i); same8(v) {
				dst = binary.LittleEndian.AppendUint64(dst, v)
				i += 8
				continue
			}
		}
		c := text[i]
		var g uint16
		if c < utf8.RuneSelf {
			g = tab.code[c]
			i++
		} else {
			r, size := utf8.DecodeRuneInString(text[i:])
			g = gsmCode(r)
			i += size
		}
		if g&gsmIsExt != 0 {
			dst = append(dst, esc, byte(g&0x7F))
			continue
		}
		dst = append(dst, byte(g&0x7F))
	}
	return dst
}

// splitGSM encodes a GSM-7 text into parts of at most capacity septets, cutting exactly
// where scanGSM counts (before a character that does not fit), and sets each part's
// ShortMessage (UDH, then septets). buf has room for everything.
func splitGSM(buf []byte, parts []Part, text string, capacity int, c Concat, ref uint16) []byte {
	seq, used := 0, 0
	off := len(buf)
	buf = appendUDH(buf, c, ref, len(parts), 1)
	n := len(buf)
	buf = buf[:cap(buf)]
	for i := 0; i < len(text); {
		stop := len(text)
		if i+8 <= len(text) {
			v := load8(text, i)
			if used+8 <= capacity && same8(v) {
				binary.LittleEndian.PutUint64(buf[n:n+8], v)
				n += 8
				used += 8
				i += 8
				continue
			}
			if ext, ok := gsm8(v); ok && used+8+ext <= capacity {
				// Eight ASCII GSM-7 characters that fit: no cut to check.
				for _, b := range []byte(text[i : i+8]) {
					g := tab.code[b]
					if g&gsmIsExt != 0 {
						buf[n] = esc
						n++
					}
					buf[n] = byte(g & 0x7F)
					n++
				}
				used += 8 + ext
				i += 8
				continue
			}
			stop = i + 8 // go character by character through this word
		}
		for i < stop {
			var g uint16
			if c0 := text[i]; c0 < utf8.RuneSelf {
				g = tab.code[c0]
				i++
			} else {
				var size int
				g, size = decodeGSM(text, i)
				i += size
			}
			if g&gsmIsExt == 0 {
				if used == capacity {
					seq, off, n = cutPart(buf, parts, seq, off, n, c, ref)
					used = 0
				}
				used++
				buf[n] = byte(g & 0x7F)
				n++
				continue
			}
			if used+2 > capacity {
				seq, off, n = cutPart(buf, parts, seq, off, n, c, ref)
				used = 0
			}
			used += 2
			buf[n] = esc
			buf[n+1] = byte(g & 0x7F)
			n += 2
		}
	}
	parts[seq].ShortMessage = buf[off:n:n]
	return buf[:n]
}

// cutPart closes part seq at n and writes the UDH of the next; it returns the new seq,
// the next part's offset and the write position after its UDH.
func cutPart(buf []byte, parts []Part, seq, off, n int, c Concat, ref uint16) (int, int, int) {
	parts[seq].ShortMessage = buf[off:n:n]
	seq++
	return seq, n, len(appendUDH(buf[:n], c, ref, len(parts), seq+1))
}
