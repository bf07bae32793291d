package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutlv"
)

// HeaderLen is the length of a PDU header.
const HeaderLen = 16

// MaxPDU is the default sanity limit on command_length (SMPP allows larger PDUs than
// go-smpp's 4096; a longer length is treated as a corrupt stream).
const MaxPDU = 64 << 10

// Command ids (go-smpp's values).
const (
	GenericNack        = uint32(pdu.GenericNACKID)
	BindReceiver       = uint32(pdu.BindReceiverID)
	BindReceiverResp   = uint32(pdu.BindReceiverRespID)
	BindTransmitter    = uint32(pdu.BindTransmitterID)
	BindTransmitResp   = uint32(pdu.BindTransmitterRespID)
	BindTransceiver    = uint32(pdu.BindTransceiverID)
	BindTransceiveResp = uint32(pdu.BindTransceiverRespID)
	SubmitSM           = uint32(pdu.SubmitSMID)
	SubmitSMResp       = uint32(pdu.SubmitSMRespID)
	DeliverSM          = uint32(pdu.DeliverSMID)
	DeliverSMResp      = uint32(pdu.DeliverSMRespID)
	Unbind             = uint32(pdu.UnbindID)
	UnbindResp         = uint32(pdu.UnbindRespID)
	EnquireLink        = uint32(pdu.EnquireLinkID)
	EnquireLinkResp    = uint32(pdu.EnquireLinkRespID)
	AlertNotification  = uint32(pdu.AlertNotificationID)
	DataSM             = uint32(pdu.DataSMID)
	DataSMResp         = uint32(pdu.DataSMRespID)
	Outbind            = uint32(pdu.OutbindID)
)

// Command statuses used by sendcore.
const (
	StatusOK         = 0x00
	StatusInvCmdLen  = 0x02
	StatusInvCmdID   = 0x03
	StatusInvBnd     = 0x04
	StatusSysErr     = 0x08
	StatusInvSrc     = 0x0A
	StatusInvDst     = 0x0B
	StatusBindFail   = 0x0D
	StatusInvPaswd   = 0x0E
	StatusInvSysID   = 0x0F
	StatusMsgQFul    = 0x14
	StatusSubmitFail = 0x45
	StatusThrottled  = 0x58
	StatusRxTAppN    = 0x64
	StatusUnknown    = 0xFF
)

// TLV tags.
const (
	TagReceiptedMessageID = uint16(pdutlv.TagReceiptedMessageID) // 0x001E
	TagSarMsgRefNum       = uint16(pdutlv.TagSarMsgRefNum)       // 0x020C
	TagSarTotalSegments   = uint16(pdutlv.TagSarTotalSegments)   // 0x020E
	TagSarSegmentSeqnum   = uint16(0x020F)
	TagNetworkErrorCode   = uint16(0x0423)
	TagMessagePayload     = uint16(0x0424)
	TagMessageState       = uint16(0x0427)
)

// ErrFrame is wrapped by ReadPDU for a command_length outside 16..limit.
var ErrFrame = errors.New("smpp: bad command_length")

// Header is a decoded PDU header.
type Header struct {
	Len, ID, Status, Seq uint32
}

// IsResponse reports whether the command id has the response bit.
func IsResponse(id uint32) bool { return id&0x80000000 != 0 }

// ReadPDU reads one PDU from r. The body is read into buf (grown as needed, returned for
// reuse) and is valid until the next call. A command_length below 16 or above limit is
// ErrFrame: the stream cannot be resynchronised and the caller must drop the session.
func ReadPDU(r *bufio.Reader, buf []byte, limit int) (Header, []byte, []byte, error) {
	var hb [HeaderLen]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return Header{}, nil, buf, err
	}
	h := Header{
		Len:    binary.BigEndian.Uint32(hb[0:4]),
		ID:     binary.BigEndian.Uint32(hb[4:8]),
		Status: binary.BigEndian.Uint32(hb[8:12]),
		Seq:    binary.BigEndian.Uint32(hb[12:16]),
	}
	if h.Len < HeaderLen || int64(h.Len) > int64(limit) {
		return h, nil, buf, fmt.Errorf("%w: %d (limit %d)", ErrFrame, h.Len, limit)
	}
	n := int(h.Len) - HeaderLen
	if cap(buf) < n {
		buf = make([]byte, n, max(n, 512))
	}
	body := buf[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, buf, err
	}
	return h, body, buf, nil
}

// AppendHeader appends a header whose length is fixed later by SetLen.
func AppendHeader(b []byte, id, status, seq uint32) []byte {
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, status)
	return binary.BigEndian.AppendUint32(b, seq)
}

// SetLen writes command_length for the PDU that starts at b[start:].
func SetLen(b []byte, start int) {
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
}

// AppendCString appends s and a NUL.
func AppendCString(b []byte, s string) []byte {
	b = append(b, s...)
	return append(b, 0)
}

// AppendTLV appends one tag-length-value.
func AppendTLV(b []byte, tag uint16, v []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, tag)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// AppendSimple appends a whole body-less PDU (enquire_link, unbind, their responses,
// generic_nack).
func AppendSimple(b []byte, id, status, seq uint32) []byte {
	b = binary.BigEndian.AppendUint32(b, HeaderLen)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, status)
	return binary.BigEndian.AppendUint32(b, seq)
}

