package control

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"github.com/valyala/fasthttp/pprofhandler"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/rotation"
)

//go:embed openapi.yaml
var openapiYAML []byte

// Bounds of path parameters and request contents.
const (
	maxNameLen      = 64  // tenant, pool, campaign tenant
	maxIDLen        = 128 // request id, campaign id (contract §2)
	maxEnqueueBatch = 10000
)

// routes registers every route. Scopes: GET read, other methods write; tokens and pprof
// admin; the segment calculator read (it changes nothing).
func (s *Server) routes() {
	// h registers a route. Every route is always registered (the OpenAPI test holds them
	// to the document); one whose backend part is nil answers 503 unavailable, decided
	// here once instead of in every handler.
	h := func(method, pattern string, sc scope, available bool, fn handlerFunc) {
		if !available {
			fn = func(ctx *fasthttp.RequestCtx, _ *params) { s.fail(ctx, errUnavailable) }
		} else if pattern != importRoute {
			fn = s.bodyInMemory(fn) // the import streams its body itself
		}
		s.rt.handle(method, pattern, sc, fn, s.m.forRoute(pattern, method))
	}
	b, tokens := &s.b, s.tok.store != nil
	get, put, post, patch, del := fasthttp.MethodGet, fasthttp.MethodPut, fasthttp.MethodPost, fasthttp.MethodPatch, fasthttp.MethodDelete

	h(get, "/healthz", scopeNone, true, s.healthz)
	h(get, "/readyz", scopeNone, b.Ready != nil, s.readyz)
	metricsScope := scopeNone
	if s.cfg.MetricsToken {
		metricsScope = scopeRead
	}
	h(get, "/metrics", metricsScope, true, s.metricsHandler())
	h(get, "/openapi.yaml", scopeNone, true, s.openapi)
	h(get, "/debug/pprof/*", scopeAdmin, true, func(ctx *fasthttp.RequestCtx, _ *params) { pprofhandler.PprofHandler(ctx) })

	h(post, importRoute, scopeWrite, b.ImportOptOuts != nil, s.importOptOuts)
	h(get, "/v1/optouts/export", scopeRead, b.ExportOptOuts != nil, s.exportOptOuts)
	h(get, "/v1/optouts/{tenant}/{channel}/{address}", scopeRead, b.OptOuts != nil, s.getOptOut)
	h(put, "/v1/optouts/{tenant}/{channel}/{address}", scopeWrite, b.OptOuts != nil, s.putOptOut)
	h(del, "/v1/optouts/{tenant}/{channel}/{address}", scopeWrite, b.OptOuts != nil, s.deleteOptOut)

	h(get, "/v1/pools", scopeRead, b.Pools != nil, s.listPools)
	h(get, "/v1/pools/{name}", scopeRead, b.Pools != nil, s.getPool)
	h(put, "/v1/pools/{name}", scopeWrite, b.Pools != nil, s.putPool)
	h(del, "/v1/pools/{name}", scopeWrite, b.Pools != nil, s.deletePool)

	h(get, "/v1/limits", scopeRead, b.Limits != nil, s.getLimits)
	h(patch, "/v1/limits", scopeWrite, b.Limits != nil, s.patchLimits)

	h(get, "/v1/connections", scopeRead, b.Connections != nil, s.connections)

	h(post, "/v1/messages", scopeWrite, b.Enqueue != nil, s.enqueue)
	h(get, "/v1/messages/{id}", scopeRead, b.History != nil, s.history)

	h(post, "/v1/segment", scopeRead, true, s.segment)

	h(post, "/v1/campaigns/{id}/cancel", scopeWrite, b.CancelCampaign != nil, s.cancelCampaign)

	h(get, "/v1/tokens", scopeAdmin, tokens, s.listTokens)
	h(post, "/v1/tokens", scopeAdmin, tokens, s.createToken)
	h(del, "/v1/tokens/{id}", scopeAdmin, tokens, s.revokeToken)

	for _, rt := range s.rt.routes {
		rt.other = s.m.forRoute(rt.pattern, "other")
	}
}

// Routes lists every registered "METHOD /pattern" (HEAD and OPTIONS are implied), sorted.
func (s *Server) Routes() []string { return s.rt.registered() }

// ---- responses and errors ----

// writeJSON answers status with v as JSON (no HTML escaping).
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, codeInternal, "internal error")
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(buf.Bytes())
}

var (
	errTooLarge    = errors.New("control: body too large")
	errMediaType   = errors.New("control: unsupported media type")
	errUnavailable = fmt.Errorf("%w: this part of the gateway is not running", ErrUnavailable)
)

