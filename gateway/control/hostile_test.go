package control

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// rawRequest writes raw bytes on a fresh connection and reads one response (bounded in
// time). It returns the status code, or 0 when the server closed the connection without
// answering.
func rawRequest(t *testing.T, addr string, raw []byte) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// The server may answer and close before it has read everything we send (413, 431):
	// write in the background and ignore write errors.
	go func() { _, _ = c.Write(raw) }()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF || strings.Contains(err.Error(), "reset") {
			return 0, ""
		}
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHostileRequests guarantees that malformed, oversized and malicious requests get the
// right 4xx in the error shape, never reach a backend with a traversal id, and leave the
// server answering normal requests.
func TestHostileRequests(t *testing.T) {
	e := startEnv(t, func(c *Config) {
		c.MaxBodyBytes = 256 << 10
		c.MaxJSONBytes = 16 << 10
		c.MaxHeaderBytes = 4 << 10
	}, nil)
	addr := e.s.Addr().String()
	auth := "Authorization: Bearer " + e.writeTok + "\r\n"
	req := func(method, path, headers, body string) []byte {
		return []byte(fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s", method, path, headers, len(body), body))
	}
	bigJSON := `{"id":"` + strings.Repeat("x", 20<<10) + `"}`
	var flood strings.Builder
	for i := 0; i < 500; i++ {
		fmt.Fprintf(&flood, "X-Flood-%d: %s\r\n", i, strings.Repeat("v", 20))
	}
	cases := []struct {
		name string
		raw  []byte
		want []int // acceptable statuses; 0 = connection closed without an answer
	}{
		{"body over max_body_bytes announced", []byte("POST /v1/optouts/import HTTP/1.1\r\nHost: x\r\n" + auth + "Content-Type: text/csv\r\nContent-Length: 104857600\r\n\r\nabc"), []int{413}},
		{"body over max_body_bytes chunked", append([]byte("POST /v1/messages HTTP/1.1\r\nHost: x\r\n"+auth+"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"), bytes.Repeat([]byte("4000\r\n"+strings.Repeat("a", 0x4000)+"\r\n"), 20)...), []int{413, 0}},
		{"json over max_json_bytes", req("POST", "/v1/messages", auth+"Content-Type: application/json\r\n", bigJSON), []int{413}},
		{"xml content type", req("POST", "/v1/messages", auth+"Content-Type: application/xml\r\n", "<a/>"), []int{415}},
		{"no content type", req("POST", "/v1/tokens", "Authorization: Bearer "+adminTok+"\r\n", `{"name":"x","scope":"read"}`), []int{415}},
		{"multipart", req("PATCH", "/v1/limits", auth+"Content-Type: multipart/form-data; boundary=x\r\n", "--x--"), []int{415}},
		{"invalid utf8 json", req("PATCH", "/v1/limits", auth+"Content-Type: application/json\r\n", "{\"tenants\":{\"\xc3\x28\":1}}"), []int{400}},
		{"invalid utf8 in path", req("GET", "/v1/messages/%ff%fe", auth, ""), []int{400}},
		{"nul in path", req("GET", "/v1/messages/a%00b", auth, ""), []int{400}},
		{"traversal dotdot", req("GET", "/v1/messages/../../etc/passwd", auth, ""), []int{404}},
		{"traversal encoded", req("GET", "/v1/messages/..%2f..%2fetc%2fpasswd", auth, ""), []int{404}},
		{"traversal encoded dots", req("GET", "/v1/messages/%2e%2e", auth, ""), []int{404}},
		{"traversal in opt-out", req("PUT", "/v1/optouts/..%2F..%2Fadmin/sms/+358401234567", auth, ""), []int{404, 400}},
		{"backslash id", req("GET", "/v1/messages/..%5c..%5cwin", auth, ""), []int{400}},
		{"header flood", req("GET", "/healthz", flood.String(), ""), []int{431}},
		{"huge header value", req("GET", "/healthz", "X-Big: "+strings.Repeat("a", 8<<10)+"\r\n", ""), []int{431}},
		{"giant authorization", req("GET", "/v1/limits", "Authorization: Bearer "+strings.Repeat("A", 3<<10)+"\r\n", ""), []int{401}},
		{"garbage request line", []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"), []int{400, 0}},
		{"unknown method", req("BREW", "/v1/limits", auth, ""), []int{405}},
		{"absolute uri", req("GET", "http://evil.example/v1/limits", auth, ""), []int{200}},
		{"bad content length", []byte("POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"), []int{400, 0}},
		{"deep json", req("PATCH", "/v1/limits", auth+"Content-Type: application/json\r\n", strings.Repeat("[", 5000)+strings.Repeat("]", 5000)), []int{400}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, body := rawRequest(t, addr, c.raw)
			ok := false
			for _, w := range c.want {
				ok = ok || st == w
			}
			if !ok {
				t.Fatalf("status %d, want one of %v; body %q", st, c.want, body)
			}
			if st >= 400 {
				errorCode(t, body)
			}
		})
	}
	for _, id := range e.hist.askedIDs() {
		if strings.Contains(id, "..") || strings.ContainsAny(id, "/\\\x00") {
			t.Errorf("backend saw id %q", id)
		}
	}
	if st, _, _ := e.do(t, "GET", "/v1/limits", e.readTok, "", ""); st != 200 {
		t.Fatalf("server not serving after hostile requests: %d", st)
	}
}

// TestSlowClientIsCut guarantees a client that sends a partial request (slowloris) is
// disconnected after read_timeout while others are served meanwhile.
func TestSlowClientIsCut(t *testing.T) {
	e := startEnv(t, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond }, nil)
	var conns []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", e.s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if st, _, _ := e.do(t, "GET", "/healthz", "", "", ""); st != 200 {
		t.Fatalf("healthz while slow clients hang: %d", st)
	}
	start := time.Now()
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c) // the server answers 408 or just closes
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("slow connection still open after %v", time.Since(start))
		}
		if len(b) > 0 && !bytes.HasPrefix(b, []byte("HTTP/1.1 408")) {
			t.Fatalf("slow client got %q", b)
		}
	}
}

