package smpp

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutlv"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/gateway/smpp/internal/wire"
)

// deliverFields is the deliver_sm mandatory part for go-smpp's decoder, without its
// UDHLength/GSMUserData split (we keep short_message whole, UDH included).
var deliverFields = pdufield.List{
	pdufield.ServiceType, pdufield.SourceAddrTON, pdufield.SourceAddrNPI, pdufield.SourceAddr,
	pdufield.DestAddrTON, pdufield.DestAddrNPI, pdufield.DestinationAddr, pdufield.ESMClass,
	pdufield.ProtocolID, pdufield.PriorityFlag, pdufield.ScheduleDeliveryTime,
	pdufield.ValidityPeriod, pdufield.RegisteredDelivery, pdufield.ReplaceIfPresentFlag,
	pdufield.DataCoding, pdufield.SMDefaultMsgID, pdufield.SMLength, pdufield.ShortMessage,
}

// dataSMFields is the data_sm mandatory part (go-smpp has no data_sm codec).
var dataSMFields = pdufield.List{
	pdufield.ServiceType, pdufield.SourceAddrTON, pdufield.SourceAddrNPI, pdufield.SourceAddr,
	pdufield.DestAddrTON, pdufield.DestAddrNPI, pdufield.DestinationAddr, pdufield.ESMClass,
	pdufield.RegisteredDelivery, pdufield.DataCoding,
}

// inbound is a decoded deliver_sm or data_sm, owned by the session's hand-off queue.
type inbound struct {
	cmd     uint32 // wire.DeliverSM or wire.DataSM
	seq     uint32
	receipt bool
	r       dispatch.Receipt
	mo      dispatch.MO
}

// decodeInbound decodes a deliver_sm/data_sm body with go-smpp's field and TLV codec. The
// result holds no reference to body.
func decodeInbound(cmd uint32, body []byte, idFormat, respFormat string, now time.Time) (inbound, error) {
	list := deliverFields
	if cmd == wire.DataSM {
		list = dataSMFields
	}
	buf := bytes.NewBuffer(body)
	f, err := list.Decode(buf)
	if err != nil {
		return inbound{}, err
	}
	tlvs, err := pdutlv.DecodeTLV(buf)
	if err != nil {
		return inbound{}, err
	}
	fixed := func(n pdufield.Name) byte {
		if v, ok := f[n].(*pdufield.Fixed); ok {
			return v.Data
		}
		return 0
	}
	str := func(n pdufield.Name) string {
		if v, ok := f[n]; ok {
			return v.String()
		}
		return ""
	}
	tlv := func(t pdutlv.Tag) ([]byte, bool) {
		if v, ok := tlvs[t]; ok {
			return v.Bytes(), true
		}
		return nil, false
	}
	esm := fixed(pdufield.ESMClass)
	var sm []byte
	if v, ok := f[pdufield.ShortMessage]; ok {
		sm = v.Bytes()
	}
	if p, ok := tlv(pdutlv.Tag(wire.TagMessagePayload)); ok && len(sm) == 0 {
		sm = p
	}
	in := inbound{cmd: cmd}
	rid, hasRID := tlv(pdutlv.TagReceiptedMessageID)
	if esm&0x04 != 0 || hasRID {
		in.receipt = true
		rc := parseReceiptText(sm)
		in.r = dispatch.Receipt{State: rc.state, Err: rc.err, At: rc.done}
		if hasRID {
			in.r.SMSCID = canonID(string(bytes.TrimRight(rid, "\x00")), respFormat)
		} else {
			in.r.SMSCID = convertID(rc.id, idFormat, respFormat)
		}
		if st, ok := tlv(pdutlv.Tag(wire.TagMessageState)); ok && len(st) == 1 && in.r.State == "" {
			in.r.State = stateName(st[0])
		}
		if ne, ok := tlv(pdutlv.Tag(wire.TagNetworkErrorCode)); ok && len(ne) == 3 && in.r.Err == "" {
			in.r.Err = strconv.Itoa(int(binary.BigEndian.Uint16(ne[1:])))
		}
		if in.r.State == "" {
			in.r.State = "UNKNOWN"
		}
		if in.r.At.IsZero() {
			in.r.At = now
		}
		return in, nil
	}
	if esm&0x40 != 0 && len(sm) > 0 && int(sm[0])+1 <= len(sm) {
		sm = sm[int(sm[0])+1:]
	}
	in.mo = dispatch.MO{
		From: addrString(fixed(pdufield.SourceAddrTON), str(pdufield.SourceAddr)),
		To:   addrString(fixed(pdufield.DestAddrTON), str(pdufield.DestinationAddr)),
		Text: decodeText(fixed(pdufield.DataCoding), sm),
		At:   now,
	}
	return in, nil
}

func addrString(ton byte, a string) string {
	if ton == 1 && a != "" && a[0] != '+' {
		return "+" + a
	}
	return a
}

