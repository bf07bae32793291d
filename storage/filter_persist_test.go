package storage

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendcore/sendcore/dispatch"
)

// logRecorder is a slog handler that keeps the messages.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if strings.Contains(m, sub) {
			return true
		}
	}
	return false
}

const (
	msgLoaded  = "opt-outs loaded from the state saved"
	msgScanned = "counting opt-outs by scan"
)

// openLogged opens dir and reports whether the opt-outs came from the saved state.
func openLogged(t *testing.T, dir string, opts Options) (*DB, bool) {
	t.Helper()
	rec := &logRecorder{}
	db, err := Open(dir, opts, slog.New(rec), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	loaded, scanned := rec.has(msgLoaded), rec.has(msgScanned)
	if loaded == scanned {
		t.Fatalf("loaded=%v scanned=%v: exactly one expected; log %q", loaded, scanned, rec.msgs)
	}
	if _, err := os.Stat(filepath.Join(dir, optStateFile)); !os.IsNotExist(err) {
		t.Fatalf("state file still there after Open: %v", err)
	}
	return db, loaded
}

func probeAddr(i int) string { return fmt.Sprintf("+35840%07d", i) }

// answers checks addresses 0..n-1 on sms and returns the opted-out ones and the count.
func answers(t *testing.T, db *DB, n int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		ok, err := db.OptedOut("acme", dispatch.ChannelSMS, probeAddr(i))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			fmt.Fprintf(&b, "%d ", i)
		}
	}
	c, _ := db.CountOptOuts()
	fmt.Fprintf(&b, "count=%d", c)
	return b.String()
}

