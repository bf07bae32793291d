package sip

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// sdpOffer is our offer: one audio stream on ip:port, PCMU then PCMA, 20 ms packets. It
// says sendrecv although we only send (some trunks reject sendonly).
func sdpOffer(ip net.IP, port int, sessID uint64) []byte {
	fam := "IP4"
	if ip.To4() == nil {
		fam = "IP6"
	}
	var b strings.Builder
	b.Grow(256)
	fmt.Fprintf(&b, "v=0\r\no=sendcore %d %d IN %s %s\r\ns=sendcore\r\n", sessID, sessID, fam, ip)
	fmt.Fprintf(&b, "c=IN %s %s\r\nt=0 0\r\n", fam, ip)
	fmt.Fprintf(&b, "m=audio %d RTP/AVP 0 8\r\n", port)
	b.WriteString("a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\na=sendrecv\r\n")
	return []byte(b.String())
}

// sdpAnswer is what we use from the far end's SDP: where to send RTP and which codec.
type sdpAnswer struct {
	addr *net.UDPAddr
	pt   uint8
}

// parseSDPAnswer reads the first audio stream of an SDP answer: its connection address
// (media-level c= wins over session-level) and the first of PCMU/PCMA in its format list.
func parseSDPAnswer(body []byte) (sdpAnswer, error) {
	var sessIP, mediaIP net.IP
	port := -1
	var formats []string
	inAudio, seenAudio := false, false
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimRight(line, "\r")
		if len(line) < 2 || line[1] != '=' {
			continue
		}
		val := line[2:]
		switch line[0] {
		case 'm':
			inAudio = false
			f := strings.Fields(val)
			if !seenAudio && len(f) >= 4 && f[0] == "audio" {
				p, err := strconv.Atoi(f[1])
				if err != nil || p < 0 || p > 65535 {
					return sdpAnswer{}, fmt.Errorf("%w: bad audio port %q", ErrSDP, f[1])
				}
				port, formats, inAudio, seenAudio = p, f[3:], true, true
			}
		case 'c':
			f := strings.Fields(val)
			if len(f) != 3 || f[0] != "IN" {
				return sdpAnswer{}, fmt.Errorf("%w: bad c= line %q", ErrSDP, val)
			}
			ip := net.ParseIP(strings.SplitN(f[2], "/", 2)[0])
			if ip == nil {
				return sdpAnswer{}, fmt.Errorf("%w: bad address %q", ErrSDP, f[2])
			}
			if inAudio {
				mediaIP = ip
			} else if !seenAudio {
				sessIP = ip
			}
		}
	}
	if !seenAudio {
		return sdpAnswer{}, fmt.Errorf("%w: no audio stream", ErrSDP)
	}
	ip := mediaIP
	if ip == nil {
		ip = sessIP
	}
	if ip == nil {
		return sdpAnswer{}, fmt.Errorf("%w: no connection address", ErrSDP)
	}
	for _, f := range formats {
		switch f {
		case "0":
			return sdpAnswer{addr: &net.UDPAddr{IP: ip, Port: port}, pt: ptPCMU}, nil
		case "8":
			return sdpAnswer{addr: &net.UDPAddr{IP: ip, Port: port}, pt: ptPCMA}, nil
		}
	}
	return sdpAnswer{}, fmt.Errorf("%w: no common codec in %v", ErrSDP, formats)
}
