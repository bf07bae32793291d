package kafka

import (
	"errors"
	"fmt"
	"time"
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
	// EmbeddedRetention: the embedded broker deletes records older than this, in whole
	// log segments (BrokerOptions.Retention); 0 keeps everything. It holds its log in
	// memory unless given a data dir, so a long run at load grows without it. A consumer
	// that falls further behind loses what was deleted (the requests consumer then
	// starts at the first record that exists, and logs it).
	EmbeddedRetention time.Duration `yaml:"embedded_retention"`

	// Tuning; zero takes the default of DefaultConfig.

	// ReplicationFactor of the topics created on an external cluster.
	ReplicationFactor int `yaml:"replication_factor"`
	// QueueCapacity sized kafka-go Reader's fetch queue; the consumer no longer has one
	// (MaxInFlight bounds what it holds). Accepted and ignored, so that configurations
	// written for earlier versions still load.
	QueueCapacity int `yaml:"queue_capacity"`
	// MaxBytes bounds one fetch answer (all partitions of a broker), and each partition's
	// share of it.
	MaxBytes int `yaml:"max_bytes"`
	// MaxWait bounds how long the broker holds a fetch while it has less than MinBytes.
	MaxWait time.Duration `yaml:"max_wait"`
	// MinBytes is how much data, over all the partitions of one fetch, the broker waits
	// for (up to MaxWait) before it answers. 1 (the default) answers as soon as there is
	// a record: the lowest latency. A few KiB with a MaxWait of a few milliseconds trades
	// up to that much latency for fewer fetch round trips at moderate rates.
	MinBytes int `yaml:"min_bytes"`
	// MaxInFlight bounds the records fetched and not yet finished: the consumer stops
	// fetching when it is reached (back-pressure).
	MaxInFlight int `yaml:"max_in_flight"`
	// CommitInterval is how often finished offsets are committed.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// MaxMessageBytes is the largest record the writers produce; a DLQ copy of a larger
	// record is written without its value (header sendcore-truncated). Default 1 MiB,
	// Kafka's default broker limit: a poison record never blocks on a write it cannot make.
	MaxMessageBytes int `yaml:"max_message_bytes"`
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

		ReplicationFactor: 1,
		MaxBytes:          16 << 20,
		MaxWait:           100 * time.Millisecond,
		MinBytes:          1,
		MaxInFlight:       20000,
		CommitInterval:    200 * time.Millisecond,
		MaxMessageBytes:   1 << 20,
	}
}

// withDefaults returns c with every zero tuning field set to its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = d.ReplicationFactor
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.MaxWait <= 0 {
		c.MaxWait = d.MaxWait
	}
	if c.MinBytes <= 0 {
		c.MinBytes = d.MinBytes
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = d.MaxInFlight
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = d.CommitInterval
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = d.MaxMessageBytes
	}
	return c
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
	if c.EmbeddedRetention < 0 {
		return fmt.Errorf("embedded_retention: must be >= 0, got %v", c.EmbeddedRetention)
	}
	if c.MinBytes < 0 || (c.MaxBytes > 0 && c.MinBytes > c.MaxBytes) {
		return fmt.Errorf("min_bytes: must be 0..max_bytes (%d), got %d", c.MaxBytes, c.MinBytes)
	}
	return nil
}
