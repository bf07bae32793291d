package segment

import "errors"

// NOTE: this file fixes the API that dispatch and gateway/smpp code against. The
// implementation replaces the bodies; names and signatures stay.

// Encoding is the alphabet of a message.
type Encoding uint8

// Encodings.
const (
	Auto Encoding = iota // GSM-7 when every character fits, else UCS-2
	GSM7                 // data_coding 0x00, unpacked septets
	UCS2                 // data_coding 0x08, UTF-16BE
)

// String returns "auto", "gsm7" or "ucs2".
func (e Encoding) String() string {
	switch e {
	case GSM7:
		return "gsm7"
	case UCS2:
		return "ucs2"
	}
	return "auto"
}

// Concat is how a long message is carried.
type Concat uint8

// Concatenation forms.
const (
	ConcatUDH8    Concat = iota // UDH IEI 0x00, 8-bit reference (default)
	ConcatUDH16                 // UDH IEI 0x08, 16-bit reference
	ConcatSAR                   // sar_msg_ref_num / sar_total_segments / sar_segment_seqnum TLVs
	ConcatPayload               // the whole message in one message_payload TLV
)

// Options say how to encode and split. The zero Options is auto encoding, no smart
// encoding, 8-bit reference UDH.
type Options struct {
	Encoding Encoding
	Smart    bool   // apply the smart-encoding substitutions first (see Smart)
	Concat   Concat // form for multi-part messages
	// National allows the national language single shift tables of these languages for
	// texts that are not default GSM-7: with Auto only when that makes fewer segments than
	// UCS-2, with GSM7 whenever the text fits one. Every part then carries a UDH with IE
	// 0x24 (a single part too). Only with ConcatUDH8 and ConcatUDH16. The zero set: never.
	National LanguageSet
}

// Count is the billing count of a text: computed by one function (CountText).
type Count struct {
	Encoding Encoding
	Segments int
	Units    int      // septets (GSM-7) or UTF-16 code units (UCS-2)
	Language Language // national single shift table used (GSM-7 only), or NoLanguage
}

// Part is one submit_sm's worth of a message.
type Part struct {
	// ShortMessage is exactly the short_message bytes: the UDH (when UDHI) then the payload.
	// With ConcatPayload it is the message_payload TLV value and short_message is empty.
	ShortMessage []byte
	DataCoding   byte
	UDHI         bool // set esm_class bit 0x40: ShortMessage starts with a UDH
	Seq, Total   int  // 1-based sequence and total parts
	Ref          uint16
	SAR          bool // carry Ref/Total/Seq in sar_* TLVs (ConcatSAR, multi-part only)
	Payload      bool // send ShortMessage in message_payload (ConcatPayload)
}

// Message is a split text. Its Parts and their ShortMessage bytes live in buffers that
// the next Split with the same Message reuses: keep a Message (or a copy of what you
// need) until the parts are sent. The zero Message is ready to use.
type Message struct {
	Encoding Encoding
	Units    int
	Text     string // the text after smart encoding: what reassembly gives back
	Parts    []Part
	// Segments is the billing count, equal to CountText's. It equals len(Parts) except
	// with ConcatPayload, where one Part carries a text the SMSC delivers as Segments.
	Segments int
	Language Language // national single shift table used (GSM-7 only), or NoLanguage

	buf []byte // backing store of every Part.ShortMessage
}

// Error is a segmentation failure with a machine code for the rejected event's reason.
type Error struct {
	Code   string // "too_long", "encoding_mismatch"
	Detail string
}

// Error returns "segment: <code>: <detail>".
func (e *Error) Error() string { return "segment: " + e.Code + ": " + e.Detail }

// Sentinels for errors.Is on *Error codes.
var (
	ErrTooLong          = errors.New("segment: too long")
	ErrEncodingMismatch = errors.New("segment: encoding mismatch")
)

// Is makes errors.Is(err, ErrTooLong) and errors.Is(err, ErrEncodingMismatch) work.
func (e *Error) Is(target error) bool {
	return (target == ErrTooLong && e.Code == "too_long") ||
		(target == ErrEncodingMismatch && e.Code == "encoding_mismatch")
}

// CountText returns the billing count of text without building parts: the encoding
// (GSM-7 when Options.Encoding is Auto and every character is GSM 03.38, after smart
// encoding when Options.Smart), the units (septets, an extension character counting two,
// or UTF-16 code units) and the segments, exactly as Split would make them.
//
// The empty text is one empty GSM-7 segment (validating that an SMS has text is the
// caller's job: dispatch rejects it as missing_field). Invalid UTF-8 is counted as
// strings.ToValidUTF8(text, "\uFFFD"). Errors are *Error: encoding_mismatch when
// Encoding is GSM7 and a character is not GSM-7; too_long beyond 255 segments (with
// ConcatPayload: beyond 65535 encoded octets). With an error the Count still carries the
// encoding, units and segments computed so far.
//
// It does not allocate unless Options.Smart changes the text or the text is invalid UTF-8.
func CountText(text string, opt Options) (Count, error) {
	p, err := makePlan(text, opt, false)
	return Count{Encoding: p.enc, Segments: p.segments, Units: p.units, Language: p.lang}, err
}

