package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Server is the control plane: one fasthttp server on its own listener. Create it with
// New, then Run it; it serves until the context is cancelled.
type Server struct {
	cfg  Config
	b    Backend
	log  *slog.Logger
	reg  *prometheus.Registry
	m    *metrics
	tok  *tokens
	rt   router
	srv  *fasthttp.Server
	ln   *trackListener
	ran  atomic.Bool
	base context.Context // Run's context: parent of backend calls' contexts

	unmatched *routeMetrics // 404s and unparsable requests
	parseErrs *routeMetrics
}

// New validates cfg, reads the bootstrap admin token (via b.LookupEnv of
// cfg.AdminTokenEnv), loads the API tokens from b.Tokens, registers the control plane's
// metrics on reg and opens the listener on cfg.Addr (so Addr is known at once; with
// "127.0.0.1:0" the system picks the port). reg nil means a fresh NewRegistry(). The caller
// must Run the server, or Close it, to release the listener. log nil means slog.Default().
func New(cfg Config, b Backend, log *slog.Logger, reg *prometheus.Registry) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if cfg.Addr == "" {
		return nil, fmt.Errorf("control: addr: empty (control plane disabled): do not build the server")
	}
	if log == nil {
		log = slog.Default()
	}
	if reg == nil {
		reg = NewRegistry()
	}
	lookup := b.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	admin, _ := lookup(cfg.AdminTokenEnv)
	tok, err := newTokens(admin, b.Tokens)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, cfg.AdminTokenEnv)
	}
	if !tok.hasAdmin {
		log.Warn("control: no bootstrap admin token; set the environment variable to manage tokens", "env", cfg.AdminTokenEnv)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("control: metrics: %w", err)
	}
	s := &Server{cfg: cfg, b: b, log: log, reg: reg, m: m, tok: tok, base: context.Background()}
	s.unmatched = m.forRoute("unmatched", "other")
	s.parseErrs = m.forRoute("unparsed", "other")
	s.routes()
	s.srv = &fasthttp.Server{
		Handler:                      s.serve,
		ErrorHandler:                 s.parseError,
		Name:                         "sendcore",
		ReadTimeout:                  cfg.ReadTimeout,
		WriteTimeout:                 cfg.WriteTimeout,
		IdleTimeout:                  cfg.IdleTimeout,
		MaxRequestBodySize:           cfg.MaxBodyBytes,
		ReadBufferSize:               cfg.MaxHeaderBytes,
		MaxConnsPerIP:                cfg.MaxConnsPerIP,
		Concurrency:                  cfg.MaxConns,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		NoDefaultContentType:         true,
		Logger:                       fasthttpLogger{log},

		// Bodies arrive as streams: the CSV import reads its body while importing
		// (millions of rows, never held in memory); every other route reads its body
		// into memory first, bounded by MaxBodyBytes (handlers.go bodyInMemory).
		StreamRequestBody: true,
		HeaderReceived:    s.headerReceived,
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("control: listen %s: %w", cfg.Addr, err)
	}
	s.ln = newTrackListener(ln)
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close releases the listener of a server that was never Run. Harmless after Run.
func (s *Server) Close() error {
	if s.ran.CompareAndSwap(false, true) {
		return s.ln.Close()
	}
	return nil
}

// Run serves until ctx is done, then stops accepting, lets requests in progress finish for
// cfg.ShutdownTimeout, closes the connections still open, and returns when every
// connection has been closed (handlers must return: backend calls get a context that is
// cancelled with ctx). It returns nil after a shutdown and an error if serving failed.
// Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("control: Run called twice or after Close")
	}
	s.base = ctx // written before Serve starts the handlers' goroutines
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.log.Info("control plane listening", "addr", s.Addr().String())
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		if err := s.srv.ShutdownWithContext(sctx); err != nil {
			s.log.Warn("control: shutdown grace expired; closing connections", "err", err)
		}
		cancel()
		s.ln.closeAll()
		serveErr = <-errc
	}
	s.ln.Close()
	s.ln.closeAll()
	s.ln.wait()
	if serveErr != nil {
		return fmt.Errorf("control: serve: %w", serveErr)
	}
	return nil
}

// backendCtx is the context of one backend call: cancelled on shutdown, bounded by the
// write timeout.
func (s *Server) backendCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.base, s.cfg.WriteTimeout)
}

