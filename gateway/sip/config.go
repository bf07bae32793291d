package sip

import (
	"fmt"
	"net"
	"time"

	"github.com/sendcore/sendcore/dispatch"
)

// Config is one entry of the `sip` section: one SIP trunk (contract §5).
type Config struct {
	Name      string   `yaml:"name"`
	Addr      string   `yaml:"addr"`
	Transport string   `yaml:"transport"` // udp | tcp | tls
	Username  string   `yaml:"username"`
	Password  string   `yaml:"password"`
	MaxCalls  int      `yaml:"max_calls"` // concurrent calls
	CPS       float64  `yaml:"cps"`       // call attempts per second
	Routes    []string `yaml:"routes"`
	// Domain is the host part of request URIs; default: the host of addr.
	Domain string `yaml:"domain"`
	// PromptDir holds the WAV prompts that requests name.
	PromptDir string `yaml:"prompt_dir"`
	// AnswerTimeout bounds the wait for any response to INVITE before failing over.
	AnswerTimeout time.Duration `yaml:"answer_timeout"`
	// Listen is the local SIP address (host:port) the trunk binds for its transport; port 0
	// picks a free port. Default "0.0.0.0:0"; with an unspecified host the Contact and SDP
	// carry the local address that routes to addr.
	Listen string `yaml:"listen"`
	// RingTimeout applies to calls that carry none. Default 30s.
	RingTimeout time.Duration `yaml:"ring_timeout"`
	// MaxDuration applies to answered calls that carry none. Default 5m.
	MaxDuration time.Duration `yaml:"max_duration"`
	// TLSInsecureSkipVerify disables verification of the trunk's TLS certificate (tests only).
	TLSInsecureSkipVerify bool `yaml:"tls_insecure_skip_verify"`
}

// DefaultConfig returns the defaults applied under every sip entry.
func DefaultConfig() Config {
	return Config{Transport: "udp", MaxCalls: 100, CPS: 10, Routes: []string{"*"}, AnswerTimeout: 8 * time.Second,
		Listen: "0.0.0.0:0", RingTimeout: 30 * time.Second, MaxDuration: 5 * time.Minute}
}

// Validate reports the first bad key, named relative to the entry.
func (c Config) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("name: must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr: must be host:port, got %q", c.Addr)
	}
	switch c.Transport {
	case "udp", "tcp", "tls":
	default:
		return fmt.Errorf("transport: must be udp, tcp or tls, got %q", c.Transport)
	}
	if c.MaxCalls < 1 || c.MaxCalls > 100000 {
		return fmt.Errorf("max_calls: must be 1..100000, got %d", c.MaxCalls)
	}
	if c.CPS <= 0 {
		return fmt.Errorf("cps: must be > 0, got %v", c.CPS)
	}
	if err := dispatch.ValidatePrefixes(c.Routes); err != nil {
		return err
	}
	if c.AnswerTimeout <= 0 {
		return fmt.Errorf("answer_timeout: must be > 0, got %v", c.AnswerTimeout)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: must be host:port, got %q", c.Listen)
	}
	if c.RingTimeout <= 0 {
		return fmt.Errorf("ring_timeout: must be > 0, got %v", c.RingTimeout)
	}
	if c.MaxDuration <= 0 {
		return fmt.Errorf("max_duration: must be > 0, got %v", c.MaxDuration)
	}
	return nil
}
