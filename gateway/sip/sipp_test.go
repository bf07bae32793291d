package sip_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sendcore/sendcore/dispatch"
)

// sippPath returns the sipp binary, skipping the test when it is missing, unless
// SENDCORE_REQUIRE_SIPP=1 (CI), where a missing sipp fails the test.
func sippPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("SENDCORE_REQUIRE_SIPP") == "1" {
			t.Fatalf("sipp not in PATH and SENDCORE_REQUIRE_SIPP=1: %v", err)
		}
		t.Skip("sipp not in PATH (Debian package sip-tester); set SENDCORE_REQUIRE_SIPP=1 to require it")
	}
	return p
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// Interop with SIPp as the far end (UAS on 127.0.0.1, UDP): an answered call ends with our
// BYE, a busy one with our ACK of 486, an unanswered one with our CANCEL; SIPp exits 0
// only when its scenario (testdata/sip/*.xml) ran as written.
func TestSIPpInterop(t *testing.T) {
	sipp := sippPath(t)
	cases := []struct {
		scenario string
		status   dispatch.Status
		code     int
	}{
		{"uas_answer.xml", dispatch.StatusCompleted, 200},
		{"uas_busy.xml", dispatch.StatusBusy, 486},
		{"uas_noanswer.xml", dispatch.StatusNoAnswer, 487},
	}
	for _, tc := range cases {
		t.Run(tc.scenario, func(t *testing.T) {
			port := freeUDPPort(t)
			mport := freeUDPPort(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			scen, err := filepath.Abs(filepath.Join("..", "..", "testdata", "sip", tc.scenario))
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(ctx, sipp, "-sf", scen, "-i", "127.0.0.1", "-p", strconv.Itoa(port),
				"-mi", "127.0.0.1", "-mp", strconv.Itoa(mport), "-m", "1", "-t", "u1", "-nostdin",
				"-timeout", "15s", "-timeout_error", "-trace_err", "-error_file", filepath.Join(t.TempDir(), "err.log"))
			cmd.Dir = t.TempDir()
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()

			tr, _ := startTrunk(t, "udp", "127.0.0.1:"+strconv.Itoa(port), nil)
			c := call("+358409999999")
			c.RingTimeout = 1500 * time.Millisecond
			c.Prompt = "hello" // 200 ms of RTP into SIPp's media port
			// SIPp may not be listening yet: the INVITE is retransmitted until it is.
			r := tr.Call(ctx, c, nil)
			if r.Status != tc.status || r.SIPCode != tc.code {
				t.Errorf("result %+v, want %s %d", r, tc.status, tc.code)
			}
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("sipp: %v\n%s", err, out.String())
				}
			case <-ctx.Done():
				t.Errorf("sipp did not finish\n%s", out.String())
			}
		})
	}
}