// fail answers err with the fitting status. Messages of 500s go to the log only.
func (s *Server) fail(ctx *fasthttp.RequestCtx, err error) {
	var fe *fieldError
	switch {
	case errors.As(err, &fe):
		writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, safeText(fe.Error()))
	case errors.Is(err, errTooLarge):
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, codeTooLarge, strings.TrimPrefix(err.Error(), errTooLarge.Error()+": "))
	case errors.Is(err, errMediaType):
		writeError(ctx, fasthttp.StatusUnsupportedMediaType, codeUnsupportedMedia, strings.TrimPrefix(err.Error(), errMediaType.Error()+": "))
	case errors.Is(err, ErrInvalid):
		writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, safeText(strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")))
	case errors.Is(err, ErrNotFound):
		writeError(ctx, fasthttp.StatusNotFound, codeNotFound, safeText(strings.TrimPrefix(err.Error(), ErrNotFound.Error()+": ")))
	case errors.Is(err, ErrConflict):
		writeError(ctx, fasthttp.StatusConflict, codeConflict, safeText(strings.TrimPrefix(err.Error(), ErrConflict.Error()+": ")))
	case errors.Is(err, ErrUnavailable):
		writeError(ctx, fasthttp.StatusServiceUnavailable, codeUnavailable, safeText(strings.TrimPrefix(err.Error(), "control: ")))
	default:
		s.log.Error("control: backend error", "method", safeText(string(ctx.Method())), "path", safeText(string(ctx.Path())), "err", err)
		writeError(ctx, fasthttp.StatusInternalServerError, codeInternal, "internal error")
	}
}

// ---- request bodies ----

// checkMediaType requires the Content-Type to be one of types (parameters allowed; a
// charset parameter must be utf-8).
func checkMediaType(ctx *fasthttp.RequestCtx, types ...string) error {
	ct := ctx.Request.Header.ContentType()
	mt, rest, _ := bytes.Cut(ct, []byte(";"))
	mt = bytes.TrimSpace(mt)
	ok := false
	for _, t := range types {
		if bytes.EqualFold(mt, []byte(t)) {
			ok = true
			break
		}
	}
	if !ok {
		return fmt.Errorf("%w: Content-Type must be %s, got %q", errMediaType, strings.Join(types, " or "), safeText(string(ct)))
	}
	for _, p := range bytes.Split(rest, []byte(";")) {
		k, v, _ := bytes.Cut(bytes.TrimSpace(p), []byte("="))
		if bytes.EqualFold(k, []byte("charset")) {
			v = bytes.Trim(v, `"`)
			if !bytes.EqualFold(v, []byte("utf-8")) && !bytes.EqualFold(v, []byte("utf8")) {
				return fmt.Errorf("%w: charset must be utf-8, got %q", errMediaType, safeText(string(v)))
			}
		}
	}
	return nil
}

// jsonBody returns the request's JSON body after the media type, size and UTF-8 checks.
// The slice is valid until the handler returns.
func (s *Server) jsonBody(ctx *fasthttp.RequestCtx) ([]byte, error) {
	if err := checkMediaType(ctx, "application/json"); err != nil {
		return nil, err
	}
	body := ctx.PostBody()
	if len(body) > s.cfg.MaxJSONBytes {
		return nil, fmt.Errorf("%w: JSON body exceeds %d bytes", errTooLarge, s.cfg.MaxJSONBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badField("body", "empty; a JSON document is required")
	}
	if !utf8.Valid(body) {
		return nil, badField("body", "not valid UTF-8")
	}
	return body, nil
}

// decodeJSON decodes the JSON body into v, rejecting unknown fields and trailing data,
// with errors naming the field.
func (s *Server) decodeJSON(ctx *fasthttp.RequestCtx, v any) error {
	body, err := s.jsonBody(ctx)
	if err != nil {
		return err
	}
	return decodeStrict(body, v)
}

func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonFieldError(err)
	}
	if dec.More() {
		return badField("body", "trailing data after the JSON document")
	}
	return nil
}

func jsonFieldError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		f := te.Field
		if f == "" {
			f = "body"
		}
		return badField(f, "must be %s, got %s", jsonTypeName(te.Type.Kind().String()), te.Value)
	case errors.As(err, &se):
		return badField("body", "invalid JSON at offset %d: %v", se.Offset, se)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return badField("body", "truncated JSON")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, `json: unknown field "`); ok {
		return badField(strings.TrimSuffix(f, `"`), "unknown field")
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		return fe
	}
	return badField("body", "%s", strings.TrimPrefix(msg, "json: "))
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	}
	return "a number"
}

