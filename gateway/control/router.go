package control

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/valyala/fasthttp"
)

// scope is what a token may do: read < write < admin. scopeNone marks routes that need no
// token (/healthz, /readyz, /openapi.yaml, /metrics unless configured otherwise).
type scope uint8

const (
	scopeNone scope = iota
	scopeRead
	scopeWrite
	scopeAdmin
)

func (s scope) String() string {
	switch s {
	case scopeRead:
		return "read"
	case scopeWrite:
		return "write"
	case scopeAdmin:
		return "admin"
	}
	return "none"
}

func parseScope(s string) (scope, bool) {
	switch s {
	case "read":
		return scopeRead, true
	case "write":
		return scopeWrite, true
	case "admin":
		return scopeAdmin, true
	}
	return scopeNone, false
}

// maxParams bounds the path parameters of one pattern.
const maxParams = 4

// params are the path parameters of one request: slices of the request's path, valid only
// until the handler returns (fasthttp reuses the buffer). Copy with string() to keep.
type params struct {
	n    int
	keys [maxParams]string
	vals [maxParams][]byte
}

// get returns the raw bytes of parameter name, nil when absent.
func (p *params) get(name string) []byte {
	for i := 0; i < p.n; i++ {
		if p.keys[i] == name {
			return p.vals[i]
		}
	}
	return nil
}

// handlerFunc serves one matched route.
type handlerFunc func(ctx *fasthttp.RequestCtx, p *params)

// endpoint is one method of one route.
type endpoint struct {
	method string
	scope  scope
	h      handlerFunc
	obs    *routeMetrics // resolved once at registration
}

// route is one path pattern: literal segments, {name} parameters, and an optional final
// "*" that matches the rest of the path (one or more segments).
type route struct {
	pattern   string
	prefix    string // literal start of the pattern, up to the first parameter or "*"
	segs      []string
	params    []string // names, in order
	wildcard  bool
	endpoints []endpoint
	allow     string        // value of the Allow header
	other     *routeMetrics // 405s and OPTIONS, counted with method "other"
}

// router maps a request path and method to an endpoint. It is built before the server
// starts and read-only afterwards; matching allocates nothing.
type router struct {
	routes []*route
}

// handle registers method on pattern. It panics on a malformed pattern or a duplicate
// registration: both are programming errors caught by the tests.
func (r *router) handle(method, pattern string, sc scope, h handlerFunc, obs *routeMetrics) {
	rt := r.find(pattern)
	if rt == nil {
		rt = &route{pattern: pattern}
		if !strings.HasPrefix(pattern, "/") {
			panic("control: pattern must start with /: " + pattern)
		}
		segs := strings.Split(pattern[1:], "/")
		for i, s := range segs {
			switch {
			case s == "*":
				if i != len(segs)-1 {
					panic("control: * must be last: " + pattern)
				}
				rt.wildcard = true
				segs = segs[:i]
			case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}"):
				rt.params = append(rt.params, s[1:len(s)-1])
			}
		}
		if len(rt.params) > maxParams {
			panic("control: too many parameters: " + pattern)
		}
		rt.segs = segs
		rt.prefix = pattern
		if i := strings.IndexAny(pattern, "{*"); i >= 0 {
			rt.prefix = pattern[:i]
		}
		r.routes = append(r.routes, rt)
	}
	for _, e := range rt.endpoints {
		if e.method == method {
			panic(fmt.Sprintf("control: %s %s registered twice", method, pattern))
		}
	}
	rt.endpoints = append(rt.endpoints, endpoint{method: method, scope: sc, h: h, obs: obs})
	ms := make([]string, 0, len(rt.endpoints)+2)
	for _, e := range rt.endpoints {
		ms = append(ms, e.method)
		if e.method == fasthttp.MethodGet {
			ms = append(ms, fasthttp.MethodHead)
		}
	}
	ms = append(ms, fasthttp.MethodOptions)
	sort.Strings(ms)
	rt.allow = strings.Join(ms, ", ")
}

func (r *router) find(pattern string) *route {
	for _, rt := range r.routes {
		if rt.pattern == pattern {
			return rt
		}
	}
	return nil
}

// match finds the route of path and fills p. nil when no pattern matches.
func (r *router) match(path []byte, p *params) *route {
	if len(path) == 0 || path[0] != '/' {
		return nil
	}
	rest := path[1:]
	for _, rt := range r.routes {
		if len(path) < len(rt.prefix) || string(path[:len(rt.prefix)]) != rt.prefix {
			continue
		}
		if matchRoute(rt, rest, p) {
			return rt
		}
	}
	return nil
}

func matchRoute(rt *route, rest []byte, p *params) bool {
	p.n = 0
	for _, seg := range rt.segs {
		if rest == nil {
			return false
		}
		var cur []byte
		if j := bytes.IndexByte(rest, '/'); j >= 0 {
			cur, rest = rest[:j], rest[j+1:]
		} else {
			cur, rest = rest, nil
		}
		if len(seg) > 1 && seg[0] == '{' {
			if len(cur) == 0 {
				return false
			}
			p.keys[p.n] = rt.params[p.n]
			p.vals[p.n] = cur
			p.n++
			continue
		}
		if string(cur) != seg { // no allocation: the compiler compares in place
			return false
		}
	}
	if rt.wildcard {
		return rest != nil // at least "" after a trailing slash
	}
	return rest == nil
}

// endpointFor returns the endpoint of method on rt; HEAD falls back to GET.
func (rt *route) endpointFor(method []byte) *endpoint {
	for i := range rt.endpoints {
		if string(method) == rt.endpoints[i].method {
			return &rt.endpoints[i]
		}
	}
	if string(method) == fasthttp.MethodHead {
		for i := range rt.endpoints {
			if rt.endpoints[i].method == fasthttp.MethodGet {
				return &rt.endpoints[i]
			}
		}
	}
	return nil
}

// registered lists "METHOD pattern" for every explicitly registered endpoint, sorted.
func (r *router) registered() []string {
	var out []string
	for _, rt := range r.routes {
		for _, e := range rt.endpoints {
			out = append(out, e.method+" "+rt.pattern)
		}
	}
	sort.Strings(out)
	return out
}
