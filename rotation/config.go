package rotation

import (
	"fmt"
	"strings"
	"time"
)

// NumberConfig is one number of a pool.
type NumberConfig struct {
	Number     string `yaml:"number" json:"number"`
	Weight     int    `yaml:"weight" json:"weight"`
	MaxPerHour int    `yaml:"max_per_hour" json:"max_per_hour"` // 0 = no cap
	MaxPerDay  int    `yaml:"max_per_day" json:"max_per_day"`   // 0 = no cap
}

// PoolConfig is one entry of the `pools` section (contract §5).
type PoolConfig struct {
	Name     string         `yaml:"name" json:"name"`
	Tenant   string         `yaml:"tenant" json:"tenant"`
	Channel  string         `yaml:"channel" json:"channel"`   // voice | sms
	Strategy string         `yaml:"strategy" json:"strategy"` // round_robin | weighted | least_used | sticky | local_presence
	Numbers  []NumberConfig `yaml:"numbers" json:"numbers"`
	Cooldown time.Duration  `yaml:"cooldown" json:"cooldown"`
	// OnExhausted is "hold" (schedule until a number is free) or "fail" (pool_exhausted).
	OnExhausted string `yaml:"on_exhausted" json:"on_exhausted"`
}

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
	return nil
}