type receiptText struct {
	id, state, err string
	done           time.Time
}

// parseReceiptText reads the conventional receipt text ("id:… sub:… dlvrd:… submit
// date:… done date:… stat:… err:… text:…"), tolerating case, missing fields, extra spaces
// and the submit_date/done_date spellings.
func parseReceiptText(b []byte) receiptText {
	s := string(b)
	low := asciiLower(s) // byte for byte: indexes into low are indexes into s
	var r receiptText
	r.id = receiptField(s, low, "id")
	r.state = normState(receiptField(s, low, "stat"))
	r.err = receiptField(s, low, "err")
	done := receiptField(s, low, "done date")
	if done == "" {
		done = receiptField(s, low, "done_date")
	}
	for _, layout := range []string{"0601021504", "060102150405"} {
		if len(done) == len(layout) {
			if t, err := time.Parse(layout, done); err == nil {
				r.done = t
			}
		}
	}
	return r
}

// receiptField finds key followed by optional spaces and ':' at a word start, and returns
// the value up to the next space.
func receiptField(s, low, key string) string {
	for from := 0; from < len(low); {
		i := strings.Index(low[from:], key)
		if i < 0 {
			return ""
		}
		i += from
		from = i + len(key)
		if i > 0 && low[i-1] != ' ' && low[i-1] != '\t' {
			continue
		}
		j := from
		for j < len(low) && low[j] == ' ' {
			j++
		}
		if j >= len(low) || low[j] != ':' {
			continue
		}
		j++
		for j < len(low) && low[j] == ' ' {
			j++
		}
		k := j
		for k < len(low) && low[k] != ' ' && low[k] != '\t' {
			k++
		}
		return s[j:k]
	}
	return ""
}

// asciiLower lower-cases the ASCII letters of s and keeps every other byte, so the result
// has the same length as s. strings.ToLower does not: invalid UTF-8 becomes U+FFFD and
// some letters change length (İ), which made receiptField slice s out of range on
// hostile receipt text (found by FuzzParseReceiptText).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func normState(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	switch s {
	case "DELIVERED":
		return "DELIVRD"
	case "UNDELIVERABLE", "UNDELIVERED":
		return "UNDELIV"
	case "ACCEPTED":
		return "ACCEPTD"
	case "REJECTED":
		return "REJECTD"
	case "EXPIRE":
		return "EXPIRED"
	case "DELETE":
		return "DELETED"
	}
	return s
}

func stateName(code byte) string {
	switch code {
	case 1:
		return "ENROUTE"
	case 2:
		return "DELIVRD"
	case 3:
		return "EXPIRED"
	case 4:
		return "DELETED"
	case 5:
		return "UNDELIV"
	case 6:
		return "ACCEPTD"
	case 8:
		return "REJECTD"
	}
	return "UNKNOWN"
}

// canonID writes id in the canonical form of format: lowercase hex or decimal without
// leading zeros; ids that do not parse, and format "", are kept as sent.
func canonID(id, format string) string {
	return convertID(id, format, format)
}

// convertID reads id in format from and writes it in format to (canonical form).
func convertID(id, from, to string) string {
	if from == "" || to == "" {
		return id
	}
	base := 16
	if from == "decimal" {
		base = 10
	}
	v, err := strconv.ParseUint(id, base, 64)
	if err != nil {
		return id
	}
	if to == "decimal" {
		return strconv.FormatUint(v, 10)
	}
	return strconv.FormatUint(v, 16)
}

// gsm7 is the GSM 03.38 default alphabet; 0x1B escapes into gsm7ext.
const gsm7 = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

var gsm7ext = map[byte]rune{0x0A: '\f', 0x14: '^', 0x28: '{', 0x29: '}', 0x2F: '\\', 0x3C: '[', 0x3D: '~', 0x3E: ']', 0x40: '|', 0x65: '€'}

// decodeText decodes an MO short message: GSM-7 unpacked (0x00), Latin-1 (0x03), UCS-2
// (0x08); anything else is taken as bytes.
func decodeText(dc byte, b []byte) string {
	switch dc {
	case 0x00, 0x01:
		table := []rune(gsm7)
		var sb strings.Builder
		for i := 0; i < len(b); i++ {
			c := b[i] & 0x7f
			if c == 0x1b && i+1 < len(b) {
				i++
				if r, ok := gsm7ext[b[i]]; ok {
					sb.WriteRune(r)
				} else {
					sb.WriteRune(' ')
				}
				continue
			}
			sb.WriteRune(table[c])
		}
		return sb.String()
	case 0x03:
		rs := make([]rune, len(b))
		for i, c := range b {
			rs[i] = rune(c)
		}
		return string(rs)
	case 0x08:
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(b[2*i:])
		}
		return string(utf16.Decode(u))
	}
	return string(b)
}
