package rotation

import (
	"fmt"
	"strings"
	"time"
)

// NumberConfig is one number of a pool.
type NumberConfig struct {
	Number     string `yaml:"number" json:"number"`
	Weight     int    `yaml:"weight" json:"weight"`             // 0 means 1 (the default)
	MaxPerHour int    `yaml:"max_per_hour" json:"max_per_hour"` // 0 = no cap
	MaxPerDay  int    `yaml:"max_per_day" json:"max_per_day"`   // 0 = no cap
	// Disabled keeps the number in the pool (and on the sticky ring, so that its
	// recipients come back to it) but never picks it.
	Disabled bool `yaml:"disabled" json:"disabled,omitempty"`
}

// HealthConfig says when a number is quarantined for a success rate (voice: answered;
// SMS: delivered) well below its pool's. The zero value means the defaults.
type HealthConfig struct {
	// Off disables health tracking: no number is ever quarantined.
	Off bool `yaml:"off" json:"off,omitempty"`
	// Window is the sliding window outcomes are counted over (default 1h).
	Window time.Duration `yaml:"window" json:"window,omitempty"`
	// MinSamples is how many outcomes a number (and the rest of its pool) needs in the
	// window before it is judged (default 20).
	MinSamples int `yaml:"min_samples" json:"min_samples,omitempty"`
	// Ratio: a number whose rate is below Ratio × the rate of the rest of the pool is
	// quarantined (default 0.5).
	Ratio float64 `yaml:"ratio" json:"ratio,omitempty"`
	// Rest is how long a quarantined number rests before probation (default 1h).
	Rest time.Duration `yaml:"rest" json:"rest,omitempty"`
	// ProbationShare is the fraction of its normal share of picks a number on probation
	// gets (default 0.1).
	ProbationShare float64 `yaml:"probation_share" json:"probation_share,omitempty"`
	// ProbationSamples is how many outcomes decide probation: healthy, back to active;
	// not, quarantined again (default 10).
	ProbationSamples int `yaml:"probation_samples" json:"probation_samples,omitempty"`
}

// WithDefaults returns h with every zero key set to its default.
func (h HealthConfig) WithDefaults() HealthConfig {
	if h.Window == 0 {
		h.Window = time.Hour
	}
	if h.MinSamples == 0 {
		h.MinSamples = 20
	}
	if h.Ratio == 0 {
		h.Ratio = 0.5
	}
	if h.Rest == 0 {
		h.Rest = time.Hour
	}
	if h.ProbationShare == 0 {
		h.ProbationShare = 0.1
	}
	if h.ProbationSamples == 0 {
		h.ProbationSamples = 10
	}
	return h
}

// Validate reports the first bad key, named relative to the health section.
func (h HealthConfig) Validate() error {
	if h.Window < 0 {
		return fmt.Errorf("window: must be >= 0, got %v", h.Window)
	}
	if h.MinSamples < 0 {
		return fmt.Errorf("min_samples: must be >= 0, got %d", h.MinSamples)
	}
	if h.Ratio < 0 || h.Ratio > 1 {
		return fmt.Errorf("ratio: must be 0..1, got %v", h.Ratio)
	}
	if h.Rest < 0 {
		return fmt.Errorf("rest: must be >= 0, got %v", h.Rest)
	}
	if h.ProbationShare < 0 || h.ProbationShare > 1 {
		return fmt.Errorf("probation_share: must be 0..1, got %v", h.ProbationShare)
	}
	if h.ProbationSamples < 0 {
		return fmt.Errorf("probation_samples: must be >= 0, got %d", h.ProbationSamples)
	}
	return nil
}

// PoolConfig is one entry of the `pools` section (contract §5).
type PoolConfig struct {
	Name     string         `yaml:"name" json:"name"`
	Tenant   string         `yaml:"tenant" json:"tenant"`
	Channel  string         `yaml:"channel" json:"channel"`   // voice | sms
	Strategy string         `yaml:"strategy" json:"strategy"` // round_robin | weighted | least_used | sticky | local_presence
	Numbers  []NumberConfig `yaml:"numbers" json:"numbers"`
	Cooldown time.Duration  `yaml:"cooldown" json:"cooldown"`
	// OnExhausted is "hold" (schedule until a number is free) or "fail" (pool_exhausted;
	// the default).
	OnExhausted string `yaml:"on_exhausted" json:"on_exhausted"`
	// Health configures quarantine of numbers with a poor answer or delivery rate.
	Health HealthConfig `yaml:"health" json:"health"`
}

// Hold reports whether a request that finds the pool exhausted is held until a number
// frees up ("hold") rather than failed with pool_exhausted ("fail", also when unset: a
// payment reminder should not wait silently for hours unless its pool says so).
func (c PoolConfig) Hold() bool { return c.OnExhausted == "hold" }

// Validate reports the first bad key, named relative to the entry.
func (c PoolConfig) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("name: must not be empty")
	}
	switch c.Channel {
	case "voice", "sms":
	default:
		return fmt.Errorf("channel: must be voice or sms, got %q", c.Channel)
	}
	switch c.Strategy {
	case "round_robin", "weighted", "least_used", "sticky", "local_presence":
	default:
		return fmt.Errorf("strategy: must be round_robin, weighted, least_used, sticky or local_presence, got %q", c.Strategy)
	}
	switch c.OnExhausted {
	case "", "hold", "fail":
	default:
		return fmt.Errorf("on_exhausted: must be hold or fail, got %q", c.OnExhausted)
	}
	if len(c.Numbers) == 0 {
		return fmt.Errorf("numbers: must list at least one number")
	}
	seen := make(map[string]bool, len(c.Numbers))
	for i, n := range c.Numbers {
		if n.Number == "" || (strings.HasPrefix(n.Number, "+") && strings.Trim(n.Number[1:], "0123456789") != "") {
			return fmt.Errorf("numbers[%d].number: must be E.164 or a sender ID, got %q", i, n.Number)
		}
		if seen[n.Number] {
			return fmt.Errorf("numbers[%d].number: listed twice: %q", i, n.Number)
		}
		seen[n.Number] = true
		if n.Weight < 0 || n.Weight > 1000 {
			return fmt.Errorf("numbers[%d].weight: must be 0..1000, got %d", i, n.Weight)
		}
		if n.MaxPerHour < 0 {
			return fmt.Errorf("numbers[%d].max_per_hour: must be >= 0, got %d", i, n.MaxPerHour)
		}
		if n.MaxPerDay < 0 {
			return fmt.Errorf("numbers[%d].max_per_day: must be >= 0, got %d", i, n.MaxPerDay)
		}
	}
	if c.Cooldown < 0 {
		return fmt.Errorf("cooldown: must be >= 0, got %v", c.Cooldown)
	}
	if err := c.Health.Validate(); err != nil {
		return fmt.Errorf("health.%w", err)
	}
	return nil
}
