// Package segment decides what every recipient reads and what every customer is billed:
// it encodes SMS text as GSM-7 (3GPP TS 23.038) or UCS-2, counts segments, and splits a
// text into the exact short_message bytes of each submit_sm (UDH concatenation, SAR TLVs,
// or message_payload).
//
// Place in the pipeline: dispatch calls CountText and Split on every SMS; gateway/smpp
// puts the parts into submit_sm. The package is pure: no I/O, no goroutines, no clock, no
// package state but read-only tables. The rules are in ../shared/spec/segmentation.md.
//
// # Decisions
//
//   - Billing: CountText is the one count; Split makes exactly that many segments (a
//     fuzz target checks it), and Message.Segments repeats it.
//   - Empty text: one empty GSM-7 segment. Requiring text is the caller's job (dispatch
//     rejects an SMS without text as missing_field).
//   - Invalid UTF-8 is treated as strings.ToValidUTF8(text, "\uFFFD") (so it is UCS-2).
//   - Boundaries: an extension character never loses its escape; a surrogate pair is never
//     cut; a grapheme cluster (uniseg, UAX #29) moves whole to the next part when it fits in
//     one, else it is cut between code points. GSM-7 characters never form multi-character
//     clusters, so GSM-7 texts never pay for cluster detection; neither do UCS-2 texts whose
//     characters are all in ranges that cannot join (Latin, Greek, Cyrillic, CJK, kana,
//     common punctuation). CR LF counts as two characters and may be split, as the
//     widely used public segment calculator counts it.
//   - Capacities: 160/153/152 septets and 70/67/66 code units (single, UDH IE 0x00, IE
//     0x08). SAR and message_payload parts are sized and billed as with IE 0x00, because
//     the SMSC adds that UDH. A text that fits in one segment is always one Part without
//     UDH, whatever the concatenation form.
//   - Limits: more than 255 segments is too_long, except with message_payload, whose
//     limit is 65535 octets of encoded text; its Segments still say how many segments the
//     SMSC will deliver (and bill).
//   - References: the caller passes one; IE 0x00 carries its low byte.
//   - Smart encoding (only with Options.Smart, see Smart): curly quotes and primes to ' and
//     ", guillemets « » to " and ‹ › to ', the grave and acute accents used as apostrophes
//     to ', hyphens, dashes and the minus sign to -, … to ..., Unicode spaces and tab to a
//     space, line and paragraph separators to a newline, bullets • ‣ to * (reads as a list
//     marker, and masked digits "•••• 1234" become "**** 1234"), ⁃ to -, and invisible
//     characters (zero width space, word joiner, BOM, soft hyphen) removed. Letters are
//     never changed: ç stays ç. Applied before choosing the encoding, also when the text
//     stays UCS-2, so the text sent is always Smart(text).
//   - National language single shift tables (Turkish, Spanish, Portuguese; Options.National):
//     only for texts that are not default GSM-7, only with UDH concatenation, and with Auto
//     only when they make fewer segments than UCS-2. Every part then has a UDH with IE 0x24
//     (a single part too: 155 septets; 149/148 per concatenated part).
//
// # Performance
//
// Pure-ASCII GSM-7 text is scanned and copied eight bytes at a time; CountText does not
// allocate; Split into a reused Message does not allocate, into a fresh one twice (parts
// and bytes). Figures: docs/benchmarks/segment.md.
package segment