// ---- path parameters ----

// nameParam validates a tenant or pool name: 1..max bytes of UTF-8 without control
// characters, not "." or "..".
func nameParam(p *params, key string, max int) (string, error) {
	v := p.get(key)
	if len(v) == 0 || len(v) > max {
		return "", badField(key, "must be 1..%d bytes, got %d", max, len(v))
	}
	if !utf8.Valid(v) {
		return "", badField(key, "not valid UTF-8")
	}
	if string(v) == "." || string(v) == ".." {
		return "", badField(key, "must not be %q", v)
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f || c == '/' || c == '\\' {
			return "", badField(key, "contains a control character, slash or backslash")
		}
	}
	return string(v), nil
}

func channelParam(p *params) (dispatch.Channel, error) {
	switch v := p.get("channel"); string(v) {
	case dispatch.ChannelSMS:
		return dispatch.ChannelSMS, nil
	case dispatch.ChannelVoice:
		return dispatch.ChannelVoice, nil
	case dispatch.ChannelAll:
		return dispatch.ChannelAll, nil
	default:
		return "", badField("channel", "must be sms, voice or all, got %q", safeText(string(v)))
	}
}

func addressParam(p *params) (string, error) {
	v := p.get("address")
	if len(v) == 0 || len(v) > 32 || !utf8.Valid(v) {
		return "", badField("address", "must be a phone number of at most 32 bytes")
	}
	a, err := dispatch.NormalizeE164(string(v), "")
	if err != nil {
		return "", badField("address", "must be an E.164 number (+ and digits), got %q", safeText(string(v)))
	}
	return a, nil
}

// ---- health ----

func (s *Server) healthz(ctx *fasthttp.RequestCtx, _ *params) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"status":"ok"}` + "\n")
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx, _ *params) {
	if err := s.b.Ready(); err != nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "not_ready", safeText(err.Error()))
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"status":"ready"}` + "\n")
}

func (s *Server) metricsHandler() handlerFunc {
	h := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:            slogPrinter{s},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	return func(ctx *fasthttp.RequestCtx, _ *params) { h(ctx) }
}

type slogPrinter struct{ s *Server }

func (p slogPrinter) Println(v ...any) { p.s.log.Warn("control: metrics: " + fmt.Sprint(v...)) }

func (s *Server) openapi(ctx *fasthttp.RequestCtx, _ *params) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/yaml")
	ctx.SetBody(openapiYAML)
}

// ---- opt-outs ----

type optOutView struct {
	Tenant   string     `json:"tenant"`
	Channel  string     `json:"channel"`
	Address  string     `json:"address"`
	OptedOut bool       `json:"opted_out"`
	Source   string     `json:"source,omitempty"`
	TS       *time.Time `json:"ts,omitempty"`
}

func optOutParams(p *params) (tenant, channel, address string, err error) {
	if tenant, err = nameParam(p, "tenant", maxNameLen); err != nil {
		return
	}
	if channel, err = channelParam(p); err != nil {
		return
	}
	address, err = addressParam(p)
	return
}

// optOutGetter is optionally implemented by the OptOutStore: the exact record, so GET can
// show its source and time.
type optOutGetter interface {
	GetOptOut(tenant string, channel dispatch.Channel, address string) (dispatch.OptOut, bool, error)
}

// getOptOut answers like `sendcore optout check`: opted_out is true when address is opted
// out of channel or of "all"; source and ts come from the record that opts it out. Misses
// (the common case) cost one OptedOut call.
func (s *Server) getOptOut(ctx *fasthttp.RequestCtx, p *params) {
	tenant, channel, address, err := optOutParams(p)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	v := optOutView{Tenant: tenant, Channel: channel, Address: address}
	if v.OptedOut, err = s.b.OptOuts.OptedOut(tenant, channel, address); err != nil {
		s.fail(ctx, err)
		return
	}
	if g, ok := s.b.OptOuts.(optOutGetter); ok && v.OptedOut {
		// the record that opts out: of this channel, else of "all"
		for _, c := range [2]string{channel, dispatch.ChannelAll} {
			o, found, err := g.GetOptOut(tenant, c, address)
			if err != nil {
				s.fail(ctx, err)
				return
			}
			if found && o.OptedOut {
				v.Source = o.Source
				ts := o.TS.UTC()
				v.TS = &ts
				break
			}
		}
	}
	writeOptOut(ctx, fasthttp.StatusOK, &v)
}

