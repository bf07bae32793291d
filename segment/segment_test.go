package segment

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// TestGSMBasicTable checks the default alphabet against facts of 3GPP TS 23.038 that
// are easy to get wrong, each as written in the spec, independently of the table.
func TestGSMBasicTable(t *testing.T) {
	tests := []struct {
		r    rune
		code byte
	}{
		{'@', 0x00}, {'£', 0x01}, {'$', 0x02}, {'¥', 0x03}, {'è', 0x04}, {'é', 0x05},
		{'ù', 0x06}, {'ì', 0x07}, {'ò', 0x08}, {'Ç', 0x09}, {'\n', 0x0A}, {'Ø', 0x0B},
		{'ø', 0x0C}, {'\r', 0x0D}, {'Å', 0x0E}, {'å', 0x0F}, {'Δ', 0x10}, {'_', 0x11},
		{'Φ', 0x12}, {'Γ', 0x13}, {'Λ', 0x14}, {'Ω', 0x15}, {'Π', 0x16}, {'Ψ', 0x17},
		{'Σ', 0x18}, {'Θ', 0x19}, {'Ξ', 0x1A}, {'Æ', 0x1C}, {'æ', 0x1D}, {'ß', 0x1E},
		{'É', 0x1F}, {' ', 0x20}, {'¤', 0x24}, {'0', 0x30}, {'?', 0x3F}, {'¡', 0x40},
		{'A', 0x41}, {'Z', 0x5A}, {'Ä', 0x5B}, {'Ö', 0x5C}, {'Ñ', 0x5D}, {'Ü', 0x5E},
		{'§', 0x5F}, {'¿', 0x60}, {'a', 0x61}, {'z', 0x7A}, {'ä', 0x7B}, {'ö', 0x7C},
		{'ñ', 0x7D}, {'ü', 0x7E}, {'à', 0x7F},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%U", tt.r), func(t *testing.T) {
			if n := GSM7Septets(tt.r); n != 1 {
				t.Fatalf("GSM7Septets(%q) = %d, want 1", tt.r, n)
			}
			if got := encode(nil, string(tt.r), GSM7); len(got) != 1 || got[0] != tt.code {
				t.Fatalf("encode(%q) = % X, want %02X", tt.r, got, tt.code)
			}
		})
	}
	// Not in the default alphabet (nor the extension table).
	for _, r := range "ç`¨áíóúÁÍÓÚâêîôûãõ\t\x00\x1b\x7f°ÿ" {
		if IsGSM7(r) {
			t.Errorf("IsGSM7(%q) = true, want false", r)
		}
	}
	n := 0
	for r := rune(0); r < 0x11000; r++ {
		if GSM7Septets(r) == 1 {
			n++
		}
	}
	if n != 127 {
		t.Errorf("%d one-septet characters, want 127 (128 septets minus the escape)", n)
	}
}

// TestGSMExtensionTable checks that each extension character costs two septets and is
// escape + its code, and that nothing else is in the extension table.
func TestGSMExtensionTable(t *testing.T) {
	tests := []struct {
		r    rune
		code byte
	}{
		{'\f', 0x0A}, {'^', 0x14}, {'{', 0x28}, {'}', 0x29}, {'\\', 0x2F},
		{'[', 0x3C}, {'~', 0x3D}, {']', 0x3E}, {'|', 0x40}, {'€', 0x65},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%U", tt.r), func(t *testing.T) {
			if n := GSM7Septets(tt.r); n != 2 {
				t.Fatalf("GSM7Septets(%q) = %d, want 2", tt.r, n)
			}
			c, err := CountText(string(tt.r), Options{})
			if err != nil || c.Encoding != GSM7 || c.Units != 2 {
				t.Fatalf("CountText(%q) = %+v, %v; want gsm7, 2 units", tt.r, c, err)
			}
			if got := encode(nil, string(tt.r), GSM7); string(got) != string([]byte{0x1B, tt.code}) {
				t.Fatalf("encode(%q) = % X, want 1B %02X", tt.r, got, tt.code)
			}
		})
	}
	n := 0
	for r := rune(0); r < 0x11000; r++ {
		if GSM7Septets(r) == 2 {
			n++
		}
	}
	if n != len(tests) {
		t.Errorf("%d extension characters, want %d", n, len(tests))
	}
}

func gsmText(septets int) string { return strings.Repeat("a", septets) }

