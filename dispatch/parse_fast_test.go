package dispatch

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/sendcore/sendcore/segment"
)

// fastSeeds are request values of the shapes the fast decoder takes, and some it must
// hand to encoding/json.
var fastSeeds = []string{
	`{"id":"b1-0","channel":"sms","tenant":"default","to":"+358401234567","text":"Your code is 123456","campaign":"bench","dlr":true,"meta":{"bench_kind":"gsm","bench_t0":"1764255845120034000"}}`,
	` { "id" : "x" , "text" : "tab\there \"q\" \\ \/ \u00e9\u20ac \ud83d\ude00" , "meta" : { } , "smart_encoding" : false } `,
	`{"id":"x","meta":{"a":"1","a":"2"}}`,
	`{"id":"x","id":"y"}`,
	`{"ID":"x"}`,
	`{"id":null}`,
	`{"id":"x","voice":{"ring_timeout_s":5}}`,
	`{"id":"x","not_before":"2026-01-01T00:00:00Z"}`,
	`{"id":"x"} trailing`,
	`{"id":"x",}`,
	`{"id":"\u0000\u001f"}`,
	`{"text":"\ud800"}`,
	`{}`,
	`[]`,
	`{"dlr":"true"}`,
	`{"meta":{"k":1}}`,
	`{"id":"x","from":"Sendcore","pool":"p","encoding":"gsm7","module":"m","priority":"high"}`,
}

// TestDecodeRequestFastTakesCommonShape: the bench's and the contract's common requests
// go through the fast path (otherwise it saves nothing).
func TestDecodeRequestFastTakesCommonShape(t *testing.T) {
	for _, s := range []string{fastSeeds[0], fastSeeds[16], ` { "id" : "x" , "text" : "tab\there \"q\" \\ \/ \u00e9\u20ac" , "meta" : { } , "smart_encoding" : false } `} {
		var r Request
		if !decodeRequestFast([]byte(s), &r) {
			t.Errorf("not taken: %s", s)
		}
	}
}

// TestDecodeRequestFastSameAsEncodingJSON guarantees that whatever the fast decoder takes
// it decodes exactly as encoding/json does (what it refuses goes to encoding/json, so
// parseRequest's results and rejections are unchanged).
func TestDecodeRequestFastSameAsEncodingJSON(t *testing.T) {
	for _, s := range fastSeeds {
		t.Run(s, func(t *testing.T) { checkFastDecode(t, []byte(s)) })
	}
}

func FuzzDecodeRequestFast(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkFastDecode(t, b) })
}

func checkFastDecode(t *testing.T, b []byte) {
	t.Helper()
	if !utf8.Valid(b) {
		return
	}
	var fast Request
	if decodeRequestFast(b, &fast) {
		var ref Request
		if err := json.Unmarshal(b, &ref); err != nil {
			t.Fatalf("fast path took %q, encoding/json refuses it: %v", b, err)
		}
		if !reflect.DeepEqual(fast, ref) {
			t.Fatalf("fast path differs on %q\n fast %#v\n json %#v", b, fast, ref)
		}
	}
}

// BenchmarkParseRequest: parse and validate the bench's 1-segment GSM request, with the
// fast decoder (fast) and with encoding/json alone (json, what parseRequest did before).
func BenchmarkParseRequest(b *testing.B) {
	v := []byte(fastSeeds[0])
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if p := parseRequest(v, 64<<10, false, segment.CountText); p.bad != nil {
				b.Fatal(p.bad)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var p parsed
			if err := json.Unmarshal(v, &p.req); err != nil {
				b.Fatal(err)
			}
			if p.bad = validate(&p, false, segment.CountText); p.bad != nil {
				b.Fatal(p.bad)
			}
		}
	})
}
