package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/storage"
)

func runOptout(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cmdOptout(context.Background(), args, stdio{in: strings.NewReader(stdin), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func checkJSON(t *testing.T, out string) optoutResult {
	t.Helper()
	var r optoutResult
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want exactly one line of JSON, got %q", out)
	}
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	return r
}

// optoutBackends runs each test against a data dir and against the control plane API
// (a contract §6 test server over a storage.DB).
func optoutBackends(t *testing.T, fn func(t *testing.T, target []string)) {
	t.Run("data-dir", func(t *testing.T) {
		fn(t, []string{"--data-dir", t.TempDir()})
	})
	t.Run("api", func(t *testing.T) {
		srv := newOptoutServer(t, "s3cret")
		fn(t, []string{"--api", srv.URL, "--token", "s3cret"})
	})
}

func TestOptoutAddCheckRemove(t *testing.T) {
	optoutBackends(t, func(t *testing.T, target []string) {
		args := func(a ...string) []string { return append(append([]string{}, a[0]), append(target, a[1:]...)...) }
		steps := []struct {
			args     []string
			opted    bool
			tenant   string
			channel  string
			wantAddr string
		}{
			{args("check", "--channel", "sms", "+358401234567"), false, "default", "sms", "+358401234567"},
			{args("add", "--tenant", "acme", "+358 40 1234567"), true, "acme", "all", "+358401234567"},
			{args("check", "--tenant", "acme", "--channel", "sms", "+358401234567"), true, "acme", "sms", "+358401234567"}, // all covers sms
			{args("check", "--tenant", "other", "--channel", "sms", "+358401234567"), false, "other", "sms", "+358401234567"},
			// flags after the address work too
			{args("add", "+46701234567", "--channel", "voice"), true, "default", "voice", "+46701234567"},
			{args("check", "--channel", "sms", "+46701234567"), false, "default", "sms", "+46701234567"},
			{args("check", "--channel", "voice", "--region", "SE", "070-123 45 67"), true, "default", "voice", "+46701234567"},
			{args("remove", "--tenant", "acme", "+358401234567"), false, "acme", "all", "+358401234567"},
			{args("check", "--tenant", "acme", "--channel", "sms", "+358401234567"), false, "acme", "sms", "+358401234567"},
		}
		for _, s := range steps {
			code, out, errs := runOptout(t, "", s.args...)
			if code != exitOK {
				t.Fatalf("%v: exit %d, stderr %q", s.args, code, errs)
			}
			r := checkJSON(t, out)
			want := optoutResult{Tenant: s.tenant, Channel: s.channel, Address: s.wantAddr, OptedOut: s.opted}
			if r != want {
				t.Fatalf("%v: %+v, want %+v", s.args, r, want)
			}
		}
	})
}

func TestOptoutImportExport(t *testing.T) {
	optoutBackends(t, func(t *testing.T, target []string) {
		file := filepath.Join(t.TempDir(), "in.csv")
		csv := "address,channel\n+358401111111,sms\nnot a number,sms\n+358402222222,\n+358403333333,fax\n"
		if err := os.WriteFile(file, []byte(csv), 0o640); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runOptout(t, "", append(append([]string{"import"}, target...), "--tenant", "acme", file)...)
		if code != exitOK {
			t.Fatalf("import: exit %d, %s", code, errs)
		}
		if strings.TrimSpace(out) != "imported 2, rejected 2" {
			t.Errorf("import stdout %q", out)
		}
		if !strings.Contains(errs, "line 3: address") || !strings.Contains(errs, "line 5: channel") {
			t.Errorf("import stderr %q: want lines 3 and 5 named", errs)
		}
		// from stdin
		code, out, errs = runOptout(t, "+46701234567\n", append([]string{"import"}, target...)...)
		if code != exitOK || strings.TrimSpace(out) != "imported 1, rejected 0" {
			t.Fatalf("import stdin: exit %d, %q, %q", code, out, errs)
		}
		code, out, errs = runOptout(t, "", append([]string{"export"}, target...)...)
		if code != exitOK {
			t.Fatalf("export: exit %d, %s", code, errs)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 || lines[0] != "tenant,channel,address,source,ts" {
			t.Fatalf("export:\n%s", out)
		}
		for i, want := range []string{"acme,all,+358402222222,import,", "acme,sms,+358401111111,import,", "default,all,+46701234567,import,"} {
			if !strings.HasPrefix(lines[i+1], want) {
				t.Errorf("export line %d = %q, want prefix %q", i+2, lines[i+1], want)
			}
		}
	})
}

func TestOptoutUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"NoSubcommand", nil, "Usage"},
		{"UnknownSubcommand", []string{"frobnicate", "--data-dir", dir}, `"frobnicate"`},
		{"NoTarget", []string{"check", "+358401234567"}, "--data-dir or --api"},
		{"BothTargets", []string{"check", "--data-dir", dir, "--api", "http://127.0.0.1:1", "+358401234567"}, "exclude"},
		{"BadChannel", []string{"add", "--data-dir", dir, "--channel", "fax", "+358401234567"}, `--channel: must be sms, voice or all, got "fax"`},
		{"BadAddress", []string{"add", "--data-dir", dir, "12ab"}, `"12ab"`},
		{"NationalWithoutRegion", []string{"check", "--data-dir", dir, "0401234567"}, `"0401234567"`},
		{"NoAddress", []string{"check", "--data-dir", dir}, "ADDRESS"},
		{"TwoAddresses", []string{"add", "--data-dir", dir, "+358401234567", "+358401234568"}, "exactly one ADDRESS"},
		{"UnknownFlag", []string{"add", "--data-dir", dir, "--colour", "red", "+358401234567"}, "-colour"},
		{"APINoToken", []string{"check", "--api", "http://127.0.0.1:1", "+358401234567"}, "--token"},
		{"APIBadURL", []string{"check", "--api", "127.0.0.1:8080", "--token", "x", "+358401234567"}, "--api"},
		{"ExportArgument", []string{"export", "--data-dir", dir, "x.csv"}, `"x.csv"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runOptout(t, "", c.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d (stdout %q)", code, exitUsage, out)
			}
			if !strings.Contains(errs, c.want) {
				t.Errorf("stderr %q lacks %q", errs, c.want)
			}
		})
	}
}

// TestOptoutRuntimeErrors guarantees exit 1 with a clear message when the data dir is in
// use, the file is missing, or the API refuses the token.
func TestOptoutRuntimeErrors(t *testing.T) {
	dir := t.TempDir()
	db, err := storage.Open(dir, storage.Options{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := newOptoutServer(t, "right")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"Locked", []string{"check", "--data-dir", dir, "+358401234567"}, "--api"},
		{"MissingFile", []string{"import", "--data-dir", t.TempDir(), filepath.Join(dir, "nope.csv")}, "nope.csv"},
		{"WrongToken", []string{"check", "--api", srv.URL, "--token", "wrong", "+358401234567"}, "401"},
		{"Unreachable", []string{"export", "--api", "http://127.0.0.1:1", "--token", "x"}, "127.0.0.1:1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := runOptout(t, "", c.args...)
			if code != exitFailure || !strings.Contains(errs, c.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errs, exitFailure, c.want)
			}
		})
	}
}

// newOptoutServer is a control plane that implements the opt-out routes of contract §6
// over a storage.DB, for testing --api.
func newOptoutServer(t *testing.T, token string) *httptest.Server {
	t.Helper()
	db, err := storage.Open(t.TempDir(), storage.Options{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	fail := func(w http.ResponseWriter, status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	}
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				fail(w, http.StatusUnauthorized, "unauthorized", "bad token")
				return
			}
			h(w, r)
		}
	}
	mux := http.NewServeMux()
	one := "/v1/optouts/{tenant}/{channel}/{address}"
	mux.HandleFunc("PUT "+one, auth(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Source string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		o := dispatch.OptOut{Tenant: r.PathValue("tenant"), Channel: r.PathValue("channel"), Address: r.PathValue("address"), OptedOut: true, Source: body.Source}
		if err := db.SetOptOut(o); err != nil {
			fail(w, http.StatusBadRequest, "invalid", err.Error())
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	mux.HandleFunc("GET "+one, auth(func(w http.ResponseWriter, r *http.Request) {
		o, ok, err := db.GetOptOut(r.PathValue("tenant"), r.PathValue("channel"), r.PathValue("address"))
		if err != nil {
			fail(w, http.StatusBadRequest, "invalid", err.Error())
			return
		}
		if !ok {
			fail(w, http.StatusNotFound, "not_found", "no such opt-out")
			return
		}
		_ = json.NewEncoder(w).Encode(o)
	}))
	mux.HandleFunc("DELETE "+one, auth(func(w http.ResponseWriter, r *http.Request) {
		o := dispatch.OptOut{Tenant: r.PathValue("tenant"), Channel: r.PathValue("channel"), Address: r.PathValue("address")}
		if err := db.SetOptOut(o); err != nil {
			fail(w, http.StatusBadRequest, "invalid", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /v1/optouts/import", auth(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		res, err := db.ImportOptOutsCSV(r.Body, storage.ImportOptions{Tenant: q.Get("tenant"), Channel: q.Get("channel"),
			Source: q.Get("source"), Region: q.Get("region"), StopOnError: q.Get("stop_on_error") == "true"})
		if err != nil {
			fail(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		_ = json.NewEncoder(w).Encode(res)
	}))
	mux.HandleFunc("GET /v1/optouts/export", auth(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		_ = db.ExportOptOutsCSV(w)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); db.Close() })
	return srv
}
