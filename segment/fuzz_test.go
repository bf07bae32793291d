package segment

import (
	"strings"
	"testing"
)

// FuzzSplit guarantees, for any text and options: Split and CountText agree; every part
// is within capacity with the right UDH and flags; no part ends with a lone escape or
// cuts a surrogate pair; reassembling the parts gives back the text after smart
// encoding (checkSplit); a national table only where allowed and useful. rep repeats the text so that short inputs reach part boundaries.
func FuzzSplit(f *testing.F) {
	f.Add("hello", uint8(0), uint8(0), false, uint16(1), uint8(0), uint8(0))
	f.Add("€", uint8(0), uint8(0), false, uint16(1), uint8(160), uint8(0))
	f.Add("a€", uint8(1), uint8(1), false, uint16(0xABCD), uint8(120), uint8(0))
	f.Add("ж😀", uint8(0), uint8(0), false, uint16(7), uint8(40), uint8(0))
	f.Add("👩\u200d👩\u200d👧\u200d👦🇫🇮e\u0301", uint8(0), uint8(1), false, uint16(7), uint8(30), uint8(0))
	f.Add("“smart” – quotes… •", uint8(0), uint8(2), true, uint16(7), uint8(20), uint8(0))
	f.Add("a\r\nb", uint8(0), uint8(3), false, uint16(7), uint8(90), uint8(0))
	f.Add("ç", uint8(1), uint8(0), false, uint16(7), uint8(0), uint8(0))
	f.Add("\xff\xfe", uint8(0), uint8(0), true, uint16(7), uint8(3), uint8(0))
	f.Add("Ğüzel şey, çok iyi! ", uint8(0), uint8(0), false, uint16(3), uint8(10), uint8(0x0E))
	f.Add("Açúcar, pão e feijão ", uint8(1), uint8(1), false, uint16(3), uint8(12), uint8(0x0C))
	f.Fuzz(func(t *testing.T, text string, enc, concat uint8, smart bool, ref uint16, rep, national uint8) {
		if n := int(rep)%200 + 1; len(text)*n <= 1<<16 {
			text = strings.Repeat(text, n)
		}
		opt := Options{Encoding: Encoding(enc % 3), Concat: Concat(concat % 4), Smart: smart, National: LanguageSet(national)}
		checkSplit(t, text, opt, ref)
	})
}
