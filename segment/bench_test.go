package segment

import (
	"strings"
	"testing"

	"github.com/fiorix/go-smpp/smpp/encoding"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"
)

// Benchmark texts.
var (
	// gsm1 is a one-part GSM-7 text of 148 characters (the size go-smpp was measured at).
	gsm1 = "Your verification code is 482913. It expires in 10 minutes. If you did not request this code, please ignore this message. Do not share it with anyone."
	// gsm160 is exactly 160 GSM-7 characters: the count performance goal.
	gsm160 = gsm1 + strings.Repeat(".", 160-len(gsm1))
	// gsm3 is a three-part GSM-7 text with extension characters (€ [ ] { } ~ |).
	gsm3 = strings.Repeat("Your order [#1042] of 25€ {2 items} ships today ~ track it at example.com/t | thanks! ", 4)
	// ucs2Emoji is a two-part UCS-2 text with emoji, a ZWJ sequence and a flag.
	ucs2Emoji = "Hei! Tilauksesi on matkalla 🚚📦 Kiitos että valitsit meidät 😀👍 Terveisin tiimi 👩‍💻🇫🇮 — nähdään pian!"
)

func TestBenchmarkTexts(t *testing.T) {
	for _, tt := range []struct {
		name     string
		text     string
		enc      Encoding
		segments int
	}{
		{"gsm1", gsm1, GSM7, 1}, {"gsm160", gsm160, GSM7, 1}, {"gsm3", gsm3, GSM7, 3}, {"ucs2Emoji", ucs2Emoji, UCS2, 2},
	} {
		m := checkSplit(t, tt.text, Options{}, 1)
		if m.Encoding != tt.enc || m.Segments != tt.segments || tt.name == "gsm160" && m.Units != 160 {
			t.Errorf("%s: %v %d segments %d units, want %v %d segments", tt.name, m.Encoding, m.Segments, m.Units, tt.enc, tt.segments)
		}
	}
}

// TestAllocations guarantees the allocation budget of the hot path: CountText and Smart
// without substitutions allocate nothing, Split into a reused Message nothing, Split into
// a fresh Message at most twice.
func TestAllocations(t *testing.T) {
	for _, text := range []string{gsm160, gsm3, ucs2Emoji} {
		if n := testing.AllocsPerRun(50, func() { _, _ = CountText(text, Options{}) }); n != 0 {
			t.Errorf("CountText allocates %.1f times", n)
		}
		if n := testing.AllocsPerRun(50, func() { _ = Smart(text) }); n != 0 && smartIndex(text) < 0 {
			t.Errorf("Smart without substitutions allocates %.1f times", n)
		}
		var m Message
		if n := testing.AllocsPerRun(50, func() { _ = Split(&m, text, Options{}, 1) }); n != 0 {
			t.Errorf("Split into a reused Message allocates %.1f times", n)
		}
		if n := testing.AllocsPerRun(50, func() { _ = Split(new(Message), text, Options{}, 1) }); n > 2 {
			t.Errorf("Split into a fresh Message allocates %.1f times", n)
		}
	}
}

var sinkCount Count

func BenchmarkCount(b *testing.B) {
	for _, bb := range []struct{ name, text string }{
		{"gsm160", gsm160}, {"gsm1", gsm1}, {"gsm3", gsm3}, {"ucs2emoji", ucs2Emoji},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, err := CountText(bb.text, Options{})
				if err != nil {
					b.Fatal(err)
				}
				sinkCount = c
			}
		})
	}
}

func BenchmarkSplit(b *testing.B) {
	for _, bb := range []struct{ name, text string }{
		{"gsm1", gsm1}, {"gsm3", gsm3}, {"ucs2emoji", ucs2Emoji},
	} {
		// fresh: a new Message per split (what a dispatcher that hands parts off does).
		b.Run(bb.name+"/fresh", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var m Message
				if err := Split(&m, bb.text, Options{}, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bb.name+"/reused", func(b *testing.B) {
			b.ReportAllocs()
			var m Message
			for b.Loop() {
				if err := Split(&m, bb.text, Options{}, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGoSMPP runs go-smpp's GSM-7 validation and encoding of the same texts, for the
// side-by-side comparison (it neither counts nor splits; its UCS-2 path is not measured
// since it would not validate).
func BenchmarkGoSMPP(b *testing.B) {
	for _, bb := range []struct{ name, text string }{{"gsm1", gsm1}, {"gsm3", gsm3}} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if bad := encoding.ValidateGSM7String(bb.text); len(bad) != 0 {
					b.Fatal(bad)
				}
				if out := pdutext.GSM7(bb.text).Encode(); len(out) == 0 {
					b.Fatal("empty")
				}
			}
		})
	}
}
