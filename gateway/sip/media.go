package sip

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/zaf/g711"
)

// G.711 at 8 kHz: 20 ms is 160 samples, one byte each.
const (
	frameSamples  = 160
	frameInterval = 20 * time.Millisecond
	ptPCMU        = 0
	ptPCMA        = 8
)

// media is the RTP side of one call. It is all the call needs from a media library, so the
// implementation (today a plain UDP socket and pion/rtp headers) can be swapped.
type media interface {
	// Port is the local RTP port offered in the SDP.
	Port() int
	// Play sends audio (already G.711-encoded for pt) to remote in 20 ms RTP packets paced
	// in real time. It returns when the audio is sent or ctx is done, with the number of
	// packets sent.
	Play(ctx context.Context, remote *net.UDPAddr, pt uint8, audio []byte) (int, error)
	// Close releases the socket. Safe to call more than once.
	Close() error
}

// rtpStream is a media on one UDP socket.
type rtpStream struct {
	conn *net.UDPConn
	once sync.Once
}

func newRTPStream(ip net.IP) (*rtpStream, error) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		return nil, fmt.Errorf("%w: rtp socket: %w", ErrMedia, err)
	}
	return &rtpStream{conn: conn}, nil
}

func (s *rtpStream) Port() int { return s.conn.LocalAddr().(*net.UDPAddr).Port }

func (s *rtpStream) Close() error {
	var err error
	s.once.Do(func() { err = s.conn.Close() })
	return err
}

func (s *rtpStream) Play(ctx context.Context, remote *net.UDPAddr, pt uint8, audio []byte) (int, error) {
	if remote == nil || len(audio) == 0 {
		return 0, nil
	}
	h := rtp.Header{
		Version:        2,
		PayloadType:    pt,
		SequenceNumber: uint16(rand.Uint32()),
		Timestamp:      rand.Uint32(),
		SSRC:           rand.Uint32(),
		Marker:         true,
	}
	buf := make([]byte, 12+frameSamples)
	tick := time.NewTicker(frameInterval)
	defer tick.Stop()
	sent := 0
	for off := 0; off < len(audio); off += frameSamples {
		if off > 0 {
			select {
			case <-ctx.Done():
				return sent, ctx.Err()
			case <-tick.C:
			}
		}
		frame := audio[off:min(off+frameSamples, len(audio))]
		n, err := h.MarshalTo(buf)
		if err != nil {
			return sent, fmt.Errorf("%w: rtp header: %w", ErrMedia, err)
		}
		n += copy(buf[n:], frame)
		if _, err := s.conn.WriteToUDP(buf[:n], remote); err != nil {
			return sent, fmt.Errorf("%w: rtp write: %w", ErrMedia, err)
		}
		sent++
		h.Marker = false
		h.SequenceNumber++
		h.Timestamp += frameSamples
	}
	return sent, nil
}

// prompt is one WAV file decoded to both G.711 laws.
type prompt struct {
	ulaw, alaw []byte
}

func (p *prompt) payload(pt uint8) []byte {
	if pt == ptPCMA {
		return p.alaw
	}
	return p.ulaw
}

// prompts loads WAV files from one directory once and keeps them.
type prompts struct {
	dir   string
	mu    sync.Mutex
	cache map[string]*prompt
}

func newPrompts(dir string) *prompts {
	return &prompts{dir: dir, cache: make(map[string]*prompt)}
}

// get returns the named prompt: a file name in the directory, ".wav" optional.
func (ps *prompts) get(name string) (*prompt, error) {
	if name == "" || name != filepath.Base(name) || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return nil, fmt.Errorf("%w: bad name %q", ErrPrompt, name)
	}
	if !strings.HasSuffix(strings.ToLower(name), ".wav") {
		name += ".wav"
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.cache[name]; ok {
		return p, nil
	}
	if ps.dir == "" {
		return nil, fmt.Errorf("%w: prompt_dir is not set", ErrPrompt)
	}
	data, err := os.ReadFile(filepath.Join(ps.dir, name))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPrompt, err)
	}
	p, err := decodeWAV(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrPrompt, name, err)
	}
	ps.cache[name] = p
	return p, nil
}

// decodeWAV accepts mono 8 kHz WAV: 16-bit linear PCM, A-law or µ-law.
func decodeWAV(b []byte) (*prompt, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, fmt.Errorf("not a RIFF/WAVE file")
	}
	var format, channels, bits uint16
	var rate uint32
	var data []byte
	haveFmt := false
	for p := 12; p+8 <= len(b); {
		id := string(b[p : p+4])
		size := int(binary.LittleEndian.Uint32(b[p+4 : p+8]))
		body := b[p+8:]
		if size > len(body) {
			size = len(body) // tolerate a truncated last chunk
		}
		body = body[:size]
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, fmt.Errorf("short fmt chunk")
			}
			format = binary.LittleEndian.Uint16(body[0:])
			channels = binary.LittleEndian.Uint16(body[2:])
			rate = binary.LittleEndian.Uint32(body[4:])
			bits = binary.LittleEndian.Uint16(body[14:])
			haveFmt = true
		case "data":
			data = body
		}
		p += 8 + size + size&1
	}
	if !haveFmt || data == nil {
		return nil, fmt.Errorf("missing fmt or data chunk")
	}
	if channels != 1 || rate != 8000 {
		return nil, fmt.Errorf("want mono 8000 Hz, got %d channels at %d Hz", channels, rate)
	}
	switch {
	case format == 1 && bits == 16:
		data = data[:len(data)&^1]
		return &prompt{ulaw: g711.EncodeUlaw(data), alaw: g711.EncodeAlaw(data)}, nil
	case format == 6 && bits == 8:
		return &prompt{alaw: data, ulaw: g711.Alaw2Ulaw(data)}, nil
	case format == 7 && bits == 8:
		return &prompt{ulaw: data, alaw: g711.Ulaw2Alaw(data)}, nil
	}
	return nil, fmt.Errorf("unsupported encoding: format %d, %d bits", format, bits)
}