// FuzzServe feeds arbitrary request bytes to the handler (no network): whatever the input,
// the handler does not panic, answers a known status, and every error is the contract's
// JSON error body.
func FuzzServe(f *testing.F) {
	for _, s := range []string{
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/optouts/default/sms/+358401234567 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminTok + "\r\n\r\n",
		"PUT /v1/optouts/default/all/+358401234567 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminTok + "\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"source\":\"fuzz\"}",
		"PATCH /v1/limits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminTok + "\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"global_tps\":1}",
		"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminTok + "\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n[{\"id\":\"a\",\"channel\":1}]",
		"POST /v1/segment HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminTok + "\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"text\":\"hi\"}",
		"PUT /v1/pools/p HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminTok + "\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"cooldown\":1}",
		"POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminTok + "\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
		"DELETE /v1/tokens/0123456789abcdef HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminTok + "\r\n\r\n",
		"GET /v1/messages/%ff HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminTok + "\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	e := &env{log: &syncBuffer{}}
	b := fullBackend(e)
	b.LookupEnv = func(string) (string, bool) { return adminTok, true }
	b.History = quietHistory{} // the fake's panic and error ids would be false alarms here
	s, err := New(testConfig(), b, slogDiscard(), nil)
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	known := map[int]bool{200: true, 201: true, 202: true, 204: true, 400: true, 401: true, 403: true, 404: true, 405: true, 409: true, 413: true, 415: true, 500: true, 503: true}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(bytes.NewReader(raw))); err != nil {
			return
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, nil)
		s.serve(&ctx)
		st := ctx.Response.StatusCode()
		if !known[st] {
			t.Fatalf("status %d for %q", st, raw)
		}
		if st == 500 {
			t.Fatalf("500 for %q: %s", raw, ctx.Response.Body())
		}
		if st >= 400 && !bytes.HasPrefix(ctx.Response.Body(), []byte(`{"error":{"code":"`)) {
			t.Fatalf("error body %q", ctx.Response.Body())
		}
	})
}
