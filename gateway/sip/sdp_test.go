package sip

import "testing"

func TestParseSDPAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, body, addr string
		pt               uint8
		ok               bool
	}{
		{"pcmu", "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0 101\r\n", "10.0.0.1:4000", 0, true},
		{"pcma media-level c", "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18 8\r\nc=IN IP4 10.0.0.2\r\n", "10.0.0.2:4000", 8, true},
		{"no codec", "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18\r\n", "", 0, false},
		{"no audio", "v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 4000 RTP/AVP 96\r\n", "", 0, false},
		{"bad port", "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio x RTP/AVP 0\r\n", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := parseSDPAnswer([]byte(tc.body))
			if (err == nil) != tc.ok {
				t.Fatalf("err %v", err)
			}
			if tc.ok && (a.addr.String() != tc.addr || a.pt != tc.pt) {
				t.Errorf("got %v pt %d", a.addr, a.pt)
			}
		})
	}
}

func FuzzParseSDPAnswer(f *testing.F) {
	f.Add([]byte("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0 8\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseSDPAnswer(b)
		if err == nil && (a.addr == nil || (a.pt != ptPCMU && a.pt != ptPCMA)) {
			t.Fatalf("accepted without address or codec: %+v", a)
		}
	})
}

func FuzzDecodeWAV(f *testing.F) {
	f.Add([]byte("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := decodeWAV(b); err == nil && len(p.ulaw) != len(p.alaw) {
			t.Fatalf("laws differ in length")
		}
	})
}
