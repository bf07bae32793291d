package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/gateway/control"
	"github.com/sendcore/sendcore/gateway/kafka"
	"github.com/sendcore/sendcore/gateway/sip"
	"github.com/sendcore/sendcore/gateway/smpp"
	"github.com/sendcore/sendcore/rotation"
	"github.com/sendcore/sendcore/storage"
)

// Config is the whole configuration (contract §5): one section per package, each with
// its own Validate; Config.Validate prefixes their messages with the key path.
type Config struct {
	NodeID string `yaml:"node_id"`
	// Procs is GOMAXPROCS for the process: 0 (default) Go's own, n > 0 exactly n; more
	// than the cores trades throughput for a shorter tail under Badger's background work
	// (procs.go). Applied by Run, for the whole process.
	Procs      int                       `yaml:"procs"`
	DataDir    string                    `yaml:"data_dir"`
	Log        LogConfig                 `yaml:"log"`
	Kafka      kafka.Config              `yaml:"kafka"`
	SMPP       []smpp.Config             `yaml:"smpp"`
	SIP        []sip.Config              `yaml:"sip"`
	Pools      []rotation.PoolConfig     `yaml:"pools"`
	Limits     dispatch.LimitsConfig     `yaml:"limits"`
	QuietHours dispatch.QuietHoursConfig `yaml:"quiet_hours"`
	Dispatch   dispatch.Config           `yaml:"dispatch"`
	Storage    StorageConfig             `yaml:"storage"`
	Control    control.Config            `yaml:"control"`
}

// StorageConfig is the `storage` section: Badger tuning. Ledger retention is
// dispatch.retention.
type StorageConfig struct {
	SyncWrites      bool          `yaml:"sync_writes"`       // fsync every commit (survives OS crashes, slower)
	GCInterval      time.Duration `yaml:"gc_interval"`       // value-log GC interval
	DefaultRegion   string        `yaml:"default_region"`    // ISO 3166 region for national-form numbers in CSV imports
	BlockCacheBytes int64         `yaml:"block_cache_bytes"` // Badger block cache
	MemTableBytes   int64         `yaml:"memtable_bytes"`    // Badger memtable size
	// Values this long or longer go to Badger's value log (storage.Options).
	ValueThresholdBytes int64 `yaml:"value_threshold_bytes"`
	NoOptOutFilter      bool  `yaml:"no_optout_filter"` // disable the in-memory opt-out filter
	// Compression of Badger's LSM blocks: none | snappy | zstd (storage.Options).
	Compression string `yaml:"compression"`
}

// LogConfig is the `log` section.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // text | json
}

// DefaultConfig returns the embedded defaults: everything that `sendcore run` needs
// without a file (embedded broker, no SMSC, control plane on 127.0.0.1:8080).
func DefaultConfig() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "gw-1"
	}
	return Config{
		NodeID:     host,
		DataDir:    "./data",
		Log:        LogConfig{Level: "info", Format: "text"},
		Kafka:      kafka.DefaultConfig(),
		Limits:     dispatch.LimitsConfig{Tenants: map[string]float64{}},
		QuietHours: dispatch.QuietHoursConfig{Start: "21:00", End: "08:00"},
		Dispatch:   dispatch.DefaultConfig(),
		Storage: StorageConfig{GCInterval: 5 * time.Minute, BlockCacheBytes: 64 << 20, MemTableBytes: 64 << 20,
			ValueThresholdBytes: storage.DefaultValueThresholdBytes, Compression: "none"},
		Control: control.DefaultConfig(),
	}
}

// ConfigError is a configuration error that names the bad key. Commands exit with code 2.
type ConfigError struct {
	Key string // e.g. "smpp[0].window"; "" when no key applies
	Err error
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return "config: " + e.Err.Error()
	}
	return "config: " + e.Key + ": " + e.Err.Error()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Validate checks every section and names the first bad key with its full path.