// Split encodes text and splits it into parts, reusing m's buffers. ref is the
// concatenation reference (the caller rotates it per connection and destination); the
// 8-bit UDH carries its low byte. It counts exactly as CountText and fails with the same
// errors, leaving m.Parts empty.
//
// Parts: a text that fits one segment is one Part without UDH, whatever opt.Concat
// (unless a national language table is used: see Options.National). A longer text is, by opt.Concat: parts with a UDH (IEI 0x00 or 0x08, UDHI set); parts
// without UDH and SAR set (the sar_* TLVs carry Ref, Total, Seq); or one Part with
// Payload set holding the whole encoded text. GSM-7 is unpacked (one septet per octet),
// UCS-2 is UTF-16BE. An extension character never loses its escape at a part's end, a
// surrogate pair is never cut, and a grapheme cluster moves whole to the next part when
// it fits in one.
//
// With a Message reused across calls, Split does not allocate once its buffers have
// grown; a fresh Message costs two allocations (parts and bytes). Split and CountText are
// safe for concurrent use; concurrent Splits need distinct Messages. m must not be nil.
func Split(m *Message, text string, opt Options, ref uint16) error {
	p, err := makePlan(text, opt, true)
	m.Encoding, m.Units, m.Text, m.Segments, m.Language = p.enc, p.units, p.text, p.segments, p.lang
	m.Parts = m.Parts[:0]
	if err != nil {
		return err
	}
	if p.lang != NoLanguage {
		if cap(m.Parts) < p.segments {
			m.Parts = make([]Part, 0, p.segments)
		}
		m.Parts = m.Parts[:p.segments]
		for i := range m.Parts {
			m.Parts[i] = Part{DataCoding: dcGSM7, UDHI: true, Seq: i + 1, Total: p.segments, Ref: ref}
		}
		capacity := p.capMulti
		if p.single {
			capacity = natSingle
		}
		m.buf = splitNational(m.grow(p.units+p.segments*p.udhLen), m.Parts, p.text, p.lang, capacity, opt.Concat, ref)
		return nil
	}
	dc := byte(dcGSM7)
	if p.enc == UCS2 {
		dc = dcUCS2
	}
	if p.single || opt.Concat == ConcatPayload {
		buf := m.grow(p.octets())
		buf = encode(buf, p.text, p.enc)
		m.buf = buf
		m.Parts = append(m.Parts, Part{ShortMessage: buf, DataCoding: dc, Seq: 1, Total: 1, Ref: ref, Payload: !p.single})
		return nil
	}
	if p.enc == UCS2 {
		return m.splitUCS2(&p, opt, ref)
	}
	m.initParts(&p, opt, ref, dc)
	m.buf = splitGSM(m.grow(p.octets()+p.segments*p.udhLen), m.Parts, p.text, p.capMulti, opt.Concat, ref)
	return nil
}

// initParts sizes m.Parts to p.segments and fills in everything but ShortMessage.
func (m *Message) initParts(p *plan, opt Options, ref uint16, dc byte) {
	if cap(m.Parts) < p.segments {
		m.Parts = make([]Part, 0, p.segments)
	}
	m.Parts = m.Parts[:p.segments]
	for i := range m.Parts {
		m.Parts[i] = Part{DataCoding: dc, UDHI: p.udhLen > 0, Seq: i + 1, Total: p.segments, Ref: ref, SAR: opt.Concat == ConcatSAR}
	}
}

// appendUDH appends the concatenation UDH of part seq of total (none for SAR).
func appendUDH(buf []byte, c Concat, ref uint16, total, seq int) []byte {
	switch c {
	case ConcatUDH8:
		return append(buf, 0x05, 0x00, 0x03, byte(ref), byte(total), byte(seq))
	case ConcatUDH16:
		return append(buf, 0x06, 0x08, 0x04, byte(ref>>8), byte(ref), byte(total), byte(seq))
	}
	return buf
}

// grow returns m's byte buffer emptied, with room for n bytes.
func (m *Message) grow(n int) []byte {
	if cap(m.buf) < n {
		m.buf = make([]byte, 0, n)
	}
	return m.buf[:0]
}

// splitUCS2 cuts a multi-part UCS-2 text where pack counts (counting it first when
// makePlan left that to it), and encodes the parts (UDH, then UTF-16BE).
func (m *Message) splitUCS2(p *plan, opt Options, ref uint16) error {
	var ends [MaxSegments]int32
	segs := pack(p.text, p.capMulti, ends[:])
	if p.segments == 0 {
		p.segments, m.Segments = segs, segs
		if err := p.check(opt); err != nil {
			return err
		}
	}
	m.initParts(p, opt, ref, dcUCS2)
	buf := m.grow(p.octets() + p.segments*p.udhLen)
	start := 0
	for i := range m.Parts {
		off := len(buf)
		buf = appendUDH(buf, opt.Concat, ref, p.segments, i+1)
		end := int(ends[i])
		buf = encode(buf, p.text[start:end], UCS2)
		start = end
		m.Parts[i].ShortMessage = buf[off:len(buf):len(buf)]
	}
	m.buf = buf
	return nil
}
