package segment

import (
	"bytes"
	"errors"
	"testing"
)

// checkSplit splits text and checks every invariant that must hold for any input:
// CountText agrees with Split; every part is within capacity; UDH, UDHI, SAR and payload
// flags match the concatenation form; no part ends with a lone escape or cuts a
// surrogate pair; reassembly gives back m.Text, which is the text after smart encoding.
// It returns the message, or nil when Split failed with the same error CountText gave.
func checkSplit(t testing.TB, text string, opt Options, ref uint16) *Message {
	t.Helper()
	var m Message
	err := Split(&m, text, opt, ref)
	c, cerr := CountText(text, opt)
	if (err == nil) != (cerr == nil) {
		t.Fatalf("Split error %v, CountText error %v", err, cerr)
	}
	if c.Encoding != m.Encoding || c.Units != m.Units || c.Segments != m.Segments {
		t.Fatalf("CountText %+v, Split encoding %v units %d segments %d", c, m.Encoding, m.Units, m.Segments)
	}
	if err != nil {
		var se *Error
		if !errors.As(err, &se) || (se.Code != "too_long" && se.Code != "encoding_mismatch") {
			t.Fatalf("error %v is not a *segment.Error with a known code", err)
		}
		if len(m.Parts) != 0 {
			t.Fatalf("failed Split left %d parts", len(m.Parts))
		}
		if se.Code == "encoding_mismatch" && opt.Encoding != GSM7 {
			t.Fatalf("encoding_mismatch without forced gsm7")
		}
		return nil
	}
	want := text
	if opt.Smart {
		want = Smart(text)
	}
	if m.Text != want && m.Text != toValid(want) {
		t.Fatalf("m.Text = %q, want %q", m.Text, want)
	}
	if opt.Encoding == GSM7 && m.Encoding != GSM7 || opt.Encoding == UCS2 && m.Encoding != UCS2 {
		t.Fatalf("forced %v, got %v", opt.Encoding, m.Encoding)
	}
	if len(m.Parts) == 0 {
		t.Fatal("no parts")
	}
	dc := byte(0x00)
	single, multi := 160, 153
	if m.Encoding == UCS2 {
		dc, single, multi = 0x08, 70, 67
	}
	if opt.Concat == ConcatUDH16 {
		multi--
	}
	nat := m.Language != NoLanguage
	if nat {
		single, multi = 155, 149
		if opt.Concat == ConcatUDH16 {
			multi = 148
		}
		if !opt.National.Has(m.Language) || m.Encoding != GSM7 || opt.Concat > ConcatUDH16 {
			t.Fatalf("language %v with options %+v, encoding %v", m.Language, opt, m.Encoding)
		}
		plain := opt
		plain.National = 0
		plain.Encoding = UCS2
		u, _ := CountText(text, plain)
		if _, gerr := CountText(text, Options{Encoding: GSM7, Smart: opt.Smart}); gerr == nil {
			t.Fatalf("national table used for a default GSM-7 text")
		}
		if opt.Encoding == Auto && m.Segments >= u.Segments {
			t.Fatalf("national table used for %d segments, UCS-2 would be %d", m.Segments, u.Segments)
		}
	}
	payloadForm := opt.Concat == ConcatPayload && m.Segments > 1
	if !payloadForm && len(m.Parts) != m.Segments {
		t.Fatalf("%d parts for %d segments", len(m.Parts), m.Segments)
	}
	if m.Segments > 255 && !payloadForm {
		t.Fatalf("%d segments without error", m.Segments)
	}
	units := 0
	for i, p := range m.Parts {
		if p.DataCoding != dc || p.Seq != i+1 || p.Total != len(m.Parts) || p.Ref != ref {
			t.Fatalf("part %d: data_coding %#x seq %d total %d ref %d", i+1, p.DataCoding, p.Seq, p.Total, p.Ref)
		}
		data := p.ShortMessage
		multiPart := len(m.Parts) > 1
		wantUDHI := nat || multiPart && (opt.Concat == ConcatUDH8 || opt.Concat == ConcatUDH16)
		if p.UDHI != wantUDHI || p.SAR != (multiPart && opt.Concat == ConcatSAR) || p.Payload != payloadForm {
			t.Fatalf("part %d: UDHI %v SAR %v Payload %v (concat %d, %d parts)", i+1, p.UDHI, p.SAR, p.Payload, opt.Concat, len(m.Parts))
		}
		if p.UDHI {
			var udh []byte
			switch {
			case nat && len(m.Parts) == 1:
				udh = []byte{0x03, 0x24, 0x01, byte(m.Language)}
			case nat && opt.Concat == ConcatUDH8:
				udh = []byte{0x08, 0x00, 0x03, byte(ref), byte(p.Total), byte(p.Seq), 0x24, 0x01, byte(m.Language)}
			case nat:
				udh = []byte{0x09, 0x08, 0x04, byte(ref >> 8), byte(ref), byte(p.Total), byte(p.Seq), 0x24, 0x01, byte(m.Language)}
			case opt.Concat == ConcatUDH8:
				udh = []byte{0x05, 0x00, 0x03, byte(ref), byte(p.Total), byte(p.Seq)}
			default:
				udh = []byte{0x06, 0x08, 0x04, byte(ref >> 8), byte(ref), byte(p.Total), byte(p.Seq)}
			}
			if !bytes.HasPrefix(data, udh) {
				t.Fatalf("part %d: UDH % X, want % X", i+1, data[:min(len(data), len(udh))], udh)
			}
			data = data[len(udh):]
		}
		n := len(data)
		if m.Encoding == UCS2 {
			n /= 2
		}
		units += n
		limit := multi
		switch {
		case payloadForm:
			limit = 1 << 30
		case len(m.Parts) == 1:
			limit = single
		}
		if n > limit {
			t.Fatalf("part %d: %d units over capacity %d", i+1, n, limit)
		}
		// No GSM-7 character is septet 0x1B itself, so a part ending in 0x1B cut an escape.
		if m.Encoding == GSM7 && n > 0 && data[n-1] == 0x1B {
			t.Fatalf("part %d ends with a lone escape", i+1)
		}
	}
	if units != m.Units {
		t.Fatalf("parts hold %d units, Units = %d", units, m.Units)
	}
	got, err := Reassemble(m.Parts)
	if err != nil {
		t.Fatalf("Reassemble: %v", err)
	}
	if got != m.Text {
		t.Fatalf("Reassemble = %q, want %q", got, m.Text)
	}
	return &m
}

// toValid is the text Split works on for invalid UTF-8 input.
func toValid(s string) string {
	return string(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")))
}