func (c *Config) Validate() error {
	bad := func(key string, err error) error {
		// Sections report "sub.key: message"; split it so Key is the full path.
		msg := err.Error()
		if i := strings.Index(msg, ": "); i > 0 && !strings.Contains(msg[:i], " ") {
			return &ConfigError{Key: key + "." + msg[:i], Err: errors.New(msg[i+2:])}
		}
		return &ConfigError{Key: key, Err: err}
	}
	if c.NodeID == "" {
		return &ConfigError{Key: "node_id", Err: errors.New("must not be empty")}
	}
	if c.DataDir == "" {
		return &ConfigError{Key: "data_dir", Err: errors.New("must not be empty")}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return &ConfigError{Key: "log.level", Err: fmt.Errorf("must be debug, info, warn or error, got %q", c.Log.Level)}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return &ConfigError{Key: "log.format", Err: fmt.Errorf("must be text or json, got %q", c.Log.Format)}
	}
	if err := c.Kafka.Validate(); err != nil {
		return bad("kafka", err)
	}
	names := map[string]bool{}
	for i, s := range c.SMPP {
		if err := s.Validate(); err != nil {
			return bad(fmt.Sprintf("smpp[%d]", i), err)
		}
		if names[s.Name] {
			return &ConfigError{Key: fmt.Sprintf("smpp[%d].name", i), Err: fmt.Errorf("duplicate connection name %q", s.Name)}
		}
		names[s.Name] = true
	}
	for i, s := range c.SIP {
		if err := s.Validate(); err != nil {
			return bad(fmt.Sprintf("sip[%d]", i), err)
		}
		if names[s.Name] {
			return &ConfigError{Key: fmt.Sprintf("sip[%d].name", i), Err: fmt.Errorf("duplicate connection name %q", s.Name)}
		}
		names[s.Name] = true
	}
	pools := map[string]bool{}
	for i, p := range c.Pools {
		if err := p.Validate(); err != nil {
			return bad(fmt.Sprintf("pools[%d]", i), err)
		}
		if pools[p.Name] {
			return &ConfigError{Key: fmt.Sprintf("pools[%d].name", i), Err: fmt.Errorf("duplicate pool name %q", p.Name)}
		}
		pools[p.Name] = true
	}
	if err := c.Limits.Validate(); err != nil {
		return bad("limits", err)
	}
	if c.QuietHours.Enabled {
		if err := c.QuietHours.Validate(); err != nil {
			return bad("quiet_hours", err)
		}
	}
	if err := c.Dispatch.Validate(); err != nil {
		return bad("dispatch", err)
	}
	if c.Procs < 0 || c.Procs > 4096 {
		return &ConfigError{Key: "procs", Err: fmt.Errorf("must be 0..4096, got %d", c.Procs)}
	}
	if c.Storage.GCInterval <= 0 {
		return &ConfigError{Key: "storage.gc_interval", Err: fmt.Errorf("must be > 0, got %v", c.Storage.GCInterval)}
	}
	if c.Storage.BlockCacheBytes < 0 || c.Storage.MemTableBytes < 1<<20 {
		return &ConfigError{Key: "storage.memtable_bytes", Err: fmt.Errorf("must be >= 1048576, got %d", c.Storage.MemTableBytes)}
	}
	if v := c.Storage.ValueThresholdBytes; v < 1 || v > storage.MaxValueThresholdBytes {
		return &ConfigError{Key: "storage.value_threshold_bytes", Err: fmt.Errorf("must be 1..%d, got %d", storage.MaxValueThresholdBytes, v)}
	}
	if err := storage.CheckCompression(c.Storage.Compression); err != nil {
		return &ConfigError{Key: "storage.compression", Err: err}
	}
	if err := c.Control.Validate(); err != nil {
		return bad("control", err)
	}
	return nil
}

// LoadConfig builds the configuration: defaults, then the YAML file (if path is not
// empty), then SENDCORE_* variables from environ, then sets ("key.path=value", from
// flags). Unknown keys and wrong types are errors naming the key. The result is validated.
func LoadConfig(path string, environ []string, sets []string) (Config, error) {
	cfg := DefaultConfig()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, &ConfigError{Err: err}
		}
		if err := decodeYAML(data, &cfg); err != nil {
			return cfg, err
		}
	}
	applyListDefaults(&cfg)
	if err := applyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	for _, s := range sets {
		if err := cfg.Set(s); err != nil {
			return cfg, err
		}
	}
	applyListDefaults(&cfg)
	return cfg, cfg.Validate()
}

