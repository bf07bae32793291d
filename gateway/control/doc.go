// Package control is the HTTP control plane (fasthttp): health, readiness, Prometheus
// metrics, pprof, this API's OpenAPI document, and the /v1 API of contract §6 with
// bearer-token scopes.
//
// Place in the pipeline: an adapter beside the others, gateway/control ──> dispatch
// (domain types), with every part behind a route reached through a small interface
// declared here (OptOutStore, HistoryReader, SettingsStore, PoolAdmin, LimitsAdmin) or a
// func field of Backend. The gateway wires storage, dispatch and the connections into a
// Backend, creates the metrics registry once with NewRegistry, and runs the Server under
// its errgroup:
//
//	reg := control.NewRegistry()              // passed to every package
//	srv, err := control.New(cfg.Control, control.Backend{OptOuts: db, ...}, log, reg)
//	grp.Go(func() error { return srv.Run(ctx) })
//
// Auth: "Authorization: Bearer <token>" on /v1 routes and pprof. Scopes read < write <
// admin: GET needs read, other methods write, tokens and /debug/pprof admin, POST
// /v1/segment read. The bootstrap admin token comes from the environment variable named by
// Config.AdminTokenEnv, read once in New. Tokens made with POST /v1/tokens look like
// "sct_<16 hex id>_<43 base64url chars>" (256 random bits); only their SHA-256 is stored,
// in Settings namespace "tokens", and they are cached in memory (reads are lock-free).
// Lookup is by the non-secret id and the hash comparison is constant-time.
//
// Errors are {"error":{"code","message"}}: 400 names the field, 401 carries
// WWW-Authenticate, 403 names the scope needed; 404, 405 (with Allow), 413, 415, 431;
// backend failures are 500 with the detail only in the log; a nil Backend part is 503
// "unavailable". A handler panic is recovered, logged with its stack, counted in
// sendcore_control_panics_total and answered 500.
//
// fasthttp reuses a RequestCtx and every slice taken from it once the handler returns:
// handlers copy what outlives the call (path parameters become strings, enqueued records
// are copied by the JSON decoder), and the export streams through a writer that never
// touches the ctx.
//
// Metrics of this package: sendcore_control_requests_total{route,method,code},
// sendcore_control_request_duration_seconds{route,method},
// sendcore_control_auth_failures_total{reason}, sendcore_control_requests_in_flight,
// sendcore_control_panics_total. Route labels are patterns, never raw paths; unknown
// methods count as "other", unknown paths as route "unmatched".
package control