// AppendIDResp appends a response whose body is one message_id C-string (submit_sm_resp,
// deliver_sm_resp, data_sm_resp). SMPP sends no body with a non-zero status on
// submit_sm_resp; we follow that when status != 0 and id is empty.
func AppendIDResp(b []byte, id, status, seq uint32, msgID []byte) []byte {
	if status != 0 && len(msgID) == 0 {
		return AppendSimple(b, id, status, seq)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(HeaderLen+len(msgID)+1))
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, status)
	b = binary.BigEndian.AppendUint32(b, seq)
	b = append(b, msgID...)
	return append(b, 0)
}

// CString reads one NUL-terminated field from b and returns it and the rest. A missing
// NUL returns everything as the field and an empty rest.
func CString(b []byte) (field, rest []byte) {
	for i, c := range b {
		if c == 0 {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

// Submit is the content of one submit_sm to encode. Strings, not bytes, so that callers
// holding the addresses as strings do not allocate.
type Submit struct {
	ServiceType        string
	SrcTON, SrcNPI     byte
	Src                string
	DstTON, DstNPI     byte
	Dst                string
	ESMClass           byte
	ProtocolID         byte
	Priority           byte
	Schedule           string
	Validity           string
	RegisteredDelivery byte
	DataCoding         byte
	ShortMessage       []byte // empty when Payload is used
	Payload            []byte // message_payload TLV, when not nil
	SAR                bool   // append sar_* TLVs
	SARRef             uint16
	SARTotal, SARSeq   byte
	Extra              []byte // raw TLVs appended last (test kit: receipt TLVs)
}

// AppendSubmitSM appends s as a submit_sm with sequence number seq. The TLVs come in the
// order sar_msg_ref_num, sar_total_segments, sar_segment_seqnum, message_payload.
func AppendSubmitSM(b []byte, seq uint32, s *Submit) []byte {
	return AppendSM(b, SubmitSM, seq, s)
}

// AppendSM appends s as a PDU of the submit_sm layout with command id id (submit_sm or
// deliver_sm).
func AppendSM(b []byte, id, seq uint32, s *Submit) []byte {
	start := len(b)
	b = AppendHeader(b, id, 0, seq)
	b = AppendCString(b, s.ServiceType)
	b = append(b, s.SrcTON, s.SrcNPI)
	b = AppendCString(b, s.Src)
	b = append(b, s.DstTON, s.DstNPI)
	b = AppendCString(b, s.Dst)
	b = append(b, s.ESMClass, s.ProtocolID, s.Priority)
	b = AppendCString(b, s.Schedule)
	b = AppendCString(b, s.Validity)
	b = append(b, s.RegisteredDelivery, 0, s.DataCoding, 0, byte(len(s.ShortMessage)))
	b = append(b, s.ShortMessage...)
	if s.SAR {
		b = AppendTLV(b, TagSarMsgRefNum, []byte{byte(s.SARRef >> 8), byte(s.SARRef)})
		b = AppendTLV(b, TagSarTotalSegments, []byte{s.SARTotal})
		b = AppendTLV(b, TagSarSegmentSeqnum, []byte{s.SARSeq})
	}
	if s.Payload != nil {
		b = AppendTLV(b, TagMessagePayload, s.Payload)
	}
	b = append(b, s.Extra...)
	SetLen(b, start)
	return b
}

// ParsedSubmit is a decoded submit_sm; its slices alias the body it was parsed from.
type ParsedSubmit struct {
	ServiceType        []byte
	SrcTON, SrcNPI     byte
	Src                []byte
	DstTON, DstNPI     byte
	Dst                []byte
	ESMClass           byte
	ProtocolID         byte
	Priority           byte
	Schedule           []byte
	Validity           []byte
	RegisteredDelivery byte
	DataCoding         byte
	ShortMessage       []byte
	TLVs               []byte // the raw TLV section
}

// ErrShort is returned for a body that ends before its mandatory fields do.
var ErrShort = errors.New("smpp: PDU body too short")

// ParseSubmitSM decodes a submit_sm (or deliver_sm: same layout) body into p.
func ParseSubmitSM(body []byte, p *ParsedSubmit) error {
	var b []byte
	p.ServiceType, b = CString(body)
	if len(b) < 2 {
		return ErrShort
	}
	p.SrcTON, p.SrcNPI = b[0], b[1]
	p.Src, b = CString(b[2:])
	if len(b) < 2 {
		return ErrShort
	}
	p.DstTON, p.DstNPI = b[0], b[1]
	p.Dst, b = CString(b[2:])
	if len(b) < 3 {
		return ErrShort
	}
	p.ESMClass, p.ProtocolID, p.Priority = b[0], b[1], b[2]
	p.Schedule, b = CString(b[3:])
	p.Validity, b = CString(b)
	if len(b) < 5 {
		return ErrShort
	}
	p.RegisteredDelivery, p.DataCoding = b[0], b[2]
	n := int(b[4])
	b = b[5:]
	if len(b) < n {
		return ErrShort
	}
	p.ShortMessage, p.TLVs = b[:n], b[n:]
	return nil
}

// TLV returns the value of tag in a raw TLV section, and whether it was there.
func TLV(tlvs []byte, tag uint16) ([]byte, bool) {
	for len(tlvs) >= 4 {
		t := binary.BigEndian.Uint16(tlvs)
		n := int(binary.BigEndian.Uint16(tlvs[2:]))
		if len(tlvs) < 4+n {
			return nil, false
		}
		if t == tag {
			return tlvs[4 : 4+n], true
		}
		tlvs = tlvs[4+n:]
	}
	return nil, false
}