// Set applies one "key.path=value" assignment (yaml names, list indexes, map keys), as
// the --set flag does. Unknown keys and wrong types are errors naming the key; the value
// is not validated (Validate does that).
func (c *Config) Set(assignment string) error {
	k, v, ok := strings.Cut(assignment, "=")
	if !ok {
		return &ConfigError{Key: assignment, Err: errors.New("--set needs key=value")}
	}
	return setPath(reflect.ValueOf(c).Elem(), strings.Split(k, "."), k, v)
}

// decodeListsOverDefaults decodes each smpp and sip entry again, starting from its
// package defaults: yaml starts list entries from zero values, and an explicit 0 in the
// file must stay 0 (and fail validation) rather than become the default. The strict pass
// before this one has already refused unknown keys and wrong types.
func decodeListsOverDefaults(root *yaml.Node, cfg *Config) error {
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	top := root.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, list := top.Content[i].Value, top.Content[i+1]
		if list.Kind != yaml.SequenceNode {
			continue
		}
		for j, item := range list.Content {
			var err error
			switch key {
			case "smpp":
				c := smpp.DefaultConfig()
				err = item.Decode(&c)
				cfg.SMPP[j] = c
			case "sip":
				c := sip.DefaultConfig()
				err = item.Decode(&c)
				cfg.SIP[j] = c
			}
			if err != nil {
				return &ConfigError{Key: fmt.Sprintf("%s[%d]", key, j), Err: err}
			}
		}
	}
	return nil
}

// applyListDefaults fills what yaml leaves nil. Pool entries need nothing here: their
// zero values are their defaults (tenant "default", weight 1, on_exhausted fail), decided
// by rotation and dispatch.Pools.
func applyListDefaults(cfg *Config) {
	if cfg.Limits.Tenants == nil {
		cfg.Limits.Tenants = map[string]float64{}
	}
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// decodeYAML decodes strictly and rewrites yaml's "line N: ..." messages to name the key.
func decodeYAML(data []byte, cfg *Config) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return &ConfigError{Err: err}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(cfg)
	if err == nil {
		return decodeListsOverDefaults(&root, cfg)
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		m := yamlLine.FindStringSubmatch(te.Errors[0])
		if m != nil {
			line, _ := strconv.Atoi(m[1])
			key := keyAtLine(&root, line, "", matcherFor(m[2]))
			return &ConfigError{Key: key, Err: fmt.Errorf("line %d: %s", line, m[2])}
		}
	}
	return &ConfigError{Err: err}
}

// keyAtLine returns the dotted path of the node on line that match accepts (yaml errors
// name lines, operators want keys). match gets the key (nil for list items) and value.
func keyAtLine(n *yaml.Node, line int, path string, match func(k, v *yaml.Node) bool) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if k := keyAtLine(c, line, path, match); k != "" {
				return k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if k.Line == line && match(k, v) {
				return p
			}
			if sub := keyAtLine(v, line, p, match); sub != "" {
				return sub
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if c.Kind == yaml.ScalarNode && c.Line == line && match(nil, c) {
				return p
			}
			if sub := keyAtLine(c, line, p, match); sub != "" {
				return sub
			}
		}
	}
	return ""
}

var (
	yamlUnknown = regexp.MustCompile(`field (\S+) not found`)
	yamlValue   = regexp.MustCompile("`([^`]*)`")
)

// matcherFor returns a node matcher for a yaml error message: the unknown key it names,
// or the scalar value it quotes, or anything on the line.
func matcherFor(msg string) func(k, v *yaml.Node) bool {
	if m := yamlUnknown.FindStringSubmatch(msg); m != nil {
		return func(k, _ *yaml.Node) bool { return k != nil && k.Value == m[1] }
	}
	if m := yamlValue.FindStringSubmatch(msg); m != nil {
		return func(_, v *yaml.Node) bool { return v.Kind == yaml.ScalarNode && v.Value == m[1] }
	}
	return func(_, _ *yaml.Node) bool { return true }
}