// writeOptOut renders v without reflection: it is the hot route.
func writeOptOut(ctx *fasthttp.RequestCtx, status int, v *optOutView) {
	var buf [256]byte
	b := append(buf[:0], `{"tenant":`...)
	b = appendJSONString(b, v.Tenant)
	b = append(b, `,"channel":`...)
	b = appendJSONString(b, v.Channel)
	b = append(b, `,"address":`...)
	b = appendJSONString(b, v.Address)
	if v.OptedOut {
		b = append(b, `,"opted_out":true`...)
	} else {
		b = append(b, `,"opted_out":false`...)
	}
	if v.Source != "" {
		b = append(b, `,"source":`...)
		b = appendJSONString(b, v.Source)
	}
	if v.TS != nil {
		b = append(b, `,"ts":"`...)
		b = v.TS.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = append(b, "}\n"...)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// appendJSONString appends s as a JSON string; s must be valid UTF-8.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c == 0x7f:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// putOptOutBody is the optional body of PUT.
type putOptOutBody struct {
	Source string `json:"source"`
}

func (s *Server) putOptOut(ctx *fasthttp.RequestCtx, p *params) {
	s.setOptOut(ctx, p, true)
}

func (s *Server) deleteOptOut(ctx *fasthttp.RequestCtx, p *params) {
	s.setOptOut(ctx, p, false)
}

func (s *Server) setOptOut(ctx *fasthttp.RequestCtx, p *params, optedOut bool) {
	tenant, channel, address, err := optOutParams(p)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	body := putOptOutBody{Source: "api"}
	if optedOut && len(ctx.PostBody()) > 0 {
		if err := s.decodeJSON(ctx, &body); err != nil {
			s.fail(ctx, err)
			return
		}
		if body.Source == "" || len(body.Source) > maxNameLen {
			s.fail(ctx, badField("source", "must be 1..%d bytes", maxNameLen))
			return
		}
	}
	o := dispatch.OptOut{Tenant: tenant, Channel: channel, Address: address, OptedOut: optedOut, Source: body.Source, TS: time.Now().UTC()}
	if err := s.b.OptOuts.SetOptOut(o); err != nil {
		s.fail(ctx, err)
		return
	}
	if !optedOut {
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	writeOptOut(ctx, fasthttp.StatusOK, &optOutView{Tenant: tenant, Channel: channel, Address: address, OptedOut: true, Source: o.Source, TS: &o.TS})
}

// importRoute streams its body (Server.StreamRequestBody): a CSV of millions of rows is
// imported as it arrives, never held in memory.
const importRoute = "/v1/optouts/import"

// importOptOuts streams the request body into the importer. A Content-Length over
// max_body_bytes is refused (413) before anything is read. A chunked body that turns out
// larger, or bytes that are not UTF-8, stop the import where they are found: the answer
// is then the 413 or 400 error, and the rows before that point may have been imported
// (importing them again is harmless: an opt-out is set, not added twice). Each read of the
// body must make progress within read_timeout; the whole import may take longer.
func (s *Server) importOptOuts(ctx *fasthttp.RequestCtx, _ *params) {
	if err := checkMediaType(ctx, "text/csv", "text/plain"); err != nil {
		s.fail(ctx, err)
		return
	}
	if cl := ctx.Request.Header.ContentLength(); cl > s.cfg.MaxBodyBytes {
		s.fail(ctx, fmt.Errorf("%w: body exceeds %d bytes", errTooLarge, s.cfg.MaxBodyBytes))
		return
	}
	in := &importBody{r: ctx.RequestBodyStream(), max: s.cfg.MaxBodyBytes}
	if in.r == nil { // not streamed: a body fasthttp already holds (or none)
		in.r = bytes.NewReader(ctx.Request.Body())
	} else if s.cfg.ReadTimeout > 0 {
		in.deadline = func() { _ = ctx.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout)) }
	}
	res, err := s.b.ImportOptOuts(in)
	if in.err != nil { // the importer saw it as a read error, or stopped at it
		s.fail(ctx, in.err)
		return
	}
	if err != nil {
		s.fail(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, res)
}

// importBody is the import's view of the request body: it counts the bytes against
// max_body_bytes, checks that they are UTF-8 (across reads), and extends the connection's
// read deadline before each read. Its first failure is kept in err and returned once;
// later reads return io.EOF, so that any importer stops.
type importBody struct {
	r        io.Reader
	max      int
	n        int
	deadline func()
	tail     [utf8.UTFMax]byte // a rune begun at the end of the previous read
	nt       int
	err      error
}

func (b *importBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, io.EOF
	}
	if b.deadline != nil {
		b.deadline()
	}
	n, err := b.r.Read(p)
	b.n += n
	switch {
	case b.n > b.max:
		return b.fail(fmt.Errorf("%w: body exceeds %d bytes", errTooLarge, b.max))
	case !b.valid(p[:n]) || (err == io.EOF && b.nt > 0):
		return b.fail(badField("body", "not valid UTF-8"))
	case err != nil && err != io.EOF:
		return b.fail(badField("body", "could not be read: %v", err))
	}
	return n, err
}

func (b *importBody) fail(err error) (int, error) {
	b.err = err
	return 0, err
}

// valid reports whether c, after what the previous reads left pending, is UTF-8 so far;
// a rune cut at the end of c is kept for the next read.
func (b *importBody) valid(c []byte) bool {
	for b.nt > 0 && len(c) > 0 {
		b.tail[b.nt] = c[0]
		b.nt++
		c = c[1:]
		if utf8.FullRune(b.tail[:b.nt]) {
			if r, size := utf8.DecodeRune(b.tail[:b.nt]); r == utf8.RuneError && size <= 1 {
				return false
			}
			b.nt = 0
		}
	}
	if len(c) == 0 {
		return true
	}
	i := len(c) - 1
	for i > 0 && len(c)-i < utf8.UTFMax && !utf8.RuneStart(c[i]) {
		i--
	}
	if !utf8.FullRune(c[i:]) {
		b.nt = copy(b.tail[:], c[i:])
		c = c[:i]
	}
	return utf8.Valid(c)
}

// headerReceived (fasthttp's Server.HeaderReceived) has fasthttp read only one byte
// ahead of the handler, instead of up to 8 KiB, when the announced body is over
// max_body_bytes: the 413 is then answered without waiting for body bytes that the client
// may hold back until it sees an answer.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if h.ContentLength() > s.cfg.MaxBodyBytes {
		return fasthttp.RequestConfig{MaxRequestBodySize: 1}
	}
	return fasthttp.RequestConfig{}
}

