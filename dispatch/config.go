package dispatch

import (
	"fmt"
	"time"
)

// LimitsConfig is the `limits` section (contract §5). Rates are in segments (SMS) or
// calls (voice) per second; 0 means unlimited.
type LimitsConfig struct {
	GlobalTPS float64            `yaml:"global_tps" json:"global_tps"`
	Tenants   map[string]float64 `yaml:"tenants" json:"tenants"`
	// SenderTPS caps each sender number (e.g. 1 for a long code); 0 = unlimited.
	SenderTPS float64 `yaml:"sender_tps" json:"sender_tps"`
	// RecipientMax messages per RecipientWindow to one number; 0 = no cap.
	RecipientMax    int           `yaml:"recipient_max" json:"recipient_max"`
	RecipientWindow time.Duration `yaml:"recipient_window" json:"recipient_window"`
}

// Validate reports the first bad key, named relative to the section.
func (c LimitsConfig) Validate() error {
	if c.GlobalTPS < 0 {
		return fmt.Errorf("global_tps: must be >= 0, got %v", c.GlobalTPS)
	}
	for t, v := range c.Tenants {
		if v < 0 {
			return fmt.Errorf("tenants.%s: must be >= 0, got %v", t, v)
		}
	}
	if c.SenderTPS < 0 {
		return fmt.Errorf("sender_tps: must be >= 0, got %v", c.SenderTPS)
	}
	if c.RecipientMax < 0 {
		return fmt.Errorf("recipient_max: must be >= 0, got %d", c.RecipientMax)
	}
	if c.RecipientMax > 0 && c.RecipientWindow <= 0 {
		return fmt.Errorf("recipient_window: must be > 0 when recipient_max is set, got %v", c.RecipientWindow)
	}
	return nil
}

// QuietHoursConfig is the `quiet_hours` section: no sends between Start and End in the
// recipient's time zone (derived from the number's country).
type QuietHoursConfig struct {
	Enabled bool   `yaml:"enabled"`
	Start   string `yaml:"start"` // "HH:MM"
	End     string `yaml:"end"`   // "HH:MM"
}

// Validate reports the first bad key, named relative to the section.
func (c QuietHoursConfig) Validate() error {
	for k, v := range map[string]string{"start": c.Start, "end": c.End} {
		if _, err := time.Parse("15:04", v); err != nil {
			return fmt.Errorf("%s: must be HH:MM, got %q", k, v)
		}
	}
	return nil
}

// Config is the `dispatch` section: pipeline tuning.
type Config struct {
	// Workers process requests concurrently (in order per recipient).
	Workers int `yaml:"workers"`
	// MOKeywords opt the sender out of sms for the tenant; StartKeywords undo it.
	MOKeywords    []string `yaml:"mo_keywords"`
	StartKeywords []string `yaml:"start_keywords"`
	// MOTenant is the tenant MO opt-outs apply to.
	MOTenant string `yaml:"mo_tenant"`
	// ReceiptTTL is how long receipts are awaited after submission.
	ReceiptTTL time.Duration `yaml:"receipt_ttl"`
	// Retention is how long ledger records are kept.
	Retention time.Duration `yaml:"retention"`
	// ShutdownGrace bounds the wait for in-flight work on shutdown.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// SmartEncoding is the default of requests that do not say.
	SmartEncoding bool `yaml:"smart_encoding"`

	// The fields below are tuning; zero takes the default of DefaultConfig.

	// QueueDepth is the length of each worker's queue.
	QueueDepth int `yaml:"queue_depth"`
	// MaxRequestBytes bounds a request record's value; larger ones are rejected unread.
	MaxRequestBytes int `yaml:"max_request_bytes"`
	// MaxLimiterWait: a rate-limit wait up to this long is waited on a timer; a longer
	// one holds the request in the schedule.
	MaxLimiterWait time.Duration `yaml:"max_limiter_wait"`
	// RetryDelay is how long a request is held when every connection of its route is
	// down.
	RetryDelay time.Duration `yaml:"retry_delay"`
	// SchedulePoll is how often the scheduler takes due items; ScheduleBatch how many
	// at most per take; ScheduleLease how long a taken item is leased.
	SchedulePoll  time.Duration `yaml:"schedule_poll"`
	ScheduleBatch int           `yaml:"schedule_batch"`
	ScheduleLease time.Duration `yaml:"schedule_lease"`
	// EventBatch is the largest batch of events written at once.
	EventBatch int `yaml:"event_batch"`
	// MaxUnconfirmed bounds, per SMS connection, the requests sent (submit_sm written)
	// whose outcome is not yet durable in the ledger: what a crash can send twice. 0
	// takes the connection's in-flight window when it reports one (InFlightWindower),
	// else 256; -1 is unbounded.
	MaxUnconfirmed int `yaml:"max_unconfirmed"`
	// ReceiptSweep is how often submissions whose receipt_ttl passed are looked for
	// (they end in undelivered, receipt_timeout).
	ReceiptSweep time.Duration `yaml:"receipt_sweep"`
}

// defaultMaxRequestBytes bounds a request record unless dispatch.max_request_bytes says.
const defaultMaxRequestBytes = 64 << 10

// DefaultConfig returns the pipeline defaults.
func DefaultConfig() Config {
	return Config{
		Workers:       256,
		MOKeywords:    []string{"STOP", "STOPP", "LOPETA", "UNSUBSCRIBE", "STOPALL", "END", "CANCEL", "QUIT", "SLUTA"},
		StartKeywords: []string{"START", "ALOITA", "UNSTOP"},
		MOTenant:      "default",
		ReceiptTTL:    72 * time.Hour,
		Retention:     7 * 24 * time.Hour,
		ShutdownGrace: 10 * time.Second,

		QueueDepth:      64,
		MaxRequestBytes: defaultMaxRequestBytes,
		MaxLimiterWait:  250 * time.Millisecond,
		RetryDelay:      2 * time.Second,
		SchedulePoll:    100 * time.Millisecond,
		ScheduleBatch:   1000,
		ScheduleLease:   time.Minute,
		EventBatch:      4096,
		ReceiptSweep:    time.Second,
	}
}

// withDefaults returns c with every zero tuning field set to its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.QueueDepth <= 0 {
		c.QueueDepth = d.QueueDepth
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = d.MaxRequestBytes
	}
	if c.MaxLimiterWait <= 0 {
		c.MaxLimiterWait = d.MaxLimiterWait
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = d.RetryDelay
	}
	if c.SchedulePoll <= 0 {
		c.SchedulePoll = d.SchedulePoll
	}
	if c.ScheduleBatch <= 0 {
		c.ScheduleBatch = d.ScheduleBatch
	}
	if c.ScheduleLease <= 0 {
		c.ScheduleLease = d.ScheduleLease
	}
	if c.EventBatch <= 0 {
		c.EventBatch = d.EventBatch
	}
	if c.ReceiptSweep <= 0 {
		c.ReceiptSweep = d.ReceiptSweep
	}
	return c
}

// Validate reports the first bad key, named relative to the section.
func (c Config) Validate() error {
	if c.Workers < 1 || c.Workers > 100000 {
		return fmt.Errorf("workers: must be 1..100000, got %d", c.Workers)
	}
	if c.MOTenant == "" {
		return fmt.Errorf("mo_tenant: must not be empty")
	}
	for k, d := range map[string]time.Duration{"receipt_ttl": c.ReceiptTTL, "retention": c.Retention, "shutdown_grace": c.ShutdownGrace} {
		if d <= 0 {
			return fmt.Errorf("%s: must be > 0, got %v", k, d)
		}
	}
	return nil
}
