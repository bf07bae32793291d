package control

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestGrafanaDashboard checks deploy/grafana/sendcore.json: valid JSON that Grafana
// imports (schemaVersion, unique panel ids, grid positions), every query references a
// sendcore_ metric, and every metric the SRE needs has a panel.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/grafana/sendcore.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title         string `json:"title"`
		UID           string `json:"uid"`
		SchemaVersion int    `json:"schemaVersion"`
		Panels        []struct {
			ID      int            `json:"id"`
			Type    string         `json:"type"`
			Title   string         `json:"title"`
			GridPos map[string]int `json:"gridPos"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 30 {
		t.Fatalf("title %q uid %q schemaVersion %d", d.Title, d.UID, d.SchemaVersion)
	}
	metricRe := regexp.MustCompile(`\bsendcore_[a-z_]+`)
	ids := map[int]bool{}
	all := ""
	for _, p := range d.Panels {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or repeated", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos["w"] == 0 || p.GridPos["h"] == 0 {
			t.Errorf("panel %q: no gridPos", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if !metricRe.MatchString(q.Expr) || strings.Count(q.Expr, "(") != strings.Count(q.Expr, ")") {
				t.Errorf("panel %q: query %q does not reference a sendcore_ metric or is unbalanced", p.Title, q.Expr)
			}
			all += q.Expr + "\n"
		}
	}
	for _, m := range []string{
		"sendcore_dispatch_requests_total", "sendcore_dispatch_events_total",
		"sendcore_smpp_submits_total", "sendcore_smpp_submit_duration_seconds_bucket",
		"sendcore_smpp_binds_up", "sendcore_smpp_throttles_total", "sendcore_smpp_receipts_total",
		"sendcore_sip_calls_total", "sendcore_sip_call_setup_seconds_bucket",
		"sendcore_kafka_consumer_lag", "sendcore_schedule_depth",
		"sendcore_control_requests_total", "sendcore_control_request_duration_seconds_bucket", "sendcore_control_auth_failures_total",
	} {
		if !strings.Contains(all, m+"{") && !strings.Contains(all, m+"[") {
			t.Errorf("no panel queries %s", m)
		}
	}
}