// bodyInMemory reads a streamed request body into memory before fn, for every route
// but the import. With StreamRequestBody fasthttp hands bodies over as streams and no
// longer enforces max_body_bytes itself (PostBody would read any length): this keeps that
// bound, with the same 413.
func (s *Server) bodyInMemory(fn handlerFunc) handlerFunc {
	return func(ctx *fasthttp.RequestCtx, p *params) {
		if st := ctx.RequestBodyStream(); st != nil && ctx.Request.Header.ContentLength() != 0 {
			if ctx.Request.Header.ContentLength() > s.cfg.MaxBodyBytes {
				s.fail(ctx, fmt.Errorf("%w: body exceeds %d bytes", errTooLarge, s.cfg.MaxBodyBytes))
				return
			}
			var buf bytes.Buffer
			n, err := buf.ReadFrom(io.LimitReader(st, int64(s.cfg.MaxBodyBytes)+1))
			if err != nil {
				s.fail(ctx, badField("body", "could not be read: %v", err))
				return
			}
			if n > int64(s.cfg.MaxBodyBytes) {
				s.fail(ctx, fmt.Errorf("%w: body exceeds %d bytes", errTooLarge, s.cfg.MaxBodyBytes))
				return
			}
			ctx.Request.SetBody(buf.Bytes())
		}
		fn(ctx, p)
	}
}

func (s *Server) exportOptOuts(ctx *fasthttp.RequestCtx, _ *params) {
	export := s.b.ExportOptOuts
	log := s.log
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/csv; charset=utf-8")
	ctx.Response.Header.Set("Content-Disposition", `attachment; filename="optouts.csv"`)
	// Streams after the handler returns: the writer must not touch ctx.
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		if err := export(w); err != nil {
			log.Error("control: opt-out export failed mid-stream", "err", err)
			return
		}
		_ = w.Flush()
	})
}

// ---- pools ----

// poolBody is rotation.PoolConfig as JSON, with cooldown as a duration string ("30s") or
// nanoseconds.
type poolBody struct {
	Name        string                  `json:"name"`
	Tenant      string                  `json:"tenant"`
	Channel     string                  `json:"channel"`
	Strategy    string                  `json:"strategy"`
	Numbers     []rotation.NumberConfig `json:"numbers"`
	Cooldown    json.RawMessage         `json:"cooldown"`
	OnExhausted string                  `json:"on_exhausted"`
	Health      healthBody              `json:"health"`
}

