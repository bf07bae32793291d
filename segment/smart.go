package segment

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// smartSub is one smart-encoding substitution: a typographic lookalike and its GSM-7 form.
type smartSub struct {
	from rune
	to   string
}

// smartTable is the complete smart-encoding table, sorted by from. Only substitutions a
// reader accepts as the same text: quotes, apostrophes, dashes, ellipsis, spaces,
// invisible format characters, bullets. Letters are never changed (no transliteration,
// no case change: 'ç' stays 'ç' and makes the text UCS-2). Every replacement is GSM-7
// basic-table text.
var smartTable = [...]smartSub{
	{'\t', " "},       // character tabulation: not in GSM-7
	{'`', "'"},        // grave accent used as an apostrophe: not in GSM-7
	{'\u00A0', " "},   // no-break space
	{'\u00AB', "\""},  // « left guillemet
	{'\u00AD', ""},    // soft hyphen: invisible
	{'\u00B4', "'"},   // ´ acute accent used as an apostrophe
	{'\u00BB', "\""},  // » right guillemet
	{'\u02BC', "'"},   // ʼ modifier letter apostrophe
	{'\u1680', " "},   // ogham space mark
	{'\u2000', " "},   // en quad
	{'\u2001', " "},   // em quad
	{'\u2002', " "},   // en space
	{'\u2003', " "},   // em space
	{'\u2004', " "},   // three-per-em space
	{'\u2005', " "},   // four-per-em space
	{'\u2006', " "},   // six-per-em space
	{'\u2007', " "},   // figure space
	{'\u2008', " "},   // punctuation space
	{'\u2009', " "},   // thin space
	{'\u200A', " "},   // hair space
	{'\u200B', ""},    // zero width space: invisible (ZWJ U+200D and ZWNJ U+200C are kept)
	{'\u2010', "-"},   // ‐ hyphen
	{'\u2011', "-"},   // ‑ non-breaking hyphen
	{'\u2012', "-"},   // ‒ figure dash
	{'\u2013', "-"},   // – en dash
	{'\u2014', "-"},   // — em dash
	{'\u2015', "-"},   // ― horizontal bar
	{'\u2018', "'"},   // ‘ left single quotation mark
	{'\u2019', "'"},   // ’ right single quotation mark, apostrophe
	{'\u201A', "'"},   // ‚ single low-9 quotation mark
	{'\u201B', "'"},   // ‛ single high-reversed-9 quotation mark
	{'\u201C', "\""},  // “ left double quotation mark
	{'\u201D', "\""},  // ” right double quotation mark
	{'\u201E', "\""},  // „ double low-9 quotation mark
	{'\u201F', "\""},  // ‟ double high-reversed-9 quotation mark
	{'\u2022', "*"},   // • bullet: '*' (lists, and masked digits "•••• 1234" → "**** 1234")
	{'\u2023', "*"},   // ‣ triangular bullet
	{'\u2026', "..."}, // … horizontal ellipsis
	{'\u2028', "\n"},  // line separator
	{'\u2029', "\n"},  // paragraph separator
	{'\u202F', " "},   // narrow no-break space
	{'\u2032', "'"},   // ′ prime
	{'\u2033', "\""},  // ″ double prime
	{'\u2039', "'"},   // ‹ single left guillemet
	{'\u203A', "'"},   // › single right guillemet
	{'\u2043', "-"},   // ⁃ hyphen bullet
	{'\u205F', " "},   // medium mathematical space
	{'\u2060', ""},    // word joiner: invisible
	{'\u2212', "-"},   // − minus sign
	{'\u3000', " "},   // ideographic space
	{'\uFEFF', ""},    // zero width no-break space (BOM): invisible
}

// smartLookup returns the replacement of r and whether r has one.
func smartLookup(r rune) (string, bool) {
	if r < 0x80 {
		switch r {
		case '\t':
			return " ", true
		case '`':
			return "'", true
		}
		return "", false
	}
	i := sort.Search(len(smartTable), func(i int) bool { return smartTable[i].from >= r })
	if i < len(smartTable) && smartTable[i].from == r {
		return smartTable[i].to, true
	}
	return "", false
}

// Smart applies the smart-encoding table: it replaces typographic lookalikes (curly
// quotes, dashes, ellipsis, Unicode spaces, bullets, invisible format characters) with
// their GSM-7 forms and returns text unchanged, without allocating, when none occurs.
// It is what CountText and Split apply first when Options.Smart is set.
func Smart(text string) string {
	i := smartIndex(text)
	if i < 0 {
		return text
	}
	var b strings.Builder
	b.Grow(len(text) + 8)
	b.WriteString(text[:i])
	for _, r := range text[i:] {
		if to, ok := smartLookup(r); ok {
			b.WriteString(to)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// smartIndex returns the byte offset of the first substitutable rune of text, or -1.
func smartIndex(text string) int {
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			if c == '\t' || c == '`' {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		if _, ok := smartLookup(r); ok {
			return i
		}
		i += size
	}
	return -1
}
