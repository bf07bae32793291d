package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/storage"
)

const optoutUsage = `Usage: sendcore optout add|remove|check|import|export [flags] [ADDRESS|FILE]

  add ADDRESS      opt ADDRESS out of --channel for --tenant
  remove ADDRESS   remove that opt-out
  check ADDRESS    print {"tenant","channel","address","opted_out"}; exit 0 either way
                   (channel sms or voice is also opted out by an opt-out of "all")
  import [FILE]    import CSV (contract §8) from FILE or stdin ("-"); prints counts,
                   each rejected line to stderr
  export           write every opt-out as CSV to stdout

Against a data dir (--data-dir; the gateway must not be running on it) or a running
gateway's control plane (--api URL --token T, or SENDCORE_TOKEN).

Flags:`

// optoutFlags are the flags of every optout subcommand.
type optoutFlags struct {
	dataDir, api, token             string
	tenant, channel, source, region string
	stopOnError                     bool
}

// optoutResult is what add, remove and check print.
type optoutResult struct {
	Tenant   string `json:"tenant"`
	Channel  string `json:"channel"`
	Address  string `json:"address"`
	OptedOut bool   `json:"opted_out"`
}

func cmdOptout(ctx context.Context, args []string, io stdio) int {
	var f optoutFlags
	fs := newFlagSet("optout", io)
	fs.StringVar(&f.dataDir, "data-dir", "", "data `dir` of the gateway (not while it runs)")
	fs.StringVar(&f.api, "api", "", "control plane base `URL` of a running gateway, e.g. http://127.0.0.1:8080")
	fs.StringVar(&f.token, "token", "", "API `token` for --api (default $SENDCORE_TOKEN)")
	fs.StringVar(&f.tenant, "tenant", storage.DefaultTenant, "`tenant`")
	fs.StringVar(&f.channel, "channel", dispatch.ChannelAll, "`channel`: sms, voice or all (import: of rows without one)")
	fs.StringVar(&f.source, "source", "", "`source` recorded with the opt-out (default api for add, import for import)")
	fs.StringVar(&f.region, "region", "", "ISO 3166 `region` to read national numbers in, e.g. FI (default: international form only)")
	fs.BoolVar(&f.stopOnError, "stop-on-error", false, "import: stop at the first bad row")
	fs.Usage = func() {
		fmt.Fprintln(io.err, optoutUsage)
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		fs.Usage()
		return exitUsage
	}
	sub := args[0]
	if sub == "-h" || sub == "--help" || sub == "help" {
		fs.SetOutput(io.out)
		fmt.Fprintln(io.out, optoutUsage)
		fs.PrintDefaults()
		return exitOK
	}
	switch sub {
	case "add", "remove", "check", "import", "export":
	default:
		fmt.Fprintf(io.err, "sendcore optout: unknown subcommand %q (want add, remove, check, import or export)\n", sub)
		return exitUsage
	}
	pos, code, ok := parseInterleaved(fs, args[1:])
	if !ok {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(io.err, "sendcore optout %s: %s\n", sub, fmt.Sprintf(format, a...))
		return exitUsage
	}
	switch {
	case f.dataDir == "" && f.api == "":
		return usageErr("--data-dir or --api is required")
	case f.dataDir != "" && f.api != "":
		return usageErr("--data-dir and --api exclude each other")
	}
	if f.api != "" {
		u, err := url.Parse(f.api)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageErr("--api: want an http(s) URL, got %q", f.api)
		}
		if f.token == "" {
			f.token = lookupEnv(io.environ, "SENDCORE_TOKEN")
		}
		if f.token == "" {
			return usageErr("--token (or SENDCORE_TOKEN) is required with --api")
		}
	}
	switch f.channel {
	case dispatch.ChannelSMS, dispatch.ChannelVoice, dispatch.ChannelAll:
	default:
		return usageErr("--channel: must be sms, voice or all, got %q", f.channel)
	}
	if f.tenant == "" {
		return usageErr("--tenant: must not be empty")
	}
	var arg string
	switch sub {
	case "add", "remove", "check":
		if len(pos) != 1 {
			return usageErr("want exactly one ADDRESS, got %d arguments", len(pos))
		}
		a, err := dispatch.NormalizeE164(pos[0], f.region)
		if err != nil {
			return usageErr("ADDRESS: %q is not a phone number in international form (or set --region): %v", pos[0], err)
		}
		arg = a
	case "import":
		if len(pos) > 1 {
			return usageErr("want at most one FILE, got %d arguments", len(pos))
		}
		arg = "-"
		if len(pos) == 1 {
			arg = pos[0]
		}
	case "export":
		if len(pos) != 0 {
			return usageErr("unexpected argument %q", pos[0])
		}
	}
	if f.api != "" {
		return optoutAPI(ctx, sub, arg, f, io)
	}
	return optoutLocal(sub, arg, f, io)
}

