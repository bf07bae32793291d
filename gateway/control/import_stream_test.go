package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// streamImporter counts the rows it reads and closes started after the first one.
type streamImporter struct {
	started chan struct{}
	rows    atomic.Int64
}

func (s *streamImporter) importCSV(r io.Reader) (ImportResult, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if n++; n == 1 {
				close(s.started)
			}
		}
		if err == io.EOF {
			s.rows.Store(int64(n))
			return ImportResult{Imported: n}, nil
		}
		if err != nil {
			s.rows.Store(int64(n))
			return ImportResult{Imported: n}, fmt.Errorf("reading CSV: %w", err)
		}
	}
}

func startImportEnv(t *testing.T, mutate func(*Config)) (*env, *streamImporter) {
	t.Helper()
	imp := &streamImporter{started: make(chan struct{})}
	b := fullBackend(&env{})
	b.ImportOptOuts = imp.importCSV
	return startEnv(t, mutate, &b), imp
}

// rowsBody writes n CSV rows; after the first `before` rows it waits for gate (a closed
// channel, or one that is closed when the server has started importing) and fails the
// body if it does not come in time.
func rowsBody(n, before int, gate <-chan struct{}) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 64<<10)
		for i := range n {
			if i == before {
				if err := bw.Flush(); err != nil {
					return
				}
				select {
				case <-gate:
				case <-time.After(10 * time.Second):
					pw.CloseWithError(errors.New("the server did not start importing before the whole body was sent"))
					return
				}
			}
			fmt.Fprintf(bw, "default,sms,+3584%08d\n", i)
		}
		pw.CloseWithError(bw.Flush())
	}()
	return pr
}

func postImport(t *testing.T, e *env, body io.Reader, size int64) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", e.url+"/v1/optouts/import", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size // -1: chunked
	req.Header.Set("Authorization", "Bearer "+e.writeTok)
	req.Header.Set("Content-Type", "text/csv")
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST import: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestImportStreamsLargeBody guarantees that the import route hands the body to the
// importer as it arrives: the client holds back all but the first rows until the
// importer has seen one, which deadlocks (and fails) if the server reads the whole body
// first. 1.2M rows (about 30 MB), chunked and with a Content-Length.
func TestImportStreamsLargeBody(t *testing.T) {
	const rows = 1_200_000
	const rowLen = len("default,sms,+358400000000\n")
	for _, chunked := range []bool{true, false} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			e, imp := startImportEnv(t, func(c *Config) { c.MaxBodyBytes = 64 << 20 })
			size := int64(-1)
			if !chunked {
				size = int64(rows * rowLen)
			}
			st, body := postImport(t, e, rowsBody(rows, 20_000, imp.started), size)
			if st != 200 {
				t.Fatalf("status %d: %s", st, body)
			}
			var res map[string]any
			if err := json.Unmarshal([]byte(body), &res); err != nil {
				t.Fatal(err)
			}
			if res["imported"] != float64(rows) || imp.rows.Load() != rows {
				t.Fatalf("answer %s, importer read %d rows; want %d", body, imp.rows.Load(), rows)
			}
		})
	}
}

