package control

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/rotation"
)

const adminTok = "admin-token-for-tests-0123456789"

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a running server with every backend part faked.
type env struct {
	s        *Server
	url      string
	log      *syncBuffer
	opt      *memOptOuts
	hist     *fakeHistory
	pools    *fakePools
	limits   *fakeLimits
	queue    *fakeQueue
	settings *memSettings
	ready    atomic.Pointer[error] // what Backend.Ready returns; nil: ready
	readTok  string
	writeTok string
	client   *http.Client
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.ReadTimeout = 2 * time.Second
	cfg.WriteTimeout = 5 * time.Second
	cfg.ShutdownTimeout = 2 * time.Second
	cfg.MaxBodyBytes = 1 << 20
	cfg.MaxJSONBytes = 64 << 10
	return cfg
}

func fullBackend(e *env) Backend {
	e.opt = newMemOptOuts()
	e.hist = &fakeHistory{}
	e.pools = &fakePools{m: map[string]rotation.PoolConfig{}}
	e.limits = &fakeLimits{c: dispatch.LimitsConfig{GlobalTPS: 100, Tenants: map[string]float64{"default": 10}}}
	e.queue = &fakeQueue{}
	e.settings = newMemSettings()
	return Backend{
		OptOuts:       e.opt,
		ImportOptOuts: e.opt.importCSV,
		ExportOptOuts: e.opt.exportCSV,
		History:       e.hist,
		Tokens:        e.settings,
		Pools:         e.pools,
		Limits:        e.limits,
		Connections:   func() any { return map[string]any{"smpp": []map[string]any{{"name": "carrier-a", "bound": 2}}} },
		Ready: func() error {
			if p := e.ready.Load(); p != nil {
				return *p
			}
			return nil
		},
		ValidateRequest: validateChannel,
		Enqueue:         e.queue.enqueue,
		CancelCampaign:  cancelFake,
	}
}

// startEnv runs a server with a full fake backend (or b when given) and tokens of every
// scope; it stops the server at the end of the test and checks Run returned.
func startEnv(t *testing.T, mutate func(*Config), b *Backend) *env {
	t.Helper()
	e := &env{log: &syncBuffer{}}
	var backend Backend
	if b != nil {
		backend = *b
	} else {
		backend = fullBackend(e)
	}
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	backend.LookupEnv = func(k string) (string, bool) {
		if k == cfg.AdminTokenEnv {
			return adminTok, true
		}
		return "", false
	}
	s, err := New(cfg, backend, slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})), NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	e.url = "http://" + s.Addr().String()
	e.client = &http.Client{Timeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		e.client.CloseIdleConnections()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	if backend.Tokens != nil {
		e.readTok = e.createToken(t, "reader", "read")
		e.writeTok = e.createToken(t, "writer", "write")
	}
	return e
}

func (e *env) createToken(t *testing.T, name, scope string) string {
	t.Helper()
	st, _, body := e.do(t, "POST", "/v1/tokens", adminTok, "application/json", `{"name":"`+name+`","scope":"`+scope+`"}`)
	if st != 201 {
		t.Fatalf("create token: %d %s", st, body)
	}
	var r struct{ ID, Name, Scope, Token string }
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Token == "" || r.Scope != scope || r.Name != name || r.ID == "" {
		t.Fatalf("create token answer %s (%v)", body, err)
	}
	return r.Token
}