// parseInterleaved parses flags before, between and after positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, int, bool) {
	var pos []string
	for {
		if code, ok := parseFlags(fs, args); !ok {
			return nil, code, false
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, exitOK, true
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func lookupEnv(environ []string, key string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

func printResult(io stdio, r optoutResult) int {
	b, _ := json.Marshal(r)
	fmt.Fprintln(io.out, string(b))
	return exitOK
}

func printImport(io stdio, imported, rejected int) {
	fmt.Fprintf(io.out, "imported %d, rejected %d\n", imported, rejected)
}

// optoutLocal runs sub against the data dir.
func optoutLocal(sub, arg string, f optoutFlags, io stdio) int {
	fail := func(err error) int {
		fmt.Fprintf(io.err, "sendcore optout %s: %v\n", sub, err)
		if errors.Is(err, storage.ErrLocked) {
			fmt.Fprintln(io.err, "sendcore optout: is the gateway running on this data dir? Use --api URL --token T instead.")
		}
		return exitFailure
	}
	// Only import profits from the opt-out filter; the others skip building it.
	opts := storage.Options{DefaultRegion: f.region, NoOptOutFilter: sub != "import"}
	var in reader
	if sub == "import" {
		if arg == "-" {
			in = io.in
		} else {
			file, err := os.Open(arg)
			if err != nil {
				return fail(fmt.Errorf("FILE: %w", err))
			}
			defer file.Close()
			in = file
		}
	}
	db, err := storage.Open(f.dataDir, opts, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	res := optoutResult{Tenant: f.tenant, Channel: f.channel, Address: arg}
	switch sub {
	case "add", "remove":
		src := f.source
		if src == "" {
			src = "api"
		}
		res.OptedOut = sub == "add"
		if err := db.SetOptOut(dispatch.OptOut{Tenant: f.tenant, Channel: f.channel, Address: arg,
			OptedOut: res.OptedOut, Source: src, TS: time.Now().UTC()}); err != nil {
			return fail(err)
		}
		return printResult(io, res)
	case "check":
		if res.OptedOut, err = db.OptedOut(f.tenant, f.channel, arg); err != nil {
			return fail(err)
		}
		return printResult(io, res)
	case "import":
		r, err := db.ImportOptOutsCSV(in, storage.ImportOptions{
			Tenant: f.tenant, Channel: f.channel, Source: f.source, Region: f.region, StopOnError: f.stopOnError,
			OnReject: func(e storage.RowError) { fmt.Fprintf(io.err, "line %d: %s\n", e.Line, e.Err) },
		})
		printImport(io, r.Imported, r.Rejected)
		if err != nil {
			return fail(err)
		}
	case "export":
		if err := db.ExportOptOutsCSV(io.out); err != nil {
			return fail(err)
		}
	}
	if err := db.Close(); err != nil {
		return fail(err)
	}
	return exitOK
}

// optoutAPI runs sub through the control plane (contract §6).
func optoutAPI(ctx context.Context, sub, arg string, f optoutFlags, io stdio) int {
	base := strings.TrimRight(f.api, "/")
	one := func(ch string) string {
		return base + "/v1/optouts/" + url.PathEscape(f.tenant) + "/" + url.PathEscape(ch) + "/" + url.PathEscape(arg)
	}
	fail := func(err error) int {
		fmt.Fprintf(io.err, "sendcore optout %s: %v\n", sub, err)
		return exitFailure
	}
	res := optoutResult{Tenant: f.tenant, Channel: f.channel, Address: arg}
	switch sub {
	case "add":
		src := f.source
		if src == "" {
			src = "api"
		}
		body, _ := json.Marshal(map[string]string{"source": src})
		if _, code, err := apiCall(ctx, f, http.MethodPut, one(f.channel), "application/json", strings.NewReader(string(body)), nil, false); err != nil {
			return apiExit(io, sub, code, err)
		}
		res.OptedOut = true
		return printResult(io, res)
	case "remove":
		if _, code, err := apiCall(ctx, f, http.MethodDelete, one(f.channel), "", nil, nil, true); err != nil {
			return apiExit(io, sub, code, err)
		}
		return printResult(io, res)
	case "check":
		// GET answers the record of exactly one channel; sms and voice also look at "all".
		chans := []string{f.channel}
		if f.channel != dispatch.ChannelAll {
			chans = append(chans, dispatch.ChannelAll)
		}
		for _, ch := range chans {
			var rec struct {
				OptedOut *bool `json:"opted_out"`
			}
			found, code, err := apiCall(ctx, f, http.MethodGet, one(ch), "", nil, &rec, true)
			if err != nil {
				return apiExit(io, sub, code, err)
			}
			if found && (rec.OptedOut == nil || *rec.OptedOut) {
				res.OptedOut = true
				break
			}
		}
		return printResult(io, res)
	case "import":
		in := reader(io.in)
		if arg != "-" {
			file, err := os.Open(arg)
			if err != nil {
				return fail(fmt.Errorf("FILE: %w", err))
			}
			defer file.Close()
			in = bufio.NewReaderSize(file, 1<<16)
		}
		q := url.Values{}
		q.Set("tenant", f.tenant)
		q.Set("channel", f.channel)
		if f.source != "" {
			q.Set("source", f.source)
		}
		if f.region != "" {
			q.Set("region", f.region)
		}
		if f.stopOnError {
			q.Set("stop_on_error", "true")
		}
		var r storage.ImportResult
		if _, code, err := apiCall(ctx, f, http.MethodPost, base+"/v1/optouts/import?"+q.Encode(), "text/csv", in, &r, false); err != nil {
			return apiExit(io, sub, code, err)
		}
		for _, e := range r.Errors {
			fmt.Fprintf(io.err, "line %d: %s\n", e.Line, e.Err)
		}
		if r.Rejected > len(r.Errors) {
			fmt.Fprintf(io.err, "(%d more rejected rows not listed by the server)\n", r.Rejected-len(r.Errors))
		}
		printImport(io, r.Imported, r.Rejected)
		return exitOK
	case "export":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/optouts/export", nil)
		if err != nil {
			return fail(err)
		}
		req.Header.Set("Authorization", "Bearer "+f.token)
		req.Header.Set("Accept", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fail(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return apiExit(io, sub, resp.StatusCode, apiError(resp))
		}
		if _, err := copyBody(io.out, resp.Body); err != nil {
			return fail(fmt.Errorf("reading export: %w", err))
		}
		return exitOK
	}
	return exitUsage
}

func copyBody(w io.Writer, r io.Reader) (int64, error) { return io.Copy(w, r) }

// reader is io.Reader where a parameter named io hides the package.
type reader = io.Reader

// apiCall does one request; it decodes a 2xx JSON answer into out (when not nil) and
// reports found=false for a 404 when notFoundOK.
func apiCall(ctx context.Context, f optoutFlags, method, u, ctype string, body io.Reader, out any, notFoundOK bool) (found bool, code int, err error) {
	ctx, cancel := ctx, context.CancelFunc(func() {})
	if method != http.MethodPost {
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	}
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return false, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Accept", "application/json")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, 0, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound && notFoundOK:
		return false, resp.StatusCode, nil
	case resp.StatusCode/100 != 2:
		return false, resp.StatusCode, apiError(resp)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil && !errors.Is(err, io.EOF) {
			return false, resp.StatusCode, fmt.Errorf("decoding the answer of %s %s: %w", method, u, err)
		}
	}
	return true, resp.StatusCode, nil
}

// apiError reads the contract's error body {"error":{"code","message"}}.
func apiError(resp *http.Response) error {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		return fmt.Errorf("api: %s: %s (%s)", resp.Status, e.Error.Message, e.Error.Code)
	}
	return fmt.Errorf("api: %s: %s", resp.Status, strings.TrimSpace(string(b)))
}

// apiExit prints err; a 400 or 422 (bad input) is a usage error.
func apiExit(io stdio, sub string, code int, err error) int {
	fmt.Fprintf(io.err, "sendcore optout %s: %v\n", sub, err)
	if code == http.StatusBadRequest || code == http.StatusUnprocessableEntity {
		return exitUsage
	}
	return exitFailure
}
