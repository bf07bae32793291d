package control

import (
	"context"
	"io"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/rotation"
)

// The parts behind the routes, declared here with exactly the methods the routes use. The
// gateway passes the real implementations (storage, dispatch, gateway/smpp, gateway/sip),
// adapting where a signature differs. Every method must be safe for concurrent use. A nil
// part makes its routes answer 503 {"error":{"code":"unavailable"}}; every route is always
// registered. Errors wrapping ErrInvalid answer 400, ErrNotFound 404, ErrConflict 409;
// any other error answers 500 and is logged.

// OptOutStore reads and writes single opt-outs (storage implements it; it is the method
// set of dispatch.OptOuts).
type OptOutStore interface {
	// OptedOut reports whether address may not receive on channel for tenant (an opt-out
	// of that channel or of "all").
	OptedOut(tenant string, channel dispatch.Channel, address string) (bool, error)
	// SetOptOut adds (o.OptedOut) or removes an opt-out; durable when it returns.
	SetOptOut(o dispatch.OptOut) error
}

// ImportResult is what a CSV import reports (contract §8).
type ImportResult struct {
	Imported int           `json:"imported"`
	Rejected int           `json:"rejected"`
	Errors   []ImportError `json:"errors,omitempty"` // bounded by the importer
}

// ImportError is one CSV row that could not be imported.
type ImportError struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// OptOutImporter streams a CSV (contract §8) into the opt-out store. The gateway adapts
// storage's ImportOptOutsCSV(r, storage.ImportOptions) to this shape, so that control
// does not import storage. r is valid only during the call.
type OptOutImporter func(r io.Reader) (ImportResult, error)

// OptOutExporter writes every opt-out as CSV with the header row
// tenant,channel,address,source,ts (contract §8). It must not keep w after returning.
type OptOutExporter func(w io.Writer) error

// HistoryReader reads request status histories (dispatch.Ledger implements it).
type HistoryReader interface {
	// History returns the status history of id, oldest first; nil and no error if unknown.
	History(id string) ([]dispatch.Event, error)
}

// SettingsStore keeps API tokens in namespace "tokens" (dispatch.Settings implements it).
// Only a SHA-256 hash of each token is stored.
type SettingsStore interface {
	PutSetting(namespace, key string, value []byte) error
	DeleteSetting(namespace, key string) error
	// ListSettings calls fn for every key of namespace in key order.
	ListSettings(namespace string, fn func(key string, value []byte) error) error
}

// PoolAdmin manages rotation pools live. Views are any JSON-marshalable value: the pool's
// configuration with per-number counters and health, as the pools registry reports them.
type PoolAdmin interface {
	// ListPools returns every pool's view (a slice or a map), in a stable order.
	ListPools() (any, error)
	// Pool returns one pool's view and whether it exists.
	Pool(name string) (any, bool, error)
	// PutPool creates or replaces a pool (already validated with PoolConfig.Validate).
	PutPool(c rotation.PoolConfig) error
	// DeletePool removes a pool; false when it did not exist.
	DeletePool(name string) (bool, error)
}

// LimitsAdmin reads and changes rates live (dispatch.Limiter, adapted by the gateway).
type LimitsAdmin interface {
	// Limits returns the configuration in force.
	Limits() dispatch.LimitsConfig
	// UpdateLimits replaces it (already validated); in force when it returns.
	UpdateLimits(c dispatch.LimitsConfig) error
}

// Backend gathers the parts behind the routes. Any field may be nil (see above).
type Backend struct {
	// LookupEnv reads the bootstrap admin token from the variable named by
	// Config.AdminTokenEnv, once, in New. nil means os.LookupEnv.
	LookupEnv func(key string) (string, bool)

	OptOuts       OptOutStore
	ImportOptOuts OptOutImporter
	ExportOptOuts OptOutExporter
	History       HistoryReader
	// Tokens persists API tokens; nil: only the bootstrap admin token works and the
	// /v1/tokens routes answer 503.
	Tokens SettingsStore
	Pools  PoolAdmin
	Limits LimitsAdmin

	// Connections returns JSON-marshalable stats of SMPP sessions and SIP trunks: state,
	// in-flight, rates, errors.
	Connections func() any
	// Ready returns nil when the gateway can serve: Kafka reachable, every connection has a
	// bound session; otherwise an error saying what is missing (shown in /readyz).
	Ready func() error

	// ValidateRequest checks one send-request (contract §2) as the pipeline would; a
	// returned error should name the field ("to: ..."). nil: only the checks of control
	// itself (a JSON object with a string id of 1..128 bytes).
	ValidateRequest func(record []byte) error
	// Enqueue produces records (each one validated JSON send-request, owned by the
	// callee) to the requests topic; durable (acknowledged by the broker) when it returns nil.
	Enqueue func(ctx context.Context, records [][]byte) error

	// CancelCampaign cancels what is scheduled and not yet sent of tenant's campaign and
	// returns how many requests it cancelled.
	CancelCampaign func(ctx context.Context, tenant, campaign string) (int, error)
}