// healthBody is rotation.HealthConfig with durations written as "30m" or nanoseconds.
type healthBody struct {
	Off              bool            `json:"off"`
	Window           json.RawMessage `json:"window"`
	MinSamples       int             `json:"min_samples"`
	Ratio            float64         `json:"ratio"`
	Rest             json.RawMessage `json:"rest"`
	ProbationShare   float64         `json:"probation_share"`
	ProbationSamples int             `json:"probation_samples"`
}

// durationField reads a duration written as "30s" or as nanoseconds; absent is 0. The
// error names field.
func durationField(field string, raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var d jsonDuration
	if err := d.UnmarshalJSON(raw); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			fe.Field = field
			return 0, fe
		}
		return 0, &fieldError{Field: field, Msg: err.Error()}
	}
	return time.Duration(d), nil
}

// jsonDuration accepts "1m30s" or a number of nanoseconds.
type jsonDuration time.Duration

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return &fieldError{Field: "duration", Msg: fmt.Sprintf("must be a duration such as \"30s\", got %q", s)}
		}
		*d = jsonDuration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return &fieldError{Field: "duration", Msg: "must be a duration string or integer nanoseconds"}
	}
	*d = jsonDuration(n)
	return nil
}

func (s *Server) listPools(ctx *fasthttp.RequestCtx, _ *params) {
	v, err := s.b.Pools.ListPools()
	if err != nil {
		s.fail(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"pools": v})
}

func (s *Server) getPool(ctx *fasthttp.RequestCtx, p *params) {
	name, err := nameParam(p, "name", maxNameLen)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	v, ok, err := s.b.Pools.Pool(name)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	if !ok {
		writeError(ctx, fasthttp.StatusNotFound, codeNotFound, "no pool "+safeText(name))
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, v)
}

func (s *Server) putPool(ctx *fasthttp.RequestCtx, p *params) {
	name, err := nameParam(p, "name", maxNameLen)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	var body poolBody
	if err := s.decodeJSON(ctx, &body); err != nil {
		s.fail(ctx, err)
		return
	}
	var durs [3]time.Duration
	for i, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"cooldown", body.Cooldown}, {"health.window", body.Health.Window}, {"health.rest", body.Health.Rest}} {
		d, err := durationField(f.name, f.raw)
		if err != nil {
			s.fail(ctx, err)
			return
		}
		durs[i] = d
	}
	if body.Name == "" {
		body.Name = name
	}
	if body.Name != name {
		s.fail(ctx, badField("name", "must equal the path's pool name %q, got %q", name, safeText(body.Name)))
		return
	}
	if body.Tenant == "" {
		body.Tenant = "default"
	}
	c := rotation.PoolConfig{Name: body.Name, Tenant: body.Tenant, Channel: body.Channel, Strategy: body.Strategy,
		Numbers: body.Numbers, Cooldown: durs[0], OnExhausted: body.OnExhausted,
		Health: rotation.HealthConfig{Off: body.Health.Off, Window: durs[1],
			MinSamples: body.Health.MinSamples, Ratio: body.Health.Ratio, Rest: durs[2],
			ProbationShare: body.Health.ProbationShare, ProbationSamples: body.Health.ProbationSamples}}
	if err := c.Validate(); err != nil {
		s.fail(ctx, &fieldError{Field: "pool", Msg: err.Error()})
		return
	}
	if err := s.b.Pools.PutPool(c); err != nil {
		s.fail(ctx, err)
		return
	}
	v, ok, err := s.b.Pools.Pool(name)
	if err != nil || !ok {
		writeJSON(ctx, fasthttp.StatusOK, c)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, v)
}

