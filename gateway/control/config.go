package control

import (
	"fmt"
	"net"
	"time"
)

// Config is the `control` section (contract §5, §6).
type Config struct {
	// Addr is the listen address; "" disables the control plane.
	Addr string `yaml:"addr"`
	// AdminTokenEnv names the environment variable holding the bootstrap admin token.
	AdminTokenEnv string `yaml:"admin_token_env"`
	// MetricsToken puts /metrics behind the read scope when true.
	MetricsToken bool          `yaml:"metrics_token"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	IdleTimeout  time.Duration `yaml:"idle_timeout"`
	MaxBodyBytes int           `yaml:"max_body_bytes"`
}

// DefaultConfig returns the contract's defaults.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:8080", AdminTokenEnv: "SENDCORE_ADMIN_TOKEN",
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second,
		MaxBodyBytes: 64 << 20}
}

// Validate reports the first bad key, named relative to the section.
func (c Config) Validate() error {
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return fmt.Errorf("addr: must be host:port, got %q", c.Addr)
		}
	}
	if c.AdminTokenEnv == "" {
		return fmt.Errorf("admin_token_env: must not be empty")
	}
	for k, d := range map[string]time.Duration{"read_timeout": c.ReadTimeout, "write_timeout": c.WriteTimeout, "idle_timeout": c.IdleTimeout} {
		if d <= 0 {
			return fmt.Errorf("%s: must be > 0, got %v", k, d)
		}
	}
	if c.MaxBodyBytes < 1024 {
		return fmt.Errorf("max_body_bytes: must be >= 1024, got %d", c.MaxBodyBytes)
	}
	return nil
}
