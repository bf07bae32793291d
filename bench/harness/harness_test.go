package harness

import (
	"context"
	"errors"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/sendcore/sendcore/gateway"
	"github.com/sendcore/sendcore/storage"
)

// Start brings up the gateway with its embedded peers (broker, SMSC, SIP endpoint,
// control plane on a free port); Close stops everything and removes the temporary data
// directory.
func TestStartClose(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole gateway")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prepared := false
	s, err := Start(ctx, Options{Control: true, AdminToken: "harness-token-0123456789", Binds: 2, Window: 5,
		Prepare: func(db *storage.DB) error { prepared = true; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Config.DataDir
	if !prepared || len(s.Brokers) == 0 || s.SMSC == nil || s.UAS == nil || s.ControlURL == "" ||
		s.Config.SMPP[0].Binds != 2 || s.Config.SMPP[0].Window != 5 {
		t.Fatalf("stack %+v prepared %v", s, prepared)
	}
	resp, err := http.Get(s.ControlURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, s.ControlURL+"/v1/pools", nil)
	req.Header.Set("Authorization", "Bearer harness-token-0123456789")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the admin token is refused: /v1/pools %d", resp.StatusCode)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("data dir %s left behind: %v", dir, err)
	}
}

// TestStartFailureStopsWhatStarted guarantees that a Start that fails after its peers
// are up (here a Tune error) returns the error instead of panicking, and removes its
// temporary data directory (its peers are closed with it).
func TestStartFailureStopsWhatStarted(t *testing.T) {
	var dir string
	bad := errors.New("bad setting")
	s, err := Start(context.Background(), Options{Tune: func(cfg *gateway.Config) error {
		dir = cfg.DataDir
		return bad
	}})
	if s != nil || !errors.Is(err, ErrStart) || !errors.Is(err, bad) {
		t.Fatalf("Start = %v, %v; want nil and an ErrStart wrapping the Tune error", s, err)
	}
	if dir == "" {
		t.Fatal("Tune was not called")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("data dir %s left behind: %v", dir, err)
	}
}