// serve is the fasthttp handler: route, authorise, run, count, recover.
func (s *Server) serve(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	s.m.inFlight.Inc()
	var rm *routeMetrics
	p := new(params)
	defer func() {
		if v := recover(); v != nil {
			s.m.panics.Inc()
			s.log.Error("control: handler panic", "method", safeText(string(ctx.Method())), "path", safeText(string(ctx.Path())),
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			ctx.Response.Reset()
			writeError(ctx, fasthttp.StatusInternalServerError, codeInternal, "internal error")
		}
		if rm == nil {
			rm = s.unmatched
		}
		rm.count(ctx.Response.StatusCode())
		rm.duration.Observe(time.Since(start).Seconds())
		s.m.inFlight.Dec()
	}()
	rt := s.rt.match(ctx.Path(), p)
	if rt == nil {
		writeError(ctx, fasthttp.StatusNotFound, codeNotFound, "no such route")
		return
	}
	ep := rt.endpointFor(ctx.Method())
	if ep == nil {
		rm = rt.other
		ctx.Response.Header.Set("Allow", rt.allow)
		if ctx.IsOptions() {
			ctx.SetStatusCode(fasthttp.StatusNoContent)
			return
		}
		writeError(ctx, fasthttp.StatusMethodNotAllowed, codeMethodNotAllowed, "method not allowed; allowed: "+rt.allow)
		return
	}
	rm = ep.obs
	if ep.scope != scopeNone && !s.authorize(ctx, ep.scope, rt.pattern) {
		return
	}
	ep.h(ctx, p)
}

// authorize checks the bearer token against need, answering 401/403 itself when it fails.
// Failures are counted and logged without the token.
func (s *Server) authorize(ctx *fasthttp.RequestCtx, need scope, pattern string) bool {
	tok, ok := bearer(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	reason := ""
	var got scope
	switch {
	case !ok:
		reason = "missing"
	default:
		got = s.tok.authenticate(tok)
		if got == scopeNone {
			reason = "invalid"
		} else if got < need {
			reason = "scope"
		}
	}
	if reason == "" {
		return true
	}
	s.m.authFailures.WithLabelValues(reason).Inc()
	s.log.Warn("control: authentication failed", "reason", reason, "route", pattern,
		"method", safeText(string(ctx.Method())), "remote", ctx.RemoteIP().String())
	switch reason {
	case "missing":
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="sendcore"`)
		writeError(ctx, fasthttp.StatusUnauthorized, codeUnauthorized, "missing bearer token")
	case "invalid":
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="sendcore", error="invalid_token"`)
		writeError(ctx, fasthttp.StatusUnauthorized, codeUnauthorized, "invalid or revoked token")
	default:
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="sendcore", error="insufficient_scope", scope="`+need.String()+`"`)
		writeError(ctx, fasthttp.StatusForbidden, codeForbidden, "token scope "+got.String()+" is too small; this needs "+need.String())
	}
	return false
}

// parseError answers requests fasthttp could not read: 413, 431, 408 or 400.
func (s *Server) parseError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("body exceeds %d bytes", s.cfg.MaxBodyBytes))
	case errors.As(err, &small):
		writeError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, codeHeaderTooLarge, fmt.Sprintf("request header exceeds %d bytes", s.cfg.MaxHeaderBytes))
	case errors.As(err, &ne) && ne.Timeout():
		writeError(ctx, fasthttp.StatusRequestTimeout, codeTimeout, "request not received in time")
	default:
		writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, "malformed HTTP request")
	}
	s.parseErrs.count(ctx.Response.StatusCode())
}

// fasthttpLogger sends fasthttp's own messages to slog at debug level (they are about
// clients' broken connections).
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("control: fasthttp: " + fmt.Sprintf(format, args...))
}

// trackListener remembers accepted connections so Run can close the stragglers and wait
// until every one is closed.
type trackListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[*trackConn]struct{}
	wg    sync.WaitGroup
}

func newTrackListener(ln net.Listener) *trackListener {
	return &trackListener{Listener: ln, conns: map[*trackConn]struct{}{}}
}

func (l *trackListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.wg.Add(1)
	l.mu.Unlock()
	return tc, nil
}

func (l *trackListener) closeAll() {
	l.mu.Lock()
	cs := make([]*trackConn, 0, len(l.conns))
	for c := range l.conns {
		cs = append(cs, c)
	}
	l.mu.Unlock()
	for _, c := range cs {
		c.Conn.Close() // the serving goroutine fails its next read/write and closes tc
	}
}

func (l *trackListener) wait() { l.wg.Wait() }

type trackConn struct {
	net.Conn
	l    *trackListener
	once sync.Once
}

func (c *trackConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.wg.Done()
	})
	return err
}
