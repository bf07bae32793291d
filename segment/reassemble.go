package segment

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
)

// ErrMalformed is returned by Reassemble for a part that is not a valid short_message.
var ErrMalformed = errors.New("segment: malformed part")

// Reassemble decodes parts, in the order given, back to the text a handset shows: it
// strips each part's UDH (when UDHI; its national language single shift IE 0x24 selects
// the shift table), decodes GSM-7 (unpacked septets, data_coding 0x00)
// or UCS-2 (UTF-16BE, 0x08), and concatenates. It is strict, so that it can check what
// Split makes: an escape at the end of a part, an undefined extension septet, a surrogate
// pair cut between parts, or an unknown data_coding is an error wrapping ErrMalformed.
// It is the inverse of Split: Reassemble(m.Parts) == m.Text.
func Reassemble(parts []Part) (string, error) {
	var b strings.Builder
	for i := range parts {
		if err := decodePart(&b, &parts[i]); err != nil {
			return "", fmt.Errorf("%w: part %d: %w", ErrMalformed, i+1, err)
		}
	}
	return b.String(), nil
}

func decodePart(b *strings.Builder, p *Part) error {
	data := p.ShortMessage
	lang := NoLanguage
	if p.UDHI {
		if len(data) == 0 || int(data[0])+1 > len(data) {
			return errors.New("UDH length exceeds short_message")
		}
		udh := data[1 : 1+int(data[0])]
		data = data[1+int(data[0]):]
		for len(udh) > 0 {
			if len(udh) < 2 || int(udh[1])+2 > len(udh) {
				return errors.New("UDH information element overruns the UDH")
			}
			iei, val := udh[0], udh[2:2+int(udh[1])]
			switch {
			case iei == 0x24 && len(val) == 1 && Language(val[0]) >= Turkish && Language(val[0]) <= Portuguese:
				lang = Language(val[0])
			case iei == 0x24 || iei == 0x25:
				return fmt.Errorf("unsupported national language IE %02X % X", iei, val)
			}
			udh = udh[2+int(udh[1]):]
		}
	}
	switch p.DataCoding {
	case dcGSM7:
		return decodeSeptets(b, data, lang)
	case dcUCS2:
		if len(data)%2 != 0 {
			return errors.New("odd UCS-2 length")
		}
		u := make([]uint16, len(data)/2)
		for i := range u {
			u[i] = uint16(data[2*i])<<8 | uint16(data[2*i+1])
		}
		for j := 0; j < len(u); j++ {
			c := u[j]
			switch {
			case c >= 0xD800 && c < 0xDC00:
				if j+1 == len(u) || u[j+1] < 0xDC00 || u[j+1] > 0xDFFF {
					return fmt.Errorf("unpaired high surrogate at unit %d", j)
				}
				b.WriteRune(utf16.DecodeRune(rune(c), rune(u[j+1])))
				j++
			case c >= 0xDC00 && c <= 0xDFFF:
				return fmt.Errorf("unpaired low surrogate at unit %d", j)
			default:
				b.WriteRune(rune(c))
			}
		}
		return nil
	}
	return fmt.Errorf("unknown data_coding 0x%02X", p.DataCoding)
}

func decodeSeptets(b *strings.Builder, data []byte, lang Language) error {
	ext := &gsmExt
	if lang != NoLanguage {
		ext = &nationalShift[lang]
	}
	for j := 0; j < len(data); j++ {
		c := data[j]
		if c >= 0x80 {
			return fmt.Errorf("octet 0x%02X at %d is not a septet", c, j)
		}
		if c != esc {
			b.WriteRune(gsmBasic[c])
			continue
		}
		if j+1 == len(data) {
			return fmt.Errorf("escape at the end of the part")
		}
		j++
		x := data[j]
		if x >= 0x80 || ext[x] == 0 {
			return fmt.Errorf("undefined extension septet 0x%02X at %d", x, j)
		}
		b.WriteRune(ext[x])
	}
	return nil
}