func (s *Server) deletePool(ctx *fasthttp.RequestCtx, p *params) {
	name, err := nameParam(p, "name", maxNameLen)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	ok, err := s.b.Pools.DeletePool(name)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	if !ok {
		writeError(ctx, fasthttp.StatusNotFound, codeNotFound, "no pool "+safeText(name))
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// ---- limits ----

// limitsView is dispatch.LimitsConfig as the API shows it: recipient_window as a string.
type limitsView struct {
	GlobalTPS       float64            `json:"global_tps"`
	Tenants         map[string]float64 `json:"tenants"`
	SenderTPS       float64            `json:"sender_tps"`
	RecipientMax    int                `json:"recipient_max"`
	RecipientWindow string             `json:"recipient_window"`
}

func viewLimits(c dispatch.LimitsConfig) limitsView {
	t := c.Tenants
	if t == nil {
		t = map[string]float64{}
	}
	return limitsView{GlobalTPS: c.GlobalTPS, Tenants: t, SenderTPS: c.SenderTPS, RecipientMax: c.RecipientMax, RecipientWindow: c.RecipientWindow.String()}
}

// limitsPatch is a JSON merge patch of the limits: absent fields keep their value; a
// tenant set to null is removed.
type limitsPatch struct {
	GlobalTPS       *float64            `json:"global_tps"`
	Tenants         map[string]*float64 `json:"tenants"`
	SenderTPS       *float64            `json:"sender_tps"`
	RecipientMax    *int                `json:"recipient_max"`
	RecipientWindow *jsonDuration       `json:"recipient_window"`
}

func (s *Server) getLimits(ctx *fasthttp.RequestCtx, _ *params) {
	writeJSON(ctx, fasthttp.StatusOK, viewLimits(s.b.Limits.Limits()))
}

func (s *Server) patchLimits(ctx *fasthttp.RequestCtx, _ *params) {
	var patch limitsPatch
	if err := s.decodeJSON(ctx, &patch); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) && fe.Field == "duration" {
			fe.Field = "recipient_window"
		}
		s.fail(ctx, err)
		return
	}
	c := s.b.Limits.Limits()
	tenants := make(map[string]float64, len(c.Tenants)+len(patch.Tenants))
	for k, v := range c.Tenants {
		tenants[k] = v
	}
	for k, v := range patch.Tenants {
		if k == "" || len(k) > maxNameLen || !utf8.ValidString(k) {
			s.fail(ctx, badField("tenants", "tenant names must be 1..%d bytes of UTF-8", maxNameLen))
			return
		}
		if v == nil {
			delete(tenants, k)
		} else {
			tenants[k] = *v
		}
	}
	c.Tenants = tenants
	if patch.GlobalTPS != nil {
		c.GlobalTPS = *patch.GlobalTPS
	}
	if patch.SenderTPS != nil {
		c.SenderTPS = *patch.SenderTPS
	}
	if patch.RecipientMax != nil {
		c.RecipientMax = *patch.RecipientMax
	}
	if patch.RecipientWindow != nil {
		c.RecipientWindow = time.Duration(*patch.RecipientWindow)
	}
	if err := c.Validate(); err != nil {
		f, msg, ok := strings.Cut(err.Error(), ": ")
		if !ok {
			f, msg = "limits", err.Error()
		}
		s.fail(ctx, &fieldError{Field: f, Msg: msg})
		return
	}
	if err := s.b.Limits.UpdateLimits(c); err != nil {
		s.fail(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, viewLimits(s.b.Limits.Limits()))
}

// ---- connections, history ----

func (s *Server) connections(ctx *fasthttp.RequestCtx, _ *params) {
	writeJSON(ctx, fasthttp.StatusOK, s.b.Connections())
}

// idParam validates a request or campaign id: 1..128 bytes of UTF-8 without control
// characters, not "." or "..".
func idParam(p *params, key string) (string, error) {
	return nameParam(p, key, maxIDLen)
}

func (s *Server) history(ctx *fasthttp.RequestCtx, p *params) {
	id, err := idParam(p, "id")
	if err != nil {
		s.fail(ctx, err)
		return
	}
	evs, err := s.b.History.History(id)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	if len(evs) == 0 {
		writeError(ctx, fasthttp.StatusNotFound, codeNotFound, "no request with this id")
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"id": id, "events": evs})
}

// ---- enqueue ----

