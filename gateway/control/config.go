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
	// AdminTokenEnv names the environment variable holding the bootstrap admin token
	// (at least 16 characters when set).
	AdminTokenEnv string `yaml:"admin_token_env"`
	// MetricsToken puts /metrics behind the read scope when true.
	MetricsToken bool `yaml:"metrics_token"`
	// ReadTimeout bounds reading one request (headers and body): slow clients are cut.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing one response; backend calls get it as their deadline.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxBodyBytes is the largest request body (the CSV import's bound); larger: 413.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxJSONBytes is the largest JSON body of any other route; larger: 413.
	MaxJSONBytes int `yaml:"max_json_bytes"`
	// MaxHeaderBytes bounds the request line and headers together; larger: 431.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConns bounds concurrent connections (0: fasthttp's default, 256 Ki).
	MaxConns int `yaml:"max_conns"`
	// MaxConnsPerIP bounds concurrent connections from one client IP (0: unlimited).
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
	// ShutdownTimeout is how long requests in progress may finish on shutdown.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// DefaultConfig returns the contract's defaults.
func DefaultConfig() Config {
	return Config{Addr: "127.0.0.1:8080", AdminTokenEnv: "SENDCORE_ADMIN_TOKEN",
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second,
		MaxBodyBytes: 64 << 20, MaxJSONBytes: 4 << 20, MaxHeaderBytes: 8 << 10,
		ShutdownTimeout: 5 * time.Second}
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
	for _, kd := range []struct {
		k string
		d time.Duration
	}{{"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout}, {"idle_timeout", c.IdleTimeout}, {"shutdown_timeout", c.ShutdownTimeout}} {
		if kd.d <= 0 {
			return fmt.Errorf("%s: must be > 0, got %v", kd.k, kd.d)
		}
	}
	if c.MaxBodyBytes < 1024 {
		return fmt.Errorf("max_body_bytes: must be >= 1024, got %d", c.MaxBodyBytes)
	}
	if c.MaxJSONBytes < 1024 || c.MaxJSONBytes > c.MaxBodyBytes {
		return fmt.Errorf("max_json_bytes: must be 1024..max_body_bytes (%d), got %d", c.MaxBodyBytes, c.MaxJSONBytes)
	}
	if c.MaxHeaderBytes < 1024 || c.MaxHeaderBytes > 1<<20 {
		return fmt.Errorf("max_header_bytes: must be 1024..1048576, got %d", c.MaxHeaderBytes)
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("max_conns: must be >= 0, got %d", c.MaxConns)
	}
	if c.MaxConnsPerIP < 0 {
		return fmt.Errorf("max_conns_per_ip: must be >= 0, got %d", c.MaxConnsPerIP)
	}
	return nil
}