// TestPublishedFacts covers the spec's "known published facts".
func TestPublishedFacts(t *testing.T) {
	for _, tt := range []struct{ septets, segments int }{
		{0, 1}, {1, 1}, {2, 1}, {80, 1}, {159, 1}, {160, 1}, {161, 2}, {240, 2},
		{305, 2}, {306, 2}, {307, 3}, {320, 3},
	} {
		t.Run(fmt.Sprintf("gsm7-%d", tt.septets), func(t *testing.T) {
			m := checkSplit(t, gsmText(tt.septets), Options{}, 7)
			if m.Encoding != GSM7 || m.Units != tt.septets || m.Segments != tt.segments {
				t.Fatalf("%v %d units %d segments, want gsm7 %d units %d segments", m.Encoding, m.Units, m.Segments, tt.septets, tt.segments)
			}
		})
	}
	for _, tt := range []struct{ units, segments int }{{70, 1}, {71, 2}, {134, 2}, {135, 3}} {
		t.Run(fmt.Sprintf("ucs2-%d", tt.units), func(t *testing.T) {
			m := checkSplit(t, strings.Repeat("ж", tt.units), Options{}, 7)
			if m.Encoding != UCS2 || m.Units != tt.units || m.Segments != tt.segments {
				t.Fatalf("%v %d units %d segments, want ucs2 %d units %d segments", m.Encoding, m.Units, m.Segments, tt.units, tt.segments)
			}
		})
	}
	t.Run("escape-straddles-160", func(t *testing.T) {
		m := checkSplit(t, gsmText(159)+"€", Options{}, 7)
		if m.Units != 161 || m.Segments != 2 {
			t.Fatalf("%d units %d segments, want 161 units 2 segments", m.Units, m.Segments)
		}
	})
}

// TestSegmentBoundaries checks where parts end: escapes, surrogate pairs, grapheme
// clusters and CR LF at a boundary, by the number of units in each part.
func TestSegmentBoundaries(t *testing.T) {
	family := "👩\u200d👩\u200d👧\u200d👦" // 11 UTF-16 units, one cluster
	flag := "🇫🇮"                       // 4 units, one cluster
	tests := []struct {
		name      string
		text      string
		opt       Options
		partUnits []int
	}{
		{"81 euro: 2 segments", strings.Repeat("€", 81), Options{}, []int{152, 10}},
		{"80 euro: 160 septets, 1 segment", strings.Repeat("€", 80), Options{}, []int{160}},
		{"1+2x76 euro: 3 segments", strings.Repeat("€", 1+2*76), Options{}, []int{152, 152, 2}},
		{"escape at septet 153 moves", gsmText(152) + "€" + gsmText(10), Options{}, []int{152, 12}},
		{"escape ending at septet 153 stays", gsmText(151) + "€" + gsmText(10), Options{}, []int{153, 10}},
		{"escape at septet 152 with udh16 moves", gsmText(151) + "€" + gsmText(10), Options{Concat: ConcatUDH16}, []int{151, 12}},
		{"escape at septet 160 single", gsmText(158) + "€", Options{}, []int{160}},
		{"CR LF may be split", gsmText(152) + "\r\n" + gsmText(9), Options{}, []int{153, 10}},
		{"ucs2 CR LF may be split", strings.Repeat("ж", 66) + "\r\n" + strings.Repeat("ж", 5), Options{}, []int{67, 6}},
		{"emoji at ucs2 boundary moves", strings.Repeat("ж", 66) + "😀" + strings.Repeat("ж", 10), Options{}, []int{66, 12}},
		{"emoji ending at unit 67 stays", strings.Repeat("ж", 65) + "😀" + strings.Repeat("ж", 10), Options{}, []int{67, 10}},
		{"emoji at unit 70 single", strings.Repeat("ж", 68) + "😀", Options{}, []int{70}},
		{"emoji straddling 70/71", strings.Repeat("ж", 69) + "😀", Options{}, []int{67, 4}},
		{"ZWJ family moves whole", strings.Repeat("ж", 60) + family + "ж", Options{}, []int{60, 12}},
		{"flag moves whole", strings.Repeat("ж", 66) + flag + "ж", Options{}, []int{66, 5}},
		{"two flags split between flags", strings.Repeat("ж", 62) + flag + flag + "ж", Options{}, []int{66, 5}},
		{"combining mark stays with its letter", strings.Repeat("ж", 66) + "e\u0301" + strings.Repeat("ж", 3), Options{}, []int{66, 5}},
		{"udh16 ucs2 boundary 66", strings.Repeat("ж", 65) + "😀" + strings.Repeat("ж", 5), Options{Concat: ConcatUDH16}, []int{65, 7}},
		{"cluster of exactly one segment moves whole", strings.Repeat("ж", 10) + "e" + strings.Repeat("\u0301", 66), Options{}, []int{10, 67}},
		{"cluster longer than a segment is cut between code points", "e" + strings.Repeat("\u0301", 80), Options{}, []int{67, 14}},
		{"cluster longer than a segment never cuts a pair", "😀" + strings.Repeat("\U000E0020", 40) + "\U000E007F", Options{}, []int{66, 18}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := checkSplit(t, tt.text, tt.opt, 1)
			var got []int
			for _, p := range m.Parts {
				n := len(p.ShortMessage)
				if p.UDHI {
					n -= int(p.ShortMessage[0]) + 1
				}
				if m.Encoding == UCS2 {
					n /= 2
				}
				got = append(got, n)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.partUnits) {
				t.Fatalf("part units %v, want %v", got, tt.partUnits)
			}
		})
	}
}

