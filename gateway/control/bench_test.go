package control

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/sendcore/sendcore/dispatch"
)

// BenchmarkServeGetOptOut measures the handler path of GET /v1/optouts/... (routing,
// token check, parameter validation, map-backed lookup, JSON) without the network.
func BenchmarkServeGetOptOut(b *testing.B) {
	for _, bc := range []struct {
		name string
		addr string
	}{{"miss", "+358401234567"}, {"hit", "+358409999999"}} {
		b.Run(bc.name, func(b *testing.B) {
			opt := newMemOptOuts()
			_ = opt.SetOptOut(dispatch.OptOut{Tenant: "default", Channel: "sms", Address: "+358409999999", OptedOut: true, Source: "api"})
			s, err := New(testConfig(), Backend{OptOuts: opt, LookupEnv: func(string) (string, bool) { return adminTok, true }}, slogDiscard(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var ctx fasthttp.RequestCtx
			var req fasthttp.Request
			req.SetRequestURI("/v1/optouts/default/sms/" + bc.addr)
			req.Header.Set("Authorization", "Bearer "+adminTok)
			ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, nil)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ctx.Response.Reset()
				s.serve(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}
