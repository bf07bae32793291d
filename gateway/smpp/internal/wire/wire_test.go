package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"sort"
	"testing"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutlv"
)

// goSMPP encodes s with go-smpp's codec (TLVs passed as []byte: its int setter truncates
// to one byte and it drops uint16).
func goSMPP(t *testing.T, seq uint32, s *Submit) []byte {
	t.Helper()
	tlv := pdutlv.Fields{}
	if s.SAR {
		tlv[pdutlv.TagSarMsgRefNum] = []byte{byte(s.SARRef >> 8), byte(s.SARRef)}
		tlv[pdutlv.TagSarTotalSegments] = []byte{s.SARTotal}
		tlv[pdutlv.Tag(TagSarSegmentSeqnum)] = []byte{s.SARSeq}
	}
	if s.Payload != nil {
		tlv[pdutlv.Tag(TagMessagePayload)] = s.Payload
	}
	p := pdu.NewSubmitSM(tlv)
	p.Header().Seq = seq
	f := p.Fields()
	set := func(n pdufield.Name, v any) {
		if err := f.Set(n, v); err != nil {
			t.Fatal(err)
		}
	}
	set(pdufield.ServiceType, s.ServiceType)
	set(pdufield.SourceAddrTON, s.SrcTON)
	set(pdufield.SourceAddrNPI, s.SrcNPI)
	set(pdufield.SourceAddr, s.Src)
	set(pdufield.DestAddrTON, s.DstTON)
	set(pdufield.DestAddrNPI, s.DstNPI)
	set(pdufield.DestinationAddr, s.Dst)
	set(pdufield.ESMClass, s.ESMClass)
	set(pdufield.ProtocolID, s.ProtocolID)
	set(pdufield.PriorityFlag, s.Priority)
	set(pdufield.ScheduleDeliveryTime, s.Schedule)
	set(pdufield.ValidityPeriod, s.Validity)
	set(pdufield.RegisteredDelivery, s.RegisteredDelivery)
	set(pdufield.DataCoding, s.DataCoding)
	set(pdufield.ShortMessage, append([]byte{}, s.ShortMessage...))
	var b bytes.Buffer
	if err := p.SerializeTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// splitTLVs returns the mandatory part and the TLV records sorted (go-smpp writes TLVs in
// map order, so only their set is comparable).
func splitTLVs(t *testing.T, b []byte) ([]byte, [][]byte) {
	t.Helper()
	var ps ParsedSubmit
	if err := ParseSubmitSM(b[HeaderLen:], &ps); err != nil {
		t.Fatal(err)
	}
	mand := b[:len(b)-len(ps.TLVs)]
	var recs [][]byte
	for r := ps.TLVs; len(r) > 0; {
		n := 4 + int(binary.BigEndian.Uint16(r[2:]))
		recs = append(recs, r[:n])
		r = r[n:]
	}
	sort.Slice(recs, func(i, j int) bool { return bytes.Compare(recs[i], recs[j]) < 0 })
	return mand, recs
}

// TestSubmitSMMatchesGoSMPP proves the hand-written submit_sm encoder byte-identical to
// go-smpp's codec for the fields sendcore uses.
func TestSubmitSMMatchesGoSMPP(t *testing.T) {
	udh := []byte{0x05, 0x00, 0x03, 0x2a, 0x02, 0x01}
	for _, tc := range []struct {
		name string
		s    Submit
	}{
		{"plain gsm7", Submit{SrcTON: 5, Src: "Sendcore", DstTON: 1, DstNPI: 1, Dst: "358401234567", ShortMessage: []byte("hello")}},
		{"dlr validity ucs2", Submit{SrcTON: 1, SrcNPI: 1, Src: "358401110001", DstTON: 1, DstNPI: 1, Dst: "46701234567",
			RegisteredDelivery: 1, Validity: "260102030405000+", DataCoding: 8, Priority: 1, ShortMessage: []byte{0, 'h', 0, 'i'}}},
		{"udhi", Submit{SrcTON: 3, Src: "12345", DstTON: 1, DstNPI: 1, Dst: "358401234567", ESMClass: 0x40, ShortMessage: append(append([]byte{}, udh...), bytes.Repeat([]byte("a"), 134)...)}},
		{"sar", Submit{Src: "x", Dst: "1", ShortMessage: []byte("part"), SAR: true, SARRef: 0x1234, SARTotal: 3, SARSeq: 2}},
		{"payload", Submit{Src: "x", Dst: "1", Payload: bytes.Repeat([]byte("p"), 600)}},
		{"empty", Submit{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours := AppendSubmitSM([]byte("junk"), 0x7FFFFFFF, &tc.s)[4:]
			theirs := goSMPP(t, 0x7FFFFFFF, &tc.s)
			if !tc.s.SAR {
				if !bytes.Equal(ours, theirs) {
					t.Fatalf("encodings differ\nours   %x\ntheirs %x", ours, theirs)
				}
				return
			}
			om, ot := splitTLVs(t, ours)
			tm, tt := splitTLVs(t, theirs)
			if !bytes.Equal(om, tm) || len(ot) != len(tt) || len(ours) != len(theirs) {
				t.Fatalf("encodings differ\nours   %x\ntheirs %x", ours, theirs)
			}
			for i := range ot {
				if !bytes.Equal(ot[i], tt[i]) {
					t.Fatalf("TLV %d differs: %x vs %x", i, ot[i], tt[i])
				}
			}
		})
	}
}

func TestReadPDULimits(t *testing.T) {
	big := AppendSubmitSM(nil, 1, &Submit{Payload: bytes.Repeat([]byte("x"), 10000)})
	for _, tc := range []struct {
		name  string
		in    []byte
		limit int
		err   error
	}{
		{"over 4096 accepted", big, MaxPDU, nil},
		{"over limit", big, 4096, ErrFrame},
		{"under header", []byte{0, 0, 0, 8, 0, 0, 0, 0}, MaxPDU, ErrFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append(append([]byte{}, tc.in...), make([]byte, 16)...)
			h, body, _, err := ReadPDU(bufio.NewReader(bytes.NewReader(in)), nil, tc.limit)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err == nil && (int(h.Len) != len(tc.in) || len(body) != len(tc.in)-HeaderLen) {
				t.Fatalf("len %d body %d", h.Len, len(body))
			}
		})
	}
}

func BenchmarkAppendSubmitSM(b *testing.B) {
	s := Submit{SrcTON: 5, Src: "Sendcore", DstTON: 1, DstNPI: 1, Dst: "358401234567", ShortMessage: []byte("hello world")}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = AppendSubmitSM(buf[:0], uint32(i), &s)
	}
}
