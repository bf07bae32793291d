package kafka

import (
	"errors"
	"fmt"
)

// Config is the `kafka` section of the configuration (contract §5).
type Config struct {
	// Brokers are the bootstrap brokers; empty starts the embedded broker on 127.0.0.1.
	Brokers       []string `yaml:"brokers"`
	Group         string   `yaml:"group"`
	RequestsTopic string   `yaml:"requests_topic"`
	EventsTopic   string   `yaml:"events_topic"`
	DLQTopic      string   `yaml:"dlq_topic"`
	OptoutsTopic  string   `yaml:"optouts_topic"`
	// Partitions of each topic the embedded broker creates.
	Partitions int `yaml:"partitions"`
}

// DefaultConfig returns the contract's defaults.
func DefaultConfig() Config {
	return Config{
		Group:         "sendcore",
		RequestsTopic: "sendcore.requests",
		EventsTopic:   "sendcore.events",
		DLQTopic:      "sendcore.dlq",
		OptoutsTopic:  "sendcore.optouts",
		Partitions:    8,
	}
}

// Topics returns the four topics, requests first.
func (c Config) Topics() []string {
	return []string{c.RequestsTopic, c.EventsTopic, c.DLQTopic, c.OptoutsTopic}
}

// Validate reports the first bad key, named relative to the section.
func (c Config) Validate() error {
	for i, b := range c.Brokers {
		if b == "" {
			return fmt.Errorf("brokers[%d]: must be host:port, got %q", i, b)
		}
	}
	if c.Group == "" {
		return errors.New("group: must not be empty")
	}
	for k, v := range map[string]string{"requests_topic": c.RequestsTopic, "events_topic": c.EventsTopic,
		"dlq_topic": c.DLQTopic, "optouts_topic": c.OptoutsTopic} {
		if v == "" {
			return fmt.Errorf("%s: must not be empty", k)
		}
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		return fmt.Errorf("partitions: must be 1..1024, got %d", c.Partitions)
	}
	return nil
}