// fillOptOuts imports every third address below n and removes every ninth.
func fillOptOuts(t *testing.T, db *DB, n int) {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i += 3 {
		fmt.Fprintf(&b, "acme,sms,%s\n", probeAddr(i))
	}
	if _, err := db.ImportOptOutsCSV(strings.NewReader(b.String()), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 9 {
		if err := db.SetOptOut(dispatch.OptOut{Tenant: "acme", Channel: "sms", Address: probeAddr(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOptOutStateCleanCloseOpensFast guarantees that after a clean Close the next Open
// takes the count and the filter from the state file and answers exactly as before.
func TestOptOutStateCleanCloseOpensFast(t *testing.T) {
	const n = 3000
	dir := t.TempDir()
	db, loaded := openLogged(t, dir, Options{})
	if loaded {
		t.Fatal("fresh dir: loaded a state")
	}
	fillOptOuts(t, db, n)
	want := answers(t, db, n+3)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		db, loaded = openLogged(t, dir, Options{})
		if !loaded {
			t.Fatalf("round %d: clean close, yet Open scanned", round)
		}
		if got := answers(t, db, n+3); got != want {
			t.Fatalf("round %d: answers after reopen\n got %s\nwant %s", round, got, want)
		}
		// Writes after a fast open are saved at the next clean close.
		if err := db.SetOptOut(dispatch.OptOut{Tenant: "acme", Channel: "sms", Address: probeAddr(n + round), OptedOut: true}); err != nil {
			t.Fatal(err)
		}
		want = answers(t, db, n+3)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db, loaded = openLogged(t, dir, Options{})
	defer db.Close()
	if got := answers(t, db, n+3); !loaded || got != want {
		t.Fatalf("loaded=%v\n got %s\nwant %s", loaded, got, want)
	}
}

// TestOptOutStateUnusableFileScans guarantees that a state file that does not match the
// database (other sequence, damaged, truncated, no filter) makes Open scan and answer
// right.
func TestOptOutStateUnusableFileScans(t *testing.T) {
	const n = 600
	damage := []struct {
		name string
		edit func(t *testing.T, path string, old []byte)
	}{
		{"older state (writes since)", func(t *testing.T, path string, old []byte) {
			if err := os.WriteFile(path, old, 0o640); err != nil {
				t.Fatal(err)
			}
		}},
		{"flipped bit", func(t *testing.T, path string, _ []byte) {
			b, _ := os.ReadFile(path)
			b[len(b)/2] ^= 1
			_ = os.WriteFile(path, b, 0o640)
		}},
		{"truncated", func(t *testing.T, path string, _ []byte) {
			b, _ := os.ReadFile(path)
			_ = os.WriteFile(path, b[:len(b)-100], 0o640)
		}},
		{"bad magic", func(t *testing.T, path string, _ []byte) {
			b, _ := os.ReadFile(path)
			b[0] = 'X'
			_ = os.WriteFile(path, b, 0o640)
		}},
	}
	for _, d := range damage {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, optStateFile)
			db, _ := openLogged(t, dir, Options{})
			fillOptOuts(t, db, n)
			db.Close()
			old, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			db, _ = openLogged(t, dir, Options{})
			if err := db.SetOptOut(dispatch.OptOut{Tenant: "acme", Channel: "sms", Address: probeAddr(n + 1), OptedOut: true}); err != nil {
				t.Fatal(err)
			}
			want := answers(t, db, n+2)
			db.Close()
			d.edit(t, path, old)
			db, loaded := openLogged(t, dir, Options{})
			defer db.Close()
			if loaded {
				t.Fatal("unusable state file was used")
			}
			if got := answers(t, db, n+2); got != want {
				t.Fatalf("\n got %s\nwant %s", got, want)
			}
		})
	}
	t.Run("saved without filter, opened with", func(t *testing.T) {
		dir := t.TempDir()
		db, _ := openLogged(t, dir, Options{NoOptOutFilter: true})
		fillOptOuts(t, db, n)
		want := answers(t, db, n)
		db.Close()
		db, loaded := openLogged(t, dir, Options{})
		if loaded || db.filter == nil {
			t.Fatalf("loaded=%v filter=%v: want a scan that builds the filter", loaded, db.filter != nil)
		}
		if got := answers(t, db, n); got != want {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
		db.Close()
		// Saved with a filter, opened without: the count is enough.
		db, loaded = openLogged(t, dir, Options{NoOptOutFilter: true})
		defer db.Close()
		if got := answers(t, db, n); !loaded || got != want {
			t.Fatalf("loaded=%v\n got %s\nwant %s", loaded, got, want)
		}
	})
}

// TestOptOutStateStaleFilterNotSaved guarantees that a filter mostly made of removed
// opt-outs is not saved, so the next Open rebuilds it.
func TestOptOutStateStaleFilterNotSaved(t *testing.T) {
	dir := t.TempDir()
	db, _ := openLogged(t, dir, Options{})
	f := db.filter
	if !f.compact(0) {
		t.Fatal("empty filter should be compact")
	}
	hs := make([]uint64, 1<<20+1)
	for i := range hs {
		hs[i] = uint64(i) * 0x9E3779B97F4A7C15
	}
	f.addMany(hs) // as if 2^20+1 opt-outs had been added and removed
	db.Close()
	if _, err := os.Stat(filepath.Join(dir, optStateFile)); !os.IsNotExist(err) {
		t.Fatalf("stale filter saved: %v", err)
	}
	db, loaded := openLogged(t, dir, Options{})
	defer db.Close()
	if loaded || len(*db.filter.layers.Load()) != 1 {
		t.Fatalf("loaded=%v layers=%d: want a scan into one layer", loaded, len(*db.filter.layers.Load()))
	}
}

const stateCrashEnv = "SENDCORE_STORAGE_STATE_CRASH_DIR"

// TestOptOutStateCrashChild is the child of TestOptOutStateCrashScans: it opens the dir
// (using the saved state), writes, says so, and waits to be killed.
func TestOptOutStateCrashChild(t *testing.T) {
	dir := os.Getenv(stateCrashEnv)
	if dir == "" {
		t.Skip("child of TestOptOutStateCrashScans")
	}
	db, err := Open(dir, Options{}, nil, nil)
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(3)
	}
	for _, o := range []dispatch.OptOut{
		{Tenant: "acme", Channel: "sms", Address: probeAddr(1), OptedOut: true},  // new
		{Tenant: "acme", Channel: "sms", Address: probeAddr(3), OptedOut: false}, // removed
		{Tenant: "acme", Channel: "all", Address: probeAddr(5), OptedOut: true},  // new, other channel
	} {
		if err := db.SetOptOut(o); err != nil {
			fmt.Println("write failed:", err)
			os.Exit(4)
		}
	}
	fmt.Println("written")
	time.Sleep(time.Minute) // killed long before
	os.Exit(5)
}

// TestOptOutStateCrashScans guarantees that opt-outs written after a fast Open and lost
// to a crash (SIGKILL, no Close) are seen by the next Open, which scans: also when an
// old state file is put back, since its sequence no longer matches.
func TestOptOutStateCrashScans(t *testing.T) {
	for _, restore := range []bool{false, true} {
		t.Run(fmt.Sprintf("old state put back=%v", restore), func(t *testing.T) {
			const n = 300
			dir := t.TempDir()
			db, _ := openLogged(t, dir, Options{})
			fillOptOuts(t, db, n)
			before := answers(t, db, n)
			c0, _ := db.CountOptOuts()
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			old, err := os.ReadFile(filepath.Join(dir, optStateFile))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestOptOutStateCrashChild$")
			cmd.Env = append(os.Environ(), stateCrashEnv+"="+dir)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, _ := bufio.NewReader(out).ReadString('\n')
			if strings.TrimSpace(line) != "written" {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("child said %q", line)
			}
			if err := cmd.Process.Kill(); err != nil { // SIGKILL: no Close
				t.Fatal(err)
			}
			_ = cmd.Wait()
			if restore {
				if err := os.WriteFile(filepath.Join(dir, optStateFile), old, 0o640); err != nil {
					t.Fatal(err)
				}
			}
			db, loaded := openLogged(t, dir, Options{})
			defer db.Close()
			if loaded {
				t.Fatal("state used after a crash")
			}
			got := answers(t, db, n)
			if got == before {
				t.Fatalf("the child's writes are missing: %s", got)
			}
			for _, c := range []struct {
				ch   dispatch.Channel
				i    int
				want bool
			}{{"sms", 1, true}, {"sms", 3, false}, {"sms", 5, true}, {"voice", 5, true}, {"sms", 6, true}, {"sms", 9, false}} {
				if ok, err := db.OptedOut("acme", c.ch, probeAddr(c.i)); err != nil || ok != c.want {
					t.Errorf("OptedOut(%s, %d) = %v, %v; want %v", c.ch, c.i, ok, err, c.want)
				}
			}
			// The child added two and removed one.
			if c, _ := db.CountOptOuts(); c != c0+1 {
				t.Errorf("count %d, want %d", c, c0+1)
			}
		})
	}
}
