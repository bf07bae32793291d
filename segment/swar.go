package segment

import "math/bits"

// Eight-bytes-at-a-time tests for the pure-ASCII fast paths. A word is eight bytes of
// text loaded little-endian.

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// load8 returns the eight bytes of s at i as a word; the caller ensures i+8 <= len(s).
func load8(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// plain8 reports whether every byte of v is in 0x20..0x5A or 0x61..0x7A: ASCII that is a
// one-septet GSM-7 character (space, digits, letters, most punctuation, '@' and '$').
func plain8(v uint64) bool {
	if v&msb != 0 {
		return false
	}
	ge20 := (v + (0x80-0x20)*lsb) & msb
	lt7B := ^(v + (0x80-0x7B)*lsb) & msb
	ge5B := (v + (0x80-0x5B)*lsb) & msb
	lt61 := ^(v + (0x80-0x61)*lsb) & msb
	return ge20&lt7B&^(ge5B&lt61) == msb
}

// gsm8 reports whether every byte of v is printable ASCII that is GSM-7 (0x20..0x7E
// except the backtick 0x60), and returns how many of them are extension characters
// ('[' '\\' ']' '^' '{' '|' '}' '~', two septets each).
func gsm8(v uint64) (ext int, ok bool) {
	if v&msb != 0 {
		return 0, false
	}
	ge20 := (v + (0x80-0x20)*lsb) & msb
	lt7F := ^(v + (0x80-0x7F)*lsb) & msb
	x := v ^ (0x60 * lsb)
	not60 := ^((x - lsb) &^ x) & msb
	if ge20&lt7F&not60 != msb {
		return 0, false
	}
	ge5B := (v + (0x80-0x5B)*lsb) & msb
	lt5F := ^(v + (0x80-0x5F)*lsb) & msb
	ge7B := (v + (0x80-0x7B)*lsb) & msb
	return bits.OnesCount64(ge5B&lt5F | ge7B), true
}

// same8 reports whether v is plain8 and its GSM-7 septets are its bytes: no '@' (0x00)
// and no '$' (0x02).
func same8(v uint64) bool {
	return plain8(v) && !hasByte(v, '@') && !hasByte(v, '$')
}

// hasByte reports whether some byte of the ASCII word v equals b.
func hasByte(v uint64, b byte) bool {
	x := v ^ (lsb * uint64(b))
	return (x-lsb)&^x&msb != 0
}