func TestEmptyText(t *testing.T) {
	// Decision: the empty text is one empty GSM-7 segment; dispatch rejects an SMS
	// without text as missing_field before segmenting.
	for _, enc := range []Encoding{Auto, GSM7, UCS2} {
		t.Run(enc.String(), func(t *testing.T) {
			m := checkSplit(t, "", Options{Encoding: enc}, 0)
			want := GSM7
			if enc == UCS2 {
				want = UCS2
			}
			if m.Encoding != want || m.Segments != 1 || m.Units != 0 || len(m.Parts) != 1 || len(m.Parts[0].ShortMessage) != 0 || m.Parts[0].UDHI {
				t.Fatalf("empty text: %+v", m)
			}
		})
	}
}

// TestManySegments checks 254/255/256 segments: 256 is too_long, except with
// message_payload, which has no segment limit.
func TestManySegments(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		opt      Options
		segments int
		tooLong  bool
	}{
		{"gsm7 254", gsmText(254 * 153), Options{}, 254, false},
		{"gsm7 255", gsmText(255 * 153), Options{}, 255, false},
		{"gsm7 256", gsmText(255*153 + 1), Options{}, 256, true},
		{"gsm7 256 by escapes", strings.Repeat("€", 255*76+1), Options{}, 256, true},
		{"gsm7 udh16 255", gsmText(255 * 152), Options{Concat: ConcatUDH16}, 255, false},
		{"gsm7 udh16 256", gsmText(255*152 + 1), Options{Concat: ConcatUDH16}, 256, true},
		{"sar 256", gsmText(255*153 + 1), Options{Concat: ConcatSAR}, 256, true},
		{"ucs2 255", strings.Repeat("ж", 255*67), Options{}, 255, false},
		{"ucs2 256", strings.Repeat("ж", 255*67+1), Options{}, 256, true},
		{"ucs2 emoji 256", strings.Repeat("😀", 255*33+1), Options{}, 256, true},
		{"payload 256", gsmText(255*153 + 1), Options{Concat: ConcatPayload}, 256, false},
		{"payload over 65535 octets", strings.Repeat("ж", 32768), Options{Concat: ConcatPayload}, 490, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := CountText(tt.text, tt.opt)
			if c.Segments != tt.segments {
				t.Fatalf("segments %d, want %d", c.Segments, tt.segments)
			}
			if tt.tooLong != errors.Is(err, ErrTooLong) {
				t.Fatalf("error %v, want too_long %v", err, tt.tooLong)
			}
			var se *Error
			if tt.tooLong && (!errors.As(err, &se) || se.Code != "too_long") {
				t.Fatalf("error %v is not *Error too_long", err)
			}
			checkSplit(t, tt.text, tt.opt, 300)
		})
	}
}