// applyEnv applies SENDCORE_<PATH> variables: the yaml path upper-cased, dots and list
// indexes as underscores (SENDCORE_KAFKA_BROKERS, SENDCORE_SMPP_0_WINDOW). Lists of
// scalars are comma-separated. Variables that name no key are left alone, since other
// SENDCORE_ variables exist (the admin token).
func applyEnv(cfg *Config, environ []string) error {
	keys := map[string][]string{}
	collectKeys(reflect.ValueOf(cfg).Elem(), nil, keys)
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, "SENDCORE_") {
			continue
		}
		env := strings.TrimPrefix(name, "SENDCORE_")
		path, ok := keys[env]
		if !ok {
			// A new key of a map section: SENDCORE_LIMITS_TENANTS_<tenant>.
			for k, p := range keys {
				if strings.HasSuffix(k, "_*") && strings.HasPrefix(env, strings.TrimSuffix(k, "*")) {
					path, ok = append(p[:len(p):len(p)], strings.TrimPrefix(env, strings.TrimSuffix(k, "*"))), true
				}
			}
		}
		if !ok {
			continue
		}
		if err := setPath(reflect.ValueOf(cfg).Elem(), path, name, val); err != nil {
			return err
		}
	}
	return nil
}

// collectKeys maps every settable env name to its yaml path.
func collectKeys(v reflect.Value, path []string, out map[string][]string) {
	t := v.Type()
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeOf(time.Time{}) {
			break
		}
		for i := 0; i < t.NumField(); i++ {
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			collectKeys(v.Field(i), append(append([]string(nil), path...), tag), out)
		}
		return
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			for i := 0; i < v.Len(); i++ {
				collectKeys(v.Index(i), append(append([]string(nil), path...), strconv.Itoa(i)), out)
			}
			return
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			p := append(append([]string(nil), path...), k.String())
			out[strings.ToUpper(strings.Join(p, "_"))] = p
		}
		out[strings.ToUpper(strings.Join(path, "_"))+"_*"] = path
		return
	}
	out[strings.ToUpper(strings.Join(path, "_"))] = path
}

// setPath sets the field at path (yaml names, list indexes, map keys) from text.
func setPath(v reflect.Value, path []string, key, text string) error {
	for i, p := range path {
		switch v.Kind() {
		case reflect.Struct:
			f, ok := fieldByTag(v, p)
			if !ok {
				return &ConfigError{Key: key, Err: errors.New("unknown key")}
			}
			v = f
		case reflect.Slice:
			if v.Type().Elem().Kind() != reflect.Struct {
				return &ConfigError{Key: key, Err: errors.New("unknown key")}
			}
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 || n >= v.Len() {
				return &ConfigError{Key: key, Err: fmt.Errorf("no list entry %q", p)}
			}
			v = v.Index(n)
		case reflect.Map:
			if i != len(path)-1 {
				return &ConfigError{Key: key, Err: errors.New("unknown key")}
			}
			if v.IsNil() {
				v.Set(reflect.MakeMap(v.Type()))
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			if err := setScalar(elem, key, text); err != nil {
				return err
			}
			v.SetMapIndex(reflect.ValueOf(p), elem)
			return nil
		default:
			return &ConfigError{Key: key, Err: errors.New("unknown key")}
		}
	}
	return setScalar(v, key, text)
}

func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0] == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func setScalar(v reflect.Value, key, text string) error {
	bad := func(want string) error {
		return &ConfigError{Key: key, Err: fmt.Errorf("must be %s, got %q", want, text)}
	}
	if v.Type() == reflect.TypeOf(time.Duration(0)) {
		d, err := time.ParseDuration(text)
		if err != nil {
			return bad("a duration such as 10s")
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(text)
	case reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return bad("true or false")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return bad("an integer")
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return bad("a number")
		}
		v.SetFloat(f)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return &ConfigError{Key: key, Err: errors.New("cannot be set from text")}
		}
		var parts []string
		for _, s := range strings.Split(text, ",") {
			if s = strings.TrimSpace(s); s != "" {
				parts = append(parts, s)
			}
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return &ConfigError{Key: key, Err: errors.New("cannot be set from text")}
	}
	return nil
}