// enqueue takes one send-request object or an array of them, validates every one (a
// failure rejects the whole call, naming the element and field), hands them to the
// backend and answers 202 with their ids.
func (s *Server) enqueue(ctx *fasthttp.RequestCtx, _ *params) {
	body, err := s.jsonBody(ctx)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	trim := bytes.TrimSpace(body)
	var raws []json.RawMessage // Unmarshal copies: the records outlive ctx
	array := trim[0] == '['
	if array {
		if err := json.Unmarshal(trim, &raws); err != nil {
			s.fail(ctx, jsonFieldError(err))
			return
		}
		if len(raws) == 0 || len(raws) > maxEnqueueBatch {
			s.fail(ctx, badField("body", "an array of 1..%d requests, got %d", maxEnqueueBatch, len(raws)))
			return
		}
	} else {
		raws = []json.RawMessage{bytes.Clone(trim)}
	}
	records := make([][]byte, len(raws))
	ids := make([]string, len(raws))
	seen := make(map[string]int, len(raws))
	for i, r := range raws {
		prefix := ""
		if array {
			prefix = fmt.Sprintf("[%d].", i)
		}
		id, err := requestID(r)
		if err == nil && s.b.ValidateRequest != nil {
			err = s.b.ValidateRequest(r)
		}
		if err != nil {
			var fe *fieldError
			if errors.As(err, &fe) {
				err = &fieldError{Field: prefix + fe.Field, Msg: fe.Msg}
			} else {
				err = &fieldError{Field: strings.TrimSuffix(prefix, ".") + "request", Msg: err.Error()}
				if prefix == "" {
					err.(*fieldError).Field = "request"
				}
			}
			s.fail(ctx, err)
			return
		}
		if j, dup := seen[id]; dup {
			s.fail(ctx, badField(prefix+"id", "%q repeats element [%d]", safeText(id), j))
			return
		}
		seen[id] = i
		records[i], ids[i] = r, id
	}
	bctx, cancel := s.backendCtx()
	defer cancel()
	if err := s.b.Enqueue(bctx, records); err != nil {
		s.fail(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusAccepted, map[string]any{"ids": ids})
}

// requestID checks the part of a send-request control itself needs: a JSON object with a
// string id of 1..128 bytes.
func requestID(r []byte) (string, error) {
	r = bytes.TrimSpace(r)
	if len(r) == 0 || r[0] != '{' {
		return "", badField("request", "must be a JSON object")
	}
	var v struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(r, &v); err != nil {
		return "", jsonFieldError(err)
	}
	if len(v.ID) == 0 || string(v.ID) == "null" {
		return "", badField("id", "required")
	}
	var id string
	if err := json.Unmarshal(v.ID, &id); err != nil {
		return "", badField("id", "must be a string")
	}
	if id == "" || len(id) > maxIDLen {
		return "", badField("id", "must be 1..%d bytes, got %d", maxIDLen, len(id))
	}
	return id, nil
}

// ---- campaigns ----

func (s *Server) cancelCampaign(ctx *fasthttp.RequestCtx, p *params) {
	id, err := idParam(p, "id")
	if err != nil {
		s.fail(ctx, err)
		return
	}
	tenant := "default"
	if t := ctx.QueryArgs().Peek("tenant"); t != nil {
		var tp params
		tp.n, tp.keys[0], tp.vals[0] = 1, "tenant", t
		if tenant, err = nameParam(&tp, "tenant", maxNameLen); err != nil {
			s.fail(ctx, err)
			return
		}
	}
	bctx, cancel := s.backendCtx()
	defer cancel()
	n, err := s.b.CancelCampaign(bctx, tenant, id)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"tenant": tenant, "campaign": id, "cancelled": n})
}

// ---- tokens ----

type createTokenBody struct {
	Name  string `json:"name"`
	Scope string `json:"scope"`
}

func (s *Server) listTokens(ctx *fasthttp.RequestCtx, _ *params) {
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"tokens": s.tok.list()})
}

func (s *Server) createToken(ctx *fasthttp.RequestCtx, _ *params) {
	var body createTokenBody
	if err := s.decodeJSON(ctx, &body); err != nil {
		s.fail(ctx, err)
		return
	}
	if body.Name == "" || len(body.Name) > maxTokenName {
		s.fail(ctx, badField("name", "must be 1..%d bytes, got %d", maxTokenName, len(body.Name)))
		return
	}
	for _, r := range body.Name {
		if r < 0x20 || r == 0x7f {
			s.fail(ctx, badField("name", "contains a control character"))
			return
		}
	}
	sc, ok := parseScope(body.Scope)
	if !ok {
		s.fail(ctx, badField("scope", "must be read, write or admin, got %q", safeText(body.Scope)))
		return
	}
	r, tok, err := s.tok.create(body.Name, sc, time.Now())
	if err != nil {
		s.fail(ctx, err)
		return
	}
	s.log.Info("control: token created", "id", r.ID, "name", r.Name, "scope", r.Scope)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, fasthttp.StatusCreated, map[string]string{"id": r.ID, "name": r.Name, "scope": r.Scope, "token": tok})
}

func (s *Server) revokeToken(ctx *fasthttp.RequestCtx, p *params) {
	id := p.get("id")
	if len(id) != tokenIDLen || strings.Trim(string(id), "0123456789abcdef") != "" {
		s.fail(ctx, badField("id", "must be %d lowercase hex digits", tokenIDLen))
		return
	}
	ok, err := s.tok.revoke(string(id))
	if err != nil {
		s.fail(ctx, err)
		return
	}
	if !ok {
		writeError(ctx, fasthttp.StatusNotFound, codeNotFound, "no token with this id")
		return
	}
	s.log.Info("control: token revoked", "id", string(id))
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}