func TestForcedEncoding(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		opt      Options
		enc      Encoding
		units    int
		mismatch bool
	}{
		{"auto gsm", "Hello @$", Options{}, GSM7, 8, false},
		{"auto ç is ucs2", "ça", Options{}, UCS2, 2, false},
		{"auto Ç is gsm", "Ça", Options{}, GSM7, 2, false},
		{"auto backtick is ucs2", "a`b", Options{}, UCS2, 3, false},
		{"gsm7 forced ok", "Ça{", Options{Encoding: GSM7}, GSM7, 4, false},
		{"gsm7 forced ç", "ça", Options{Encoding: GSM7}, GSM7, 0, true},
		{"gsm7 forced emoji", "hi 😀", Options{Encoding: GSM7}, GSM7, 0, true},
		{"gsm7 forced invalid utf-8", "a\xff", Options{Encoding: GSM7}, GSM7, 0, true},
		{"ucs2 forced on gsm text", "abc€", Options{Encoding: UCS2}, UCS2, 4, false},
		{"ucs2 counts code units", "a😀", Options{}, UCS2, 3, false},
		{"invalid utf-8 becomes U+FFFD", "a\xff\xfeb", Options{}, UCS2, 3, false},
		{"smart makes gsm", "“Hi” – it’s…", Options{Smart: true}, GSM7, 14, false},
		{"smart off keeps ucs2", "“Hi”", Options{}, UCS2, 4, false},
		{"smart with forced gsm7", "“Hi”", Options{Smart: true, Encoding: GSM7}, GSM7, 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := CountText(tt.text, tt.opt)
			if tt.mismatch {
				var se *Error
				if !errors.Is(err, ErrEncodingMismatch) || !errors.As(err, &se) || se.Code != "encoding_mismatch" || !strings.Contains(se.Detail, "U+") {
					t.Fatalf("error %v, want encoding_mismatch naming the character", err)
				}
			} else if err != nil || c.Encoding != tt.enc || c.Units != tt.units {
				t.Fatalf("CountText = %+v, %v; want %v %d units", c, err, tt.enc, tt.units)
			}
			checkSplit(t, tt.text, tt.opt, 9)
		})
	}
}

// TestConcatForms checks the exact bytes of each concatenation form.
func TestConcatForms(t *testing.T) {
	text := gsmText(159) + "b€" // 162 septets
	t.Run("udh8", func(t *testing.T) {
		m := checkSplit(t, text, Options{}, 0x1234)
		if got := fmt.Sprintf("% X", m.Parts[1].ShortMessage); got != "05 00 03 34 02 02 61 61 61 61 61 61 62 1B 65" {
			t.Fatalf("part 2 = %s", got)
		}
	})
	t.Run("udh16", func(t *testing.T) {
		m := checkSplit(t, text, Options{Concat: ConcatUDH16}, 0x1234)
		if got := fmt.Sprintf("% X", m.Parts[1].ShortMessage); got != "06 08 04 12 34 02 02 61 61 61 61 61 61 61 62 1B 65" {
			t.Fatalf("part 2 = %s", got)
		}
	})
	t.Run("sar", func(t *testing.T) {
		m := checkSplit(t, text, Options{Concat: ConcatSAR}, 0x1234)
		p := m.Parts[1]
		if got := fmt.Sprintf("% X", p.ShortMessage); got != "61 61 61 61 61 61 62 1B 65" || !p.SAR || p.UDHI || p.Ref != 0x1234 || p.Seq != 2 || p.Total != 2 {
			t.Fatalf("part 2 = %s %+v", got, p)
		}
	})
	t.Run("payload", func(t *testing.T) {
		m := checkSplit(t, text, Options{Concat: ConcatPayload}, 0x1234)
		p := m.Parts[0]
		if len(m.Parts) != 1 || !p.Payload || p.UDHI || len(p.ShortMessage) != 162 || m.Segments != 2 {
			t.Fatalf("payload: %d parts, %+v", len(m.Parts), p)
		}
	})
	t.Run("single part never has a UDH", func(t *testing.T) {
		for _, c := range []Concat{ConcatUDH8, ConcatUDH16, ConcatSAR, ConcatPayload} {
			m := checkSplit(t, gsmText(160), Options{Concat: c}, 1)
			p := m.Parts[0]
			if len(m.Parts) != 1 || p.UDHI || p.SAR || p.Payload || len(p.ShortMessage) != 160 {
				t.Fatalf("concat %d: %+v", c, p)
			}
		}
	})
	t.Run("ucs2 bytes", func(t *testing.T) {
		m := checkSplit(t, "ж😀", Options{}, 0)
		if got := fmt.Sprintf("% X", m.Parts[0].ShortMessage); got != "04 36 D8 3D DE 00" || m.Parts[0].DataCoding != 0x08 {
			t.Fatalf("ucs2 = %s dc %#x", got, m.Parts[0].DataCoding)
		}
	})
}

