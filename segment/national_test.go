package segment

import (
	"fmt"
	"strings"
	"testing"
)

// TestNationalShiftTables checks characters of the Turkish, Spanish and Portuguese single
// shift tables (3GPP TS 23.038 A.2.1–A.2.3): escape + septet, two septets, decoded back.
func TestNationalShiftTables(t *testing.T) {
	tests := []struct {
		lang Language
		r    rune
		code byte
	}{
		{Turkish, 'Ğ', 0x47}, {Turkish, 'İ', 0x49}, {Turkish, 'Ş', 0x53}, {Turkish, 'ç', 0x63},
		{Turkish, 'ğ', 0x67}, {Turkish, 'ı', 0x69}, {Turkish, 'ş', 0x73},
		{Spanish, 'ç', 0x09}, {Spanish, 'Á', 0x41}, {Spanish, 'Í', 0x49}, {Spanish, 'Ó', 0x4F},
		{Spanish, 'Ú', 0x55}, {Spanish, 'á', 0x61}, {Spanish, 'í', 0x69}, {Spanish, 'ó', 0x6F}, {Spanish, 'ú', 0x75},
		{Portuguese, 'ê', 0x05}, {Portuguese, 'ç', 0x09}, {Portuguese, 'Ô', 0x0B}, {Portuguese, 'ô', 0x0C},
		{Portuguese, 'Á', 0x0E}, {Portuguese, 'á', 0x0F}, {Portuguese, 'Ê', 0x1F}, {Portuguese, 'À', 0x41},
		{Portuguese, 'Ã', 0x5B}, {Portuguese, 'Õ', 0x5C}, {Portuguese, 'Â', 0x61}, {Portuguese, 'ã', 0x7B},
		{Portuguese, 'õ', 0x7C}, {Portuguese, 'â', 0x7F},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v-%U", tt.lang, tt.r), func(t *testing.T) {
			opt := Options{Encoding: GSM7, National: Languages(tt.lang)}
			m := checkSplit(t, string(tt.r), opt, 0)
			want := fmt.Sprintf("03 24 01 %02X 1B %02X", byte(tt.lang), tt.code)
			if got := fmt.Sprintf("% X", m.Parts[0].ShortMessage); got != want || m.Units != 2 || m.Language != tt.lang {
				t.Fatalf("%s, %d units, language %v; want %s", got, m.Units, m.Language, want)
			}
		})
	}
	// The default extension characters stay in every table; basic characters stay basic.
	for l := Turkish; l <= Portuguese; l++ {
		for _, r := range "\f^{}\\[~]|€" {
			if _, k := natCode(r, l); k != 2 {
				t.Errorf("%v: %q costs %d septets", l, r, k)
			}
		}
		for _, r := range "@$Ç ñΦΩ" {
			if _, k := natCode(r, l); k != 1 {
				t.Errorf("%v: %q costs %d septets", l, r, k)
			}
		}
	}
}

// TestNationalChoice checks that a national table is used only when enabled, only with
// UDH concatenation, and (with auto) only when it makes fewer segments than UCS-2.
func TestNationalChoice(t *testing.T) {
	tr := "Bugün hava çok güzel, şimdi dışarı çıkıyoruz. "           // Turkish: ğ ş ı ç
	pt := "Não há açúcar na mesa, avó; ação à vista, pão e feijão. " // Portuguese: ã á ç ú ó à
	all := Languages(Turkish, Spanish, Portuguese)
	tests := []struct {
		name     string
		text     string
		opt      Options
		lang     Language
		enc      Encoding
		segments int
	}{
		{"disabled", strings.Repeat(tr, 2), Options{}, NoLanguage, UCS2, 2},
		{"turkish saves a segment", strings.Repeat(tr, 2), Options{National: all}, Turkish, GSM7, 1},
		{"no saving: one short ucs2 segment", "ş", Options{National: all}, NoLanguage, UCS2, 1},
		{"default gsm text never national", "hello {world}", Options{National: all}, NoLanguage, GSM7, 1},
		{"other language not enabled", strings.Repeat(tr, 2), Options{National: Languages(Spanish)}, NoLanguage, UCS2, 2},
		{"not with sar", strings.Repeat(tr, 2), Options{National: all, Concat: ConcatSAR}, NoLanguage, UCS2, 2},
		{"not with payload", strings.Repeat(tr, 2), Options{National: all, Concat: ConcatPayload}, NoLanguage, UCS2, 2},
		{"portuguese multi-part udh8", strings.Repeat(pt, 4), Options{National: all}, Portuguese, GSM7, 2},
		{"portuguese multi-part udh16", strings.Repeat(pt, 4), Options{National: all, Concat: ConcatUDH16}, Portuguese, GSM7, 2},
		{"forced gsm7 uses national", "ş", Options{Encoding: GSM7, National: all}, Turkish, GSM7, 1},
		{"forced ucs2 never national", strings.Repeat(tr, 2), Options{Encoding: UCS2, National: all}, NoLanguage, UCS2, 2},
		{"lowest identifier on a tie", strings.Repeat("ç", 75), Options{National: all}, Turkish, GSM7, 1},
		{"no saving at equal segments", strings.Repeat("ç", 80), Options{National: all}, NoLanguage, UCS2, 2},
		{"emoji is never national", strings.Repeat(tr, 2) + "😀", Options{National: all}, NoLanguage, UCS2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := checkSplit(t, tt.text, tt.opt, 5)
			if m.Language != tt.lang || m.Encoding != tt.enc || m.Segments != tt.segments {
				t.Fatalf("language %v %v %d segments (%d units); want %v %v %d", m.Language, m.Encoding, m.Segments, m.Units, tt.lang, tt.enc, tt.segments)
			}
			c, _ := CountText(tt.text, tt.opt)
			if c.Language != tt.lang {
				t.Fatalf("CountText language %v", c.Language)
			}
		})
	}
}

// TestNationalCapacity checks 155 septets in one part and 149/148 per concatenated part.
func TestNationalCapacity(t *testing.T) {
	opt := Options{Encoding: GSM7, National: Languages(Turkish)}
	for _, tt := range []struct {
		name      string
		text      string
		concat    Concat
		partUnits []int
	}{
		{"155 single", "ş" + strings.Repeat("a", 153), ConcatUDH8, []int{155}},
		{"156 two parts", "ş" + strings.Repeat("a", 154), ConcatUDH8, []int{149, 7}},
		{"escape not split at 149", strings.Repeat("a", 148) + "ş" + strings.Repeat("a", 10), ConcatUDH8, []int{148, 12}},
		{"udh16 148", "ş" + strings.Repeat("a", 154), ConcatUDH16, []int{148, 8}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := opt
			o.Concat = tt.concat
			m := checkSplit(t, tt.text, o, 9)
			var got []int
			for _, p := range m.Parts {
				got = append(got, len(p.ShortMessage)-int(p.ShortMessage[0])-1)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.partUnits) {
				t.Fatalf("part septets %v, want %v", got, tt.partUnits)
			}
		})
	}
}