// TestImportStreamLimits guarantees the answers of a streamed import that goes wrong
// midway: over max_body_bytes (chunked, so only found while reading) is 413, bytes that
// are not UTF-8 are 400, and both stop the importer.
func TestImportStreamLimits(t *testing.T) {
	closed := make(chan struct{})
	close(closed)
	t.Run("chunked over max_body_bytes", func(t *testing.T) {
		e, imp := startImportEnv(t, func(c *Config) { c.MaxBodyBytes = 1 << 20 })
		st, body := postImport(t, e, rowsBody(100_000, 0, closed), -1) // about 2.6 MB
		if st != 413 || !strings.Contains(body, "body exceeds 1048576 bytes") {
			t.Fatalf("status %d: %s", st, body)
		}
		if n := imp.rows.Load(); n == 0 || n >= 100_000 {
			t.Fatalf("importer read %d rows: want it stopped at the limit", n)
		}
	})
	t.Run("content-length over max_body_bytes", func(t *testing.T) {
		e, imp := startImportEnv(t, func(c *Config) { c.MaxBodyBytes = 1 << 20 })
		// Raw: the server answers and closes before the body is sent, which an
		// http.Client may report as a write error instead of the answer.
		st, body := rawRequest(t, e.s.Addr().String(), []byte("POST /v1/optouts/import HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+e.writeTok+
			"\r\nContent-Type: text/csv\r\nContent-Length: 2000000\r\n\r\n"+strings.Repeat("default,sms,+358401234567\n", 100)))
		if st != 413 || imp.rows.Load() != 0 {
			t.Fatalf("status %d, importer read %d rows: %s", st, imp.rows.Load(), body)
		}
	})
	t.Run("invalid UTF-8 after 100 KB", func(t *testing.T) {
		e, imp := startImportEnv(t, nil)
		in := strings.Repeat("default,sms,+358401234567\n", 4000) + "default,sms,+3584\xff1234567\n" + strings.Repeat("default,sms,+358401234567\n", 10)
		st, body := postImport(t, e, strings.NewReader(in), int64(len(in)))
		if st != 400 || !strings.Contains(body, "body: not valid UTF-8") {
			t.Fatalf("status %d: %s", st, body)
		}
		if n := imp.rows.Load(); n >= 4011 {
			t.Fatalf("importer read %d rows: want it stopped", n)
		}
	})
}

// TestImportSlowClientWithinReadTimeout guarantees that read_timeout bounds each read of
// a streamed import, not the whole import: a client that sends a row every 100 ms for
// longer than read_timeout succeeds.
func TestImportSlowClientWithinReadTimeout(t *testing.T) {
	e, _ := startImportEnv(t, func(c *Config) { c.ReadTimeout = 400 * time.Millisecond })
	pr, pw := io.Pipe()
	go func() {
		for i := range 10 {
			if _, err := fmt.Fprintf(pw, "default,sms,+3584%08d\n", i); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond) // the client's pace, not a wait for the server
		}
		pw.Close()
	}()
	st, body := postImport(t, e, pr, -1)
	if st != 200 || !strings.Contains(body, `"imported":10`) {
		t.Fatalf("status %d: %s", st, body)
	}
}

// TestImportBodyUTF8AcrossReads checks the streaming UTF-8 check against utf8.Valid on
// every split of valid and invalid inputs into reads.
func TestImportBodyUTF8AcrossReads(t *testing.T) {
	inputs := []string{
		"", "abc", "é", "日本語", "😀x😀", "a\xffb", "\xe6\x97", "\xe6\x97\xa5\xe6", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"\xef\xbf\xbd", "ab\xc3", "\xc3\x28", "x\xf0\x9f\x98", strings.Repeat("é", 50) + "\x80",
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = []byte{'a', 0xc3, 0xa9, 0xe6, 0x97, 0xa5, 0xf0, 0x9f, 0x98, 0x80, 0xff}[r.IntN(11)]
		}
		inputs = append(inputs, string(b))
	}
	for _, in := range inputs {
		want := utf8.ValidString(in)
		for split := 1; split <= len(in)+1; split++ {
			got := readAllSplit(in, split)
			if got != want {
				t.Fatalf("%q in reads of %d: valid=%v, want %v", in, split, got, want)
			}
		}
	}
}

// readAllSplit reads in through importBody in reads of at most split bytes and reports
// whether it was accepted as UTF-8.
func readAllSplit(in string, split int) bool {
	b := &importBody{r: &splitReader{s: in, n: split}, max: 1 << 20}
	buf := make([]byte, 64)
	for {
		_, err := b.Read(buf)
		if err == io.EOF {
			return b.err == nil
		}
		if err != nil {
			return false
		}
	}
}

type splitReader struct {
	s string
	n int
}

func (r *splitReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.s)
	r.s = r.s[k:]
	if r.s == "" {
		return k, io.EOF
	}
	return k, nil
}
