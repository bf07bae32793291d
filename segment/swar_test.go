package segment

import "testing"

// TestSWAR checks the word tests against the byte tables for every byte value in every
// position.
func TestSWAR(t *testing.T) {
	base := "abcdefgh"
	for pos := 0; pos < 8; pos++ {
		for c := 0; c < 256; c++ {
			b := []byte(base)
			b[pos] = byte(c)
			v := load8(string(b), 0)
			wantPlain := c >= 0x20 && c <= 0x5A || c >= 0x61 && c <= 0x7A
			if plain8(v) != wantPlain {
				t.Fatalf("plain8 with %#x at %d = %v", c, pos, !wantPlain)
			}
			if wantPlain && tab.cost[c] != 1 {
				t.Fatalf("plain byte %#x costs %d septets", c, tab.cost[c])
			}
			ext, ok := gsm8(v)
			wantOK := c >= 0x20 && c < 0x7F && c != 0x60
			wantExt := 0
			if wantOK && tab.cost[c] == 2 {
				wantExt = 1
			}
			if ok != wantOK || ok && ext != wantExt {
				t.Fatalf("gsm8 with %#x at %d = %d, %v", c, pos, ext, ok)
			}
			if wantOK && tab.cost[c] == 0 {
				t.Fatalf("gsm8 byte %#x is not GSM-7", c)
			}
			wantSame := wantPlain && c != '@' && c != '$'
			if same8(v) != wantSame {
				t.Fatalf("same8 with %#x at %d = %v", c, pos, !wantSame)
			}
			if wantSame && tab.code[c]&0x7F != uint16(c) {
				t.Fatalf("same byte %#x encodes as %#x", c, tab.code[c]&0x7F)
			}
		}
	}
}
