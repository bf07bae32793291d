package control

import (
	"bytes"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"go.yaml.in/yaml/v3"
)

// TestOpenAPIMatchesRoutes fails when a route is served but not documented in
// openapi.yaml, or documented but not served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	var documented []string
	for path, item := range doc.Paths {
		pattern := path
		if p, ok := item["x-sendcore-pattern"].(string); ok {
			pattern = p
		}
		for k := range item {
			switch k {
			case "get", "put", "post", "patch", "delete":
				documented = append(documented, strings.ToUpper(k)+" "+pattern)
			}
		}
	}
	sort.Strings(documented)
	s, err := New(testConfig(), Backend{LookupEnv: func(string) (string, bool) { return "", false }}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	served := s.Routes()
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("served but not documented: %s", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("documented but not served: %s", r)
		}
	}
	if len(served) < 20 {
		t.Fatalf("only %d routes served: %v", len(served), served)
	}
}

// TestMetricsLint scrapes /metrics after traffic (successes, 404s, 405s and auth
// failures) and lints it as promtool check metrics would.
func TestMetricsLint(t *testing.T) {
	e := startEnv(t, nil, nil)
	e.do(t, "GET", "/v1/limits", e.readTok, "", "")
	e.do(t, "GET", "/v1/limits", "", "", "")
	e.do(t, "GET", "/nope", "", "", "")
	e.do(t, "DELETE", "/healthz", "", "", "")
	st, hdr, body := e.do(t, "GET", "/metrics", "", "", "")
	if st != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %s", st, hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		`sendcore_control_requests_total{code="200",method="GET",route="/v1/limits"} 1`,
		`sendcore_control_requests_total{code="401",method="GET",route="/v1/limits"} 1`,
		`sendcore_control_requests_total{code="404",method="other",route="unmatched"} 1`,
		`sendcore_control_requests_total{code="405",method="other",route="/healthz"} 1`,
		`sendcore_control_auth_failures_total{reason="missing"} 1`,
		`sendcore_control_request_duration_seconds_bucket{method="GET",route="/v1/limits",le="0.005"}`,
		"go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	problems, err := promlint.New(bytes.NewReader([]byte(body))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
