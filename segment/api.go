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

// Options say how to encode and split.
type Options struct {
	Encoding Encoding
	Smart    bool   // apply the smart-encoding substitutions first
	Concat   Concat // form for multi-part messages
}

// Count is the billing count of a text: computed by one function (CountText).
type Count struct {
	Encoding Encoding
	Segments int
	Units    int // septets (GSM-7) or UTF-16 code units (UCS-2)
}

// Part is one submit_sm's worth of a message.
type Part struct {
	// ShortMessage is exactly the short_message bytes: the UDH (when UDHI) then the payload.
	// With ConcatPayload it is the message_payload TLV value and short_message is empty.
	ShortMessage []byte
	DataCoding   byte
	UDHI         bool // set esm_class bit 0x40
	Seq, Total   int  // 1-based sequence and total parts
	Ref          uint16
	SAR          bool // carry Ref/Total/Seq in sar_* TLVs (ConcatSAR, multi-part only)
	Payload      bool // send ShortMessage in message_payload (ConcatPayload)
}

// Message is a split text.
type Message struct {
	Encoding Encoding
	Units    int
	Text     string // the text after smart encoding: what reassembly gives back
	Parts    []Part
}

// Error is a segmentation failure with a machine code for the rejected event's reason.
type Error struct {
	Code   string // "too_long", "encoding_mismatch"
	Detail string
}

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

// CountText returns the billing count of text without building parts.
func CountText(text string, opt Options) (Count, error) {
	return Count{}, errors.New("segment: not built yet")
}

// Split encodes text and splits it into parts, reusing m's buffers. ref is the
// concatenation reference (the caller rotates it per connection and destination).
func Split(m *Message, text string, opt Options, ref uint16) error {
	return errors.New("segment: not built yet")
}