func TestSmart(t *testing.T) {
	for _, s := range smartTable {
		t.Run(fmt.Sprintf("%U", s.from), func(t *testing.T) {
			in := "a" + string(s.from) + "b"
			if got := Smart(in); got != "a"+s.to+"b" {
				t.Fatalf("Smart(%q) = %q, want %q", in, got, "a"+s.to+"b")
			}
			for _, r := range s.to {
				if GSM7Septets(r) != 1 {
					t.Fatalf("replacement %q is not GSM-7 basic", r)
				}
			}
		})
	}
	for i := 1; i < len(smartTable); i++ {
		if smartTable[i-1].from >= smartTable[i].from {
			t.Fatalf("smartTable not sorted at %U", smartTable[i].from)
		}
	}
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain text", "plain text"},
		{"• item 1\n• item 2", "* item 1\n* item 2"},
		{"card •••• 1234", "card **** 1234"},
		{"ça va 😀 — “oui”", "ça va 😀 - \"oui\""},
		{"keep 👩\u200d💻 ZWJ", "keep 👩\u200d💻 ZWJ"},
		{"a\u00a0b\u2009c\u3000d", "a b c d"},
		{"zero\u200bwidth\ufeff", "zerowidth"},
	}
	for _, tt := range tests {
		if got := Smart(tt.in); got != tt.want {
			t.Errorf("Smart(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// Letters of other scripts and accented letters are never changed.
	for _, s := range []string{"çÇáñßøØ", "Привет", "Γειά σου", "日本語", "e\u0301"} {
		if got := Smart(s); got != s {
			t.Errorf("Smart(%q) = %q: changed letters", s, got)
		}
	}
}

// TestIsolated guarantees the uniseg shortcut is sound: two runes that isolated reports
// true for always have a grapheme cluster boundary between them, per uniseg.
func TestIsolated(t *testing.T) {
	probes := []rune{'a', '\r', '©', 'Ω', 'ж', '–', '€', 'あ', 'ア', '中', 'ÿ', 'ʼ'}
	for r := rune(0); r < 0x10000; r++ {
		if !isolated(r) || r >= 0xD800 && r < 0xE000 {
			continue
		}
		for _, p := range append(probes, r) {
			for _, s := range []string{string(r) + string(p), string(p) + string(r)} {
				if s == "\r\n" {
					continue // CR LF: split on purpose
				}
				_, first := utf8.DecodeRuneInString(s)
				if end, _ := nextCluster(s, 0); end != first {
					t.Fatalf("nextCluster(%q) = %d, want %d", s, end, first)
				}
				if c, _, _, _ := uniseg.FirstGraphemeClusterInString(s, -1); len(c) != first {
					t.Fatalf("%U next to %U: first cluster %q per uniseg, isolated says one rune", r, p, c)
				}
			}
		}
	}
}

// TestGSMNoClusters guarantees that GSM-7 splitting may ignore grapheme clusters: no two
// GSM-7 characters (default alphabet or extension table) join into one cluster, CR LF
// aside (split on purpose).
func TestGSMNoClusters(t *testing.T) {
	var chars []rune
	for r := rune(0); r < 0x10000; r++ {
		if IsGSM7(r) {
			chars = append(chars, r)
		}
	}
	if len(chars) != 137 {
		t.Fatalf("%d GSM-7 characters, want 127 + 10", len(chars))
	}
	for _, a := range chars {
		for _, b := range chars {
			s := string(a) + string(b)
			if s == "\r\n" {
				continue
			}
			if c, _, _, _ := uniseg.FirstGraphemeClusterInString(s, -1); len(c) == len(s) {
				t.Fatalf("%q is one grapheme cluster", s)
			}
		}
	}
}

// TestConcurrent guarantees that CountText and Split share no mutable state: with distinct
// Messages they run in parallel under the race detector and give identical results.
func TestConcurrent(t *testing.T) {
	texts := []string{"hello", strings.Repeat("€", 81), strings.Repeat("ж😀", 50), "“smart” — ok", strings.Repeat("Ğş", 40)}
	opt := Options{Smart: true, National: Languages(Turkish)}
	want := make([]string, len(texts))
	for i, s := range texts {
		var m Message
		if err := Split(&m, s, opt, 1); err != nil {
			t.Fatal(err)
		}
		want[i] = fmt.Sprint(m.Parts)
	}
	done := make(chan string, 4)
	for g := 0; g < 4; g++ {
		go func() {
			var m Message
			for n := 0; n < 200; n++ {
				i := n % len(texts)
				if _, err := CountText(texts[i], opt); err != nil {
					done <- err.Error()
					return
				}
				if err := Split(&m, texts[i], opt, 1); err != nil || fmt.Sprint(m.Parts) != want[i] {
					done <- fmt.Sprintf("text %d: %v", i, err)
					return
				}
			}
			done <- ""
		}()
	}
	for g := 0; g < 4; g++ {
		if msg := <-done; msg != "" {
			t.Fatal(msg)
		}
	}
}