// do sends one request and returns status, headers and body.
func (e *env) do(t *testing.T, method, path, token, ctype, body string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// errorCode parses an error body and returns its code, failing the test if the body is
// not the contract's error shape.
func errorCode(t *testing.T, body string) string {
	t.Helper()
	var v struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Error.Code == "" || v.Error.Message == "" {
		t.Fatalf("not an error body: %q (%v)", body, err)
	}
	return v.Error.Code
}

type routeCase struct {
	name       string
	method     string
	path       string
	token      string // "admin", "write", "read", "" or a literal
	ctype      string
	body       string
	wantStatus int
	wantIn     string // substring of the body
}

func (e *env) tok(which string) string {
	switch which {
	case "admin":
		return adminTok
	case "write":
		return e.writeTok
	case "read":
		return e.readTok
	}
	return which
}

func runCases(t *testing.T, e *env, cases []routeCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, hdr, body := e.do(t, c.method, c.path, e.tok(c.token), c.ctype, c.body)
			if st != c.wantStatus {
				t.Fatalf("%s %s: status %d, want %d; body %s", c.method, c.path, st, c.wantStatus, body)
			}
			if c.wantIn != "" && !strings.Contains(body, c.wantIn) {
				t.Fatalf("%s %s: body %q does not contain %q", c.method, c.path, body, c.wantIn)
			}
			if st >= 400 {
				errorCode(t, body)
				if ct := hdr.Get("Content-Type"); ct != "application/json" {
					t.Fatalf("error Content-Type %q", ct)
				}
			}
			if st == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

const jsonCT = "application/json"

func TestHealthAndReadiness(t *testing.T) {
	e := startEnv(t, nil, nil)
	runCases(t, e, []routeCase{
		{"healthz", "GET", "/healthz", "", "", "", 200, `"ok"`},
		{"readyz ready", "GET", "/readyz", "", "", "", 200, `"ready"`},
		{"healthz POST is 405", "POST", "/healthz", "", "", "", 405, "method_not_allowed"},
		{"unknown route is 404", "GET", "/nope", "", "", "", 404, "not_found"},
		{"openapi", "GET", "/openapi.yaml", "", "", "", 200, "openapi: 3"},
	})
	var notReady error = errFake("kafka unreachable")
	e.ready.Store(&notReady)
	st, _, body := e.do(t, "GET", "/readyz", "", "", "")
	if st != 503 || errorCode(t, body) != "not_ready" || !strings.Contains(body, "kafka unreachable") {
		t.Fatalf("not ready: %d %s", st, body)
	}
}

type errFake string

func (e errFake) Error() string { return string(e) }

func TestMethodNotAllowedHasAllow(t *testing.T) {
	e := startEnv(t, nil, nil)
	st, hdr, _ := e.do(t, "POST", "/v1/limits", e.writeTok, jsonCT, "{}")
	if st != 405 || hdr.Get("Allow") != "GET, HEAD, OPTIONS, PATCH" {
		t.Fatalf("405 Allow %q status %d", hdr.Get("Allow"), st)
	}
	st, hdr, _ = e.do(t, "OPTIONS", "/v1/optouts/default/sms/+358401234567", "", "", "")
	if st != 204 || hdr.Get("Allow") != "DELETE, GET, HEAD, OPTIONS, PUT" {
		t.Fatalf("OPTIONS: %d Allow %q", st, hdr.Get("Allow"))
	}
	st, _, body := e.do(t, "HEAD", "/healthz", "", "", "")
	if st != 200 || body != "" {
		t.Fatalf("HEAD: %d %q", st, body)
	}
}

func TestOptOutRoutes(t *testing.T) {
	e := startEnv(t, nil, nil)
	const p = "/v1/optouts/default/sms/+358401234567"
	runCases(t, e, []routeCase{
		{"get absent", "GET", p, "read", "", "", 200, `"opted_out":false`},
		{"put without token", "PUT", p, "", "", "", 401, "unauthorized"},
		{"put bad token", "PUT", p, "sct_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", "", 401, "unauthorized"},
		{"put with read scope", "PUT", p, "read", "", "", 403, "forbidden"},
		{"put", "PUT", p, "write", "", "", 200, `"opted_out":true,"source":"api"`},
		{"put with source", "PUT", "/v1/optouts/acme/voice/+358401234568", "write", jsonCT, `{"source":"keyword"}`, 200, `"source":"keyword"`},
		{"put unknown body field", "PUT", p, "write", jsonCT, `{"sauce":"x"}`, 400, "sauce: unknown field"},
		{"put text/plain body", "PUT", p, "write", "text/plain", `source=x`, 415, "unsupported_media_type"},
		{"get present", "GET", p, "read", "", "", 200, `"opted_out":true,"source":"api","ts":"`},
		{"get via all", "GET", "/v1/optouts/default/voice/+358401234567", "read", "", "", 200, `"opted_out":false`},
		{"get normalises", "GET", "/v1/optouts/default/sms/+358401234567", "admin", "", "", 200, `"address":"+358401234567"`},
		{"get without token", "GET", p, "", "", "", 401, "missing bearer token"},
		{"get bad channel", "GET", "/v1/optouts/default/fax/+358401234567", "read", "", "", 400, "channel: must be sms, voice or all"},
		{"get bad address", "GET", "/v1/optouts/default/sms/12ab", "read", "", "", 400, "address:"},
		{"get long tenant", "GET", "/v1/optouts/" + strings.Repeat("t", 65) + "/sms/+358401234567", "read", "", "", 400, "tenant: must be 1..64 bytes"},
		{"delete with read scope", "DELETE", p, "read", "", "", 403, "forbidden"},
		{"delete", "DELETE", p, "write", "", "", 204, ""},
		{"get after delete", "GET", p, "read", "", "", 200, `"opted_out":false`},
	})
	// an opt-out of "all" covers sms
	e.do(t, "PUT", "/v1/optouts/default/all/+358401111111", e.writeTok, "", "")
	st, _, body := e.do(t, "GET", "/v1/optouts/default/sms/+358401111111", e.readTok, "", "")
	if st != 200 || !strings.Contains(body, `"opted_out":true`) {
		t.Fatalf("all covers sms: %d %s", st, body)
	}
}

func TestOptOutBackendErrorIs500WithoutDetail(t *testing.T) {
	e := startEnv(t, nil, nil)
	var fail error = errFake("badger: secret internal path /var/lib/x")
	e.opt.fail.Store(&fail)
	st, _, body := e.do(t, "GET", "/v1/optouts/default/sms/+358401234567", e.readTok, "", "")
	if st != 500 || errorCode(t, body) != "internal" || strings.Contains(body, "badger") {
		t.Fatalf("backend failure: %d %s", st, body)
	}
	if !strings.Contains(e.log.String(), "secret internal path") {
		t.Fatal("backend error not logged")
	}
}

func TestOptOutImportExport(t *testing.T) {
	e := startEnv(t, nil, nil)
	csvBody := "tenant,channel,address,source,ts\ndefault,all,+358401234567,x,\ndefault,all,bogus,x,\n"
	runCases(t, e, []routeCase{
		{"import without token", "POST", "/v1/optouts/import", "", "text/csv", csvBody, 401, ""},
		{"import read scope", "POST", "/v1/optouts/import", "read", "text/csv", csvBody, 403, ""},
		{"import json is 415", "POST", "/v1/optouts/import", "write", jsonCT, `{}`, 415, "text/csv"},
		{"import invalid utf8", "POST", "/v1/optouts/import", "write", "text/csv", "\xff\xfe,+358401234567\n", 400, "body: not valid UTF-8"},
		{"import", "POST", "/v1/optouts/import", "write", "text/csv; charset=utf-8", csvBody, 200, `"imported":1,"rejected":1,"errors":[{"line":3`},
		{"export without token", "GET", "/v1/optouts/export", "", "", "", 401, ""},
		{"export", "GET", "/v1/optouts/export", "read", "", "", 200, "tenant,channel,address,source,ts\ndefault,all,+358401234567,import,"},
	})
}

func TestPoolRoutes(t *testing.T) {
	e := startEnv(t, nil, nil)
	pool := `{"channel":"voice","strategy":"round_robin","numbers":[{"number":"+358401110001","weight":1}],"cooldown":"30s"}`
	runCases(t, e, []routeCase{
		{"list empty", "GET", "/v1/pools", "read", "", "", 200, `{"pools":[]}`},
		{"list without token", "GET", "/v1/pools", "", "", "", 401, ""},
		{"put read scope", "PUT", "/v1/pools/fi-voice", "read", jsonCT, pool, 403, ""},
		{"put", "PUT", "/v1/pools/fi-voice", "write", jsonCT, pool, 200, `"name":"fi-voice"`},
		{"put bad strategy", "PUT", "/v1/pools/fi-voice", "write", jsonCT, strings.Replace(pool, "round_robin", "random", 1), 400, "strategy: must be"},
		{"put bad number", "PUT", "/v1/pools/fi-voice", "write", jsonCT, strings.Replace(pool, "+358401110001", "+35x", 1), 400, "numbers[0].number"},
		{"put bad cooldown", "PUT", "/v1/pools/fi-voice", "write", jsonCT, strings.Replace(pool, "30s", "soon", 1), 400, "cooldown: must be a duration"},
		{"put wrong type", "PUT", "/v1/pools/fi-voice", "write", jsonCT, `{"numbers":"x"}`, 400, "numbers: must be an array"},
		{"put name mismatch", "PUT", "/v1/pools/fi-voice", "write", jsonCT, `{"name":"other"}`, 400, "name: must equal"},
		{"put no content type", "PUT", "/v1/pools/fi-voice", "write", "", pool, 415, ""},
		{"get", "GET", "/v1/pools/fi-voice", "read", "", "", 200, `"cooldown":30000000000`},
		{"put with health", "PUT", "/v1/pools/fi-voice", "write", jsonCT, strings.Replace(pool, `"cooldown"`, `"health":{"window":"30m","min_samples":5,"ratio":0.4,"rest":"2h"},"cooldown"`, 1), 200, `"min_samples":5`},
		{"get health", "GET", "/v1/pools/fi-voice", "read", "", "", 200, `"window":1800000000000,"min_samples":5,"ratio":0.4,"rest":7200000000000`},
		{"put bad health window", "PUT", "/v1/pools/fi-voice", "write", jsonCT, strings.Replace(pool, `"cooldown"`, `"health":{"window":"soon"},"cooldown"`, 1), 400, "health.window: must be a duration"},
		{"get missing", "GET", "/v1/pools/nope", "read", "", "", 404, "not_found"},
		{"list", "GET", "/v1/pools", "read", "", "", 200, `"name":"fi-voice"`},
		{"delete read scope", "DELETE", "/v1/pools/fi-voice", "read", "", "", 403, ""},
		{"delete", "DELETE", "/v1/pools/fi-voice", "write", "", "", 204, ""},
		{"delete again", "DELETE", "/v1/pools/fi-voice", "write", "", "", 404, ""},
	})
}

func TestLimitRoutes(t *testing.T) {
	e := startEnv(t, nil, nil)
	runCases(t, e, []routeCase{
		{"get", "GET", "/v1/limits", "read", "", "", 200, `"global_tps":100`},
		{"get without token", "GET", "/v1/limits", "", "", "", 401, ""},
		{"patch read scope", "PATCH", "/v1/limits", "read", jsonCT, `{"global_tps":5}`, 403, ""},
		{"patch", "PATCH", "/v1/limits", "write", jsonCT, `{"global_tps":5,"tenants":{"acme":2,"default":null},"recipient_max":3,"recipient_window":"1h"}`, 200, `"global_tps":5,"tenants":{"acme":2},"sender_tps":0,"recipient_max":3,"recipient_window":"1h0m0s"`},
		{"patch negative", "PATCH", "/v1/limits", "write", jsonCT, `{"global_tps":-1}`, 400, "global_tps: must be >= 0"},
		{"patch unknown field", "PATCH", "/v1/limits", "write", jsonCT, `{"globl_tps":1}`, 400, "globl_tps: unknown field"},
		{"patch wrong type", "PATCH", "/v1/limits", "write", jsonCT, `{"global_tps":"fast"}`, 400, "global_tps: must be a number"},
		{"patch bad window", "PATCH", "/v1/limits", "write", jsonCT, `{"recipient_window":"often"}`, 400, "recipient_window: must be a duration"},
		{"patch empty body", "PATCH", "/v1/limits", "write", jsonCT, ``, 400, "body: empty"},
		{"patch syntax", "PATCH", "/v1/limits", "write", jsonCT, `{"global_tps":`, 400, "body:"},
		{"patch trailing", "PATCH", "/v1/limits", "write", jsonCT, `{} {}`, 400, "trailing data"},
		{"patch latin1 charset", "PATCH", "/v1/limits", "write", "application/json; charset=latin1", `{}`, 415, "charset"},
	})
	if c := e.limits.Limits(); c.GlobalTPS != 5 || c.Tenants["acme"] != 2 || len(c.Tenants) != 1 || c.RecipientWindow != time.Hour {
		t.Fatalf("limits after patch: %+v", c)
	}
}

func TestConnectionsAndHistory(t *testing.T) {
	e := startEnv(t, nil, nil)
	runCases(t, e, []routeCase{
		{"connections", "GET", "/v1/connections", "read", "", "", 200, `"carrier-a"`},
		{"connections without token", "GET", "/v1/connections", "", "", "", 401, ""},
		{"history", "GET", "/v1/messages/req-1", "read", "", "", 200, `"status":"submitted"`},
		{"history unknown", "GET", "/v1/messages/req-2", "read", "", "", 404, "not_found"},
		{"history without token", "GET", "/v1/messages/req-1", "", "", "", 401, ""},
		{"history long id", "GET", "/v1/messages/" + strings.Repeat("x", 129), "read", "", "", 400, "id: must be 1..128 bytes"},
		{"history backend error", "GET", "/v1/messages/boom", "read", "", "", 500, "internal error"},
		{"history panic", "GET", "/v1/messages/panic", "read", "", "", 500, "internal error"},
	})
	if !strings.Contains(e.log.String(), "history exploded") {
		t.Fatal("panic not logged")
	}
}

func TestEnqueue(t *testing.T) {
	e := startEnv(t, nil, nil)
	one := `{"id":"a1","channel":"sms","to":"+358401234567","text":"hi"}`
	runCases(t, e, []routeCase{
		{"one", "POST", "/v1/messages", "write", jsonCT, one, 202, `{"ids":["a1"]}`},
		{"array", "POST", "/v1/messages", "write", jsonCT, `[` + one + `,{"id":"a2","channel":"voice","to":"+358401234567"}]`, 202, `{"ids":["a1","a2"]}`},
		{"read scope", "POST", "/v1/messages", "read", jsonCT, one, 403, ""},
		{"no token", "POST", "/v1/messages", "", jsonCT, one, 401, ""},
		{"missing id", "POST", "/v1/messages", "write", jsonCT, `{"channel":"sms"}`, 400, "id: required"},
		{"numeric id", "POST", "/v1/messages", "write", jsonCT, `{"id":7,"channel":"sms"}`, 400, "id: must be a string"},
		{"validator names field", "POST", "/v1/messages", "write", jsonCT, `[` + one + `,{"id":"b"}]`, 400, "[1].channel: required"},
		{"duplicate ids", "POST", "/v1/messages", "write", jsonCT, `[` + one + `,` + one + `]`, 400, "[1].id"},
		{"empty array", "POST", "/v1/messages", "write", jsonCT, `[]`, 400, "body: an array of 1..10000"},
		{"not an object", "POST", "/v1/messages", "write", jsonCT, `"x"`, 400, "request: must be a JSON object"},
		{"form body", "POST", "/v1/messages", "write", "application/x-www-form-urlencoded", "id=1", 415, ""},
		{"invalid utf8", "POST", "/v1/messages", "write", jsonCT, "{\"id\":\"\xff\"}", 400, "body: not valid UTF-8"},
	})
	e.queue.mu.Lock()
	defer e.queue.mu.Unlock()
	if len(e.queue.records) != 3 || string(e.queue.records[0]) != one {
		t.Fatalf("enqueued %d records: %q", len(e.queue.records), e.queue.records)
	}
}

func TestCancelCampaign(t *testing.T) {
	e := startEnv(t, nil, nil)
	runCases(t, e, []routeCase{
		{"cancel", "POST", "/v1/campaigns/spring/cancel?tenant=acme", "write", "", "", 200, `{"campaign":"spring","cancelled":3,"tenant":"acme"}`},
		{"default tenant", "POST", "/v1/campaigns/spring/cancel", "write", "", "", 200, `"tenant":"default"`},
		{"read scope", "POST", "/v1/campaigns/spring/cancel", "read", "", "", 403, ""},
		{"no token", "POST", "/v1/campaigns/spring/cancel", "", "", "", 401, ""},
		{"bad tenant", "POST", "/v1/campaigns/spring/cancel?tenant=", "write", "", "", 400, "tenant:"},
		{"unknown", "POST", "/v1/campaigns/unknown/cancel", "write", "", "", 404, "no campaign"},
	})
}

func TestTokens(t *testing.T) {
	e := startEnv(t, nil, nil)
	runCases(t, e, []routeCase{
		{"create write scope is 403", "POST", "/v1/tokens", "write", jsonCT, `{"name":"x","scope":"read"}`, 403, "needs admin"},
		{"create no token", "POST", "/v1/tokens", "", jsonCT, `{"name":"x","scope":"read"}`, 401, ""},
		{"create bad scope", "POST", "/v1/tokens", "admin", jsonCT, `{"name":"x","scope":"root"}`, 400, "scope: must be read, write or admin"},
		{"create no name", "POST", "/v1/tokens", "admin", jsonCT, `{"scope":"read"}`, 400, "name: must be 1..64"},
		{"create extra field", "POST", "/v1/tokens", "admin", jsonCT, `{"name":"x","scope":"read","admin":true}`, 400, "admin: unknown field"},
		{"list", "GET", "/v1/tokens", "admin", "", "", 200, `"name":"reader"`},
		{"list read scope", "GET", "/v1/tokens", "read", "", "", 403, ""},
		{"revoke bad id", "DELETE", "/v1/tokens/..", "admin", "", "", 404, ""},
		{"revoke malformed id", "DELETE", "/v1/tokens/XYZ", "admin", "", "", 400, "id: must be 16"},
		{"revoke unknown", "DELETE", "/v1/tokens/0123456789abcdef", "admin", "", "", 404, ""},
	})
	// A new token works at once, only a hash is stored, and revoking it stops it.
	tok := e.createToken(t, "temp", "write")
	if len(tok) < len("sct_")+16+1+22 {
		t.Fatalf("token too short for 128 bits: %q", tok)
	}
	e.settings.mu.Lock()
	for k, v := range e.settings.m {
		if strings.Contains(string(v), tok) || strings.Contains(string(v), tok[len(tok)-20:]) {
			t.Fatalf("settings %s hold the token text: %s", k, v)
		}
	}
	e.settings.mu.Unlock()
	if st, _, _ := e.do(t, "GET", "/v1/limits", tok, "", ""); st != 200 {
		t.Fatalf("new token: %d", st)
	}
	id := tok[4:20]
	if st, _, body := e.do(t, "DELETE", "/v1/tokens/"+id, adminTok, "", ""); st != 204 {
		t.Fatalf("revoke: %d %s", st, body)
	}
	if st, _, _ := e.do(t, "GET", "/v1/limits", tok, "", ""); st != 401 {
		t.Fatalf("revoked token: %d", st)
	}
	// tokens survive a restart: a second server on the same settings accepts the reader.
	s2, err := New(testConfig(), Backend{Tokens: e.settings, LookupEnv: func(string) (string, bool) { return "", false }}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := s2.tok.authenticate([]byte(e.readTok)); got != scopeRead {
		t.Fatalf("reloaded reader token has scope %v", got)
	}
	if got := s2.tok.authenticate([]byte(tok)); got != scopeNone {
		t.Fatalf("reloaded revoked token has scope %v", got)
	}
	// failures were logged without the token text
	logs := e.log.String()
	if !strings.Contains(logs, "authentication failed") {
		t.Fatal("auth failure not logged")
	}
	for _, secret := range []string{tok, e.writeTok, adminTok} {
		if strings.Contains(logs, secret) {
			t.Fatal("a token appears in the log")
		}
	}
}

func TestBootstrapAdminTokenTooShort(t *testing.T) {
	cfg := testConfig()
	_, err := New(cfg, Backend{LookupEnv: func(string) (string, bool) { return "short", true }}, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), cfg.AdminTokenEnv) {
		t.Fatalf("short admin token: %v", err)
	}
}

func TestBearerParsing(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer  abc ", "abc", true},
		{"BEARER abc", "abc", true},
		{"Basic abc", "", false},
		{"Bearer ", "", false},
		{"Bearer", "", false},
		{"", "", false},
	} {
		got, ok := bearer([]byte(c.in))
		if ok != c.ok || string(got) != c.want {
			t.Errorf("bearer(%q) = %q, %v", c.in, got, ok)
		}
	}
}

// TestNilBackendAnswers503 guarantees every route is registered even when no part is
// wired, and that such routes answer 503 in the error shape.
func TestNilBackendAnswers503(t *testing.T) {
	e := startEnv(t, nil, &Backend{})
	for _, c := range []struct{ method, path, ctype, body string }{
		{"GET", "/readyz", "", ""},
		{"GET", "/v1/optouts/default/sms/+358401234567", "", ""},
		{"PUT", "/v1/optouts/default/sms/+358401234567", "", ""},
		{"DELETE", "/v1/optouts/default/sms/+358401234567", "", ""},
		{"POST", "/v1/optouts/import", "text/csv", "a"},
		{"GET", "/v1/optouts/export", "", ""},
		{"GET", "/v1/pools", "", ""},
		{"GET", "/v1/pools/x", "", ""},
		{"PUT", "/v1/pools/x", jsonCT, "{}"},
		{"DELETE", "/v1/pools/x", "", ""},
		{"GET", "/v1/limits", "", ""},
		{"PATCH", "/v1/limits", jsonCT, "{}"},
		{"GET", "/v1/connections", "", ""},
		{"GET", "/v1/messages/x", "", ""},
		{"POST", "/v1/messages", jsonCT, `{"id":"x"}`},
		{"POST", "/v1/campaigns/x/cancel", "", ""},
		{"GET", "/v1/tokens", "", ""},
		{"POST", "/v1/tokens", jsonCT, `{"name":"x","scope":"read"}`},
		{"DELETE", "/v1/tokens/0123456789abcdef", "", ""},
	} {
		st, _, body := e.do(t, c.method, c.path, adminTok, c.ctype, c.body)
		if st != 503 || errorCode(t, body) != "unavailable" {
			t.Errorf("%s %s: %d %s", c.method, c.path, st, body)
		}
	}
}

func TestMetricsTokenAndPprofScope(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.MetricsToken = true }, nil)
	runCases(t, e, []routeCase{
		{"metrics without token", "GET", "/metrics", "", "", "", 401, ""},
		{"metrics read", "GET", "/metrics", "read", "", "", 200, "sendcore_control_requests_total"},
		{"pprof without token", "GET", "/debug/pprof/", "", "", "", 401, ""},
		{"pprof write scope", "GET", "/debug/pprof/", "write", "", "", 403, ""},
		{"pprof index", "GET", "/debug/pprof/", "admin", "", "", 200, "goroutine"},
		{"pprof goroutine", "GET", "/debug/pprof/goroutine?debug=1", "admin", "", "", 200, "goroutine profile"},
		{"pprof without slash", "GET", "/debug/pprof", "admin", "", "", 404, ""},
	})
}

func TestRunReturnsAfterCancelWithOpenConnections(t *testing.T) {
	cfg := testConfig()
	cfg.ShutdownTimeout = 200 * time.Millisecond
	s, err := New(cfg, Backend{LookupEnv: func(string) (string, bool) { return "", false }}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.Addr().String() + "/healthz") // leaves a keep-alive connection open
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if err := s.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}
