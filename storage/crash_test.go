package storage_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/storage"
)

const crashDirEnv = "SENDCORE_STORAGE_CRASH_DIR"

// TestCrashChild is the child of TestCrashKeepsAcknowledgedWrites: it writes until it is
// killed and prints one line per acknowledged write, after the call returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child of TestCrashKeepsAcknowledgedWrites")
	}
	db, err := storage.Open(dir, storage.Options{}, nil, nil)
	if err != nil {
		fmt.Println("open failed:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	ack := func(kind, id string) {
		mu.Lock()
		fmt.Printf("%s %s\n", kind, id)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("g%d-%d", g, i)
				if _, _, err := db.Claim(id, "src", time.Now()); err != nil {
					os.Exit(4)
				}
				ack("claim", id)
				batch := make([]dispatch.Event, 10)
				for j := range batch {
					batch[j] = dispatch.Event{ID: id, Status: dispatch.StatusAccepted}
				}
				batch[9].Status = dispatch.StatusDelivered
				seqs, err := db.AppendSeqs(batch)
				if err != nil {
					os.Exit(4)
				}
				ack("terminal", id)
				if i%2 == 1 { // every other batch published: the watermark has holes to skip
					if err := db.Published(seqs); err != nil {
						os.Exit(4)
					}
				} else {
					for _, q := range seqs {
						ack("unpublished", strconv.FormatUint(q, 10))
					}
				}
				addr := fmt.Sprintf("+35840%d%06d", g, i)
				if err := db.SetOptOut(dispatch.OptOut{Channel: "sms", Address: addr, OptedOut: true}); err != nil {
					os.Exit(4)
				}
				ack("optout", addr)
				if err := db.Hold(dispatch.Scheduled{ID: id, Due: time.Now().Add(time.Hour)}); err != nil {
					os.Exit(4)
				}
				ack("hold", id)
			}
		})
	}
	wg.Wait()
}

// TestCrashKeepsAcknowledgedWrites guarantees that every write acknowledged before a
// SIGKILL of the process (claims, terminal states, opt-outs, schedule) is there on reopen,
// and that every event appended and not published is offered by the outbox again.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked [][2]string
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue // test framework lines
		}
		acked = append(acked, [2]string{f[0], f[1]})
		if len(acked) == 4000 && !killed {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL, mid-batch
				t.Fatal(err)
			}
			killed = true
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("child ended before the kill after %d acknowledgements", len(acked))
	}
	db := openDB(t, dir, storage.Options{})
	defer db.Close()
	offered := map[string]bool{}
	if err := db.Outbox(0, func(seq uint64, e dispatch.Event) error {
		offered[strconv.FormatUint(seq, 10)] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	missing, holds := 0, 0
	for _, a := range acked {
		var ok bool
		switch a[0] {
		case "claim":
			_, ok, err = db.Claim(a[1], "check", time.Now())
		case "terminal":
			var c dispatch.Claim
			c, ok, err = db.Claim(a[1], "check", time.Now())
			ok = ok && c.Terminal == dispatch.StatusDelivered
		case "optout":
			ok, err = db.OptedOut("default", "sms", a[1])
		case "hold":
			holds++
			ok = true // counted below: holds are distinct ids
		case "unpublished":
			ok = offered[a[1]]
		}
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			missing++
			if missing < 10 {
				t.Errorf("acknowledged %s %s lost in the crash", a[0], a[1])
			}
		}
	}
	if n, _ := db.Len(); n < holds {
		t.Errorf("schedule holds %d items, %d were acknowledged", n, holds)
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", missing, len(acked))
	}
	t.Logf("%d acknowledged writes survived SIGKILL", len(acked))
}
