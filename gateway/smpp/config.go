package smpp

import (
	"fmt"
	"net"
	"time"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/segment"
)

// Config is one entry of the `smpp` section: one SMSC connection (contract §5).
type Config struct {
	Name       string `yaml:"name"`
	Addr       string `yaml:"addr"`
	SystemID   string `yaml:"system_id"`
	Password   string `yaml:"password"`
	SystemType string `yaml:"system_type"`
	// Bind is transmitter, transceiver, or receiver-pair (a transmitter plus a receiver
	// session per bind, for receipts).
	Bind  string `yaml:"bind"`
	Binds int    `yaml:"binds"` // parallel sessions
	// Window is the number of submit_sm in flight per session.
	Window int `yaml:"window"`
	// TPS is the contracted rate of the whole connection in segments per second; 0 = unlimited.
	TPS    float64  `yaml:"tps"`
	Routes []string `yaml:"routes"` // destination prefixes; "*" is the default route
	// SourceTON is "auto" (from the sender: alphanumeric, short code, international) or
	// "ton/npi" such as "1/1".
	SourceTON string `yaml:"source_ton"`
	// Concat is udh8 (default), udh16, sar or payload.
	Concat string `yaml:"concat"`
	// DefaultFrom is the sender used when a request has neither from nor pool.
	DefaultFrom string `yaml:"default_from"`
	// IDFormat is how the SMSC writes message ids in receipts: hex or decimal (or as-is: "").
	IDFormat    string        `yaml:"id_format"`
	TLS         bool          `yaml:"tls"`
	BindTimeout time.Duration `yaml:"bind_timeout"`
	RespTimeout time.Duration `yaml:"resp_timeout"`
	// EnquireLink is the idle interval after which enquire_link is sent.
	EnquireLink time.Duration `yaml:"enquire_link"`
	// OnUnknown is the policy for a submit whose response timed out: "retry" (at-least-once,
	// default) or "fail" (at-most-once).
	OnUnknown string `yaml:"on_unknown"`
	// RespIDFormat is how the SMSC writes message ids in submit_sm_resp (and in the
	// receipted_message_id TLV): hex, decimal, or "" = the same as IDFormat. Receipt ids in
	// text are converted from IDFormat to this form so that they match.
	RespIDFormat string `yaml:"resp_id_format"`
	// Retries bounds the attempts after a transient error or an unknown outcome (retry policy).
	Retries int `yaml:"retries"`
	// Queue is the number of messages accepted by Send and not yet done; Send blocks beyond
	// it. 0 = 4 × window × binds.
	Queue int `yaml:"queue"`
	// ShutdownGrace bounds the wait for in-flight submits before unbind on shutdown.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// ReconnectMin and ReconnectMax bound the jittered exponential reconnect backoff.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// NationalLanguages allows the national language single shift tables of 3GPP TS
	// 23.038 (turkish, spanish, portuguese) on this connection: used only when the SMSC and
	// handsets support them, and only when they save segments compared with UCS-2.
	NationalLanguages []string `yaml:"national_languages"`
}

// National returns the set of national languages the connection allows.
func (c Config) National() segment.LanguageSet {
	var s segment.LanguageSet
	for _, name := range c.NationalLanguages {
		if l, ok := segment.ParseLanguage(name); ok {
			s |= segment.Languages(l)
		}
	}
	return s
}

// DefaultConfig returns the defaults applied under every smpp entry.
func DefaultConfig() Config {
	return Config{
		Bind: "transceiver", Binds: 1, Window: 10, SourceTON: "auto", Concat: "udh8",
		BindTimeout: 10 * time.Second, RespTimeout: 10 * time.Second,
		EnquireLink: 30 * time.Second, OnUnknown: "retry", Routes: []string{"*"},
		Retries: 3, ShutdownGrace: 5 * time.Second,
		ReconnectMin: 500 * time.Millisecond, ReconnectMax: 30 * time.Second,
	}
}

// Validate reports the first bad key, named relative to the entry.
func (c Config) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("name: must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr: must be host:port, got %q", c.Addr)
	}
	switch c.Bind {
	case "transmitter", "transceiver", "receiver-pair":
	default:
		return fmt.Errorf("bind: must be transmitter, transceiver or receiver-pair, got %q", c.Bind)
	}
	if c.Binds < 1 || c.Binds > 64 {
		return fmt.Errorf("binds: must be 1..64, got %d", c.Binds)
	}
	if c.Window < 1 || c.Window > 1000 {
		return fmt.Errorf("window: must be 1..1000, got %d", c.Window)
	}
	if c.TPS < 0 {
		return fmt.Errorf("tps: must be >= 0, got %v", c.TPS)
	}
	if err := dispatch.ValidatePrefixes(c.Routes); err != nil {
		return err
	}
	if c.SourceTON != "auto" {
		var ton, npi int
		if n, err := fmt.Sscanf(c.SourceTON, "%d/%d", &ton, &npi); err != nil || n != 2 || ton < 0 || ton > 6 || npi < 0 || npi > 18 {
			return fmt.Errorf("source_ton: must be auto or ton/npi (e.g. 1/1), got %q", c.SourceTON)
		}
	}
	switch c.Concat {
	case "udh8", "udh16", "sar", "payload":
	default:
		return fmt.Errorf("concat: must be udh8, udh16, sar or payload, got %q", c.Concat)
	}
	for i, name := range c.NationalLanguages {
		if _, ok := segment.ParseLanguage(name); !ok {
			return fmt.Errorf("national_languages[%d]: must be turkish, spanish or portuguese, got %q", i, name)
		}
	}
	switch c.IDFormat {
	case "", "hex", "decimal":
	default:
		return fmt.Errorf("id_format: must be hex or decimal, got %q", c.IDFormat)
	}
	switch c.RespIDFormat {
	case "", "hex", "decimal":
	default:
		return fmt.Errorf("resp_id_format: must be hex or decimal, got %q", c.RespIDFormat)
	}
	if c.Retries < 0 || c.Retries > 100 {
		return fmt.Errorf("retries: must be 0..100, got %d", c.Retries)
	}
	if c.Queue < 0 {
		return fmt.Errorf("queue: must be >= 0, got %d", c.Queue)
	}
	if c.ReconnectMax < c.ReconnectMin {
		return fmt.Errorf("reconnect_max: must be >= reconnect_min, got %v", c.ReconnectMax)
	}
	switch c.OnUnknown {
	case "retry", "fail":
	default:
		return fmt.Errorf("on_unknown: must be retry or fail, got %q", c.OnUnknown)
	}
	for k, d := range map[string]time.Duration{"bind_timeout": c.BindTimeout, "resp_timeout": c.RespTimeout, "enquire_link": c.EnquireLink,
		"shutdown_grace": c.ShutdownGrace, "reconnect_min": c.ReconnectMin} {
		if d <= 0 {
			return fmt.Errorf("%s: must be > 0, got %v", k, d)
		}
	}
	return nil
}
