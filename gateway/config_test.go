package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExampleConfigLoads guarantees that config.example.yaml, which documents every key,
// loads and validates, and that it sets every key the Config struct has.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("../config.example.yaml", nil, nil)
	if err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
	if cfg.NodeID != "gw-1" || len(cfg.SMPP) != 1 || cfg.SMPP[0].Window != 50 || cfg.SMPP[0].BindTimeout != 10*time.Second {
		t.Fatalf("unexpected values: %+v", cfg)
	}
	if len(cfg.Pools) != 1 || len(cfg.Pools[0].Numbers) != 2 || cfg.Pools[0].Numbers[1].Weight != 2 {
		t.Fatalf("pools: %+v", cfg.Pools)
	}
	// Every yaml key of the Config tree appears in the example file.
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	collectKeys(reflect.ValueOf(&cfg).Elem(), nil, keys)
	for _, path := range keys {
		last := path[len(path)-1]
		if last == "0" || last == "1" || last == "default" {
			continue
		}
		if !strings.Contains(string(data), last+":") {
			t.Errorf("config.example.yaml does not document key %s", strings.Join(path, "."))
		}
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, yaml string
		env        []string
		sets       []string
		key, msg   string
	}{
		{"explicit zero is not the default", "smpp:\n  - name: a\n    addr: 127.0.0.1:2775\n    window: 0\n", nil, nil, "smpp[0].window", "must be 1..1000, got 0"},
		{"unset keys take defaults", "smpp:\n  - name: a\n    addr: 127.0.0.1:2775\n", nil, nil, "", ""},
		{"window too big", "smpp:\n  - name: a\n    addr: 127.0.0.1:2775\n    window: 5000\n", nil, nil, "smpp[0].window", "must be 1..1000, got 5000"},
		{"unknown key", "kafka:\n  brokerz: [a]\n", nil, nil, "kafka.brokerz", "not found"},
		{"unknown top key", "nodeid: x\n", nil, nil, "nodeid", "not found"},
		{"wrong type", "smpp:\n  - name: a\n    addr: 127.0.0.1:2775\n    binds: lots\n", nil, nil, "smpp[0].binds", "cannot unmarshal"},
		{"bad duration", "dispatch:\n  receipt_ttl: soon\n", nil, nil, "dispatch.receipt_ttl", ""},
		{"bad enum", "log:\n  format: xml\n", nil, nil, "log.format", `got "xml"`},
		{"negative procs", "procs: -1\n", nil, nil, "procs", "must be 0..4096, got -1"},
		{"bad compression", "storage:\n  compression: lz4\n", nil, nil, "storage.compression", `must be none, snappy or zstd, got "lz4"`},
		{"env bad int", "smpp:\n  - name: a\n    addr: 127.0.0.1:2775\n", []string{"SENDCORE_SMPP_0_WINDOW=abc"}, nil, "SENDCORE_SMPP_0_WINDOW", "must be an integer"},
		{"env out of range", "smpp:\n  - name: a\n    addr: 127.0.0.1:2775\n", []string{"SENDCORE_SMPP_0_WINDOW=0"}, nil, "smpp[0].window", "got 0"},
		{"set unknown", "", nil, []string{"kafka.nope=1"}, "kafka.nope", "unknown key"},
		{"duplicate name", "smpp:\n  - {name: a, addr: 127.0.0.1:1}\n  - {name: a, addr: 127.0.0.1:2}\n", nil, nil, "smpp[1].name", "duplicate"},
		{"bad route", "smpp:\n  - {name: a, addr: 127.0.0.1:1, routes: [\"358\"]}\n", nil, nil, "smpp[0].routes[0]", "got \"358\""},
		{"pool strategy", "pools:\n  - {name: p, channel: sms, strategy: random, numbers: [{number: \"+358401\"}]}\n", nil, nil, "pools[0].strategy", "random"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tt.yaml), tt.env, tt.sets)
			if tt.key == "" && tt.msg == "" {
				if err != nil {
					t.Fatalf("want ok, got %v", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want *ConfigError, got %T %v", err, err)
			}
			if ce.Key != tt.key || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got key %q err %q; want key %q containing %q", ce.Key, err, tt.key, tt.msg)
			}
		})
	}
}

func TestConfigPrecedence(t *testing.T) {
	p := writeConfig(t, "node_id: from-file\nkafka:\n  group: g1\nsmpp:\n  - {name: a, addr: 127.0.0.1:1}\n")
	cfg, err := LoadConfig(p, []string{"SENDCORE_KAFKA_GROUP=g2", "SENDCORE_KAFKA_BROKERS=h1:9092, h2:9092", "SENDCORE_ADMIN_TOKEN=x", "SENDCORE_SMPP_0_WINDOW=7", "SENDCORE_LIMITS_TENANTS_ACME=5"},
		[]string{"node_id=from-flag", "smpp.0.tps=12.5"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeID != "from-flag" || cfg.Kafka.Group != "g2" || !reflect.DeepEqual(cfg.Kafka.Brokers, []string{"h1:9092", "h2:9092"}) {
		t.Fatalf("precedence: %+v", cfg)
	}
	if cfg.SMPP[0].Window != 7 || cfg.SMPP[0].TPS != 12.5 || cfg.SMPP[0].Binds != 1 || cfg.SMPP[0].Bind != "transceiver" {
		t.Fatalf("smpp defaults/overrides: %+v", cfg.SMPP[0])
	}
	if cfg.Limits.Tenants["ACME"] != 5 {
		t.Fatalf("map env: %+v", cfg.Limits.Tenants)
	}
}

func TestDefaultConfigValid(t *testing.T) {
	cfg, err := LoadConfig("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Kafka.Brokers) != 0 || cfg.Control.Addr == "" {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o600) }
