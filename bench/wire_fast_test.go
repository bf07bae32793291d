package bench

import (
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// eventShapes are events as the gateway writes them (contract §3), plus the JSON corners
// the fast decoder must handle exactly as encoding/json does (fast: the fast path takes
// them rather than falling back).
var eventShapes = []struct {
	name, json string
	fast       bool
}{
	{"accepted", `{"id":"b1-7","tenant":"default","campaign":"bench","channel":"sms","to":"+358400000003","from":"","status":"accepted","ts":"2026-11-27T17:31:18.123456789Z","node":"n1","meta":{"bench_kind":"gsm","bench_t0":"1795800678123456789"}}`, true},
	{"submitted", `{"id":"b1-7","tenant":"default","campaign":"bench","channel":"sms","to":"+358400000003","from":"SENDCORE","status":"submitted","ts":"2026-11-27T17:31:18.2Z","node":"n1","meta":{"bench_kind":"gsm_multi","bench_t0":"1795800678123456789"},"segments":2,"encoding":"gsm7","connection":"smsc-a/1","smsc_ids":["a1","a2"]}`, true},
	{"delivered with parts", `{"id":"r-1","tenant":"t","campaign":"c","channel":"sms","to":"+46700000001","from":"X","status":"delivered","ts":"2026-11-27T17:31:19Z","node":"n1","meta":{"k":"v"},"segments":2,"encoding":"ucs2","smsc_ids":["a1","a2"],"parts":[{"part":1,"smsc_id":"a1","state":"DELIVRD"},{"part":2,"smsc_id":"a2","state":"DELIVRD","err":"000"}]}`, true},
	{"undelivered part", `{"id":"r-2","tenant":"t","campaign":"","channel":"sms","to":"+46700000001","from":"","status":"undelivered","ts":"2026-11-27T17:31:19.5+02:00","node":"n1","meta":null,"segments":1,"part":1,"parts":[{"part":1,"smsc_id":"z","state":"UNDELIV","err":"0x0b"}]}`, true},
	{"rejected", `{"id":"r-3","tenant":"","campaign":"","channel":"","to":"","from":"","status":"rejected","ts":"2026-11-27T17:31:18Z","node":"n1","meta":null,"reason":"invalid_json","detail":"unexpected end of JSON input \u003c\u003e \u0026"}`, true},
	{"failed", `{"id":"r-4","tenant":"t","campaign":"c","channel":"sms","to":"+358401","from":"","status":"failed","ts":"2026-11-27T17:31:18Z","node":"n1","meta":{},"reason":"smpp_0x00000045","detail":"submit_sm_resp 0x45"}`, true},
	{"voice completed", `{"id":"v-1","tenant":"t","campaign":"c","channel":"voice","to":"+358401","from":"+35890000001","status":"completed","ts":"2026-11-27T17:31:18Z","node":"n1","meta":{"bench_kind":"voice"},"duration_ms":1042,"pool":"bench-callers"}`, true},
	{"whitespace", " \t\r\n{ \"id\" : \"x\" ,\n\"segments\" : 3 , \"meta\" : { \"a\" : \"b\" } }\n ", true},
	{"escapes", `{"id":"a\"b\\c\/d\b\f\n\r\t","to":"\u00e9\u20AC","meta":{"\u0000k":"\ud83d\udd14 \u2028"}}`, true},
	{"lone and reversed surrogates", `{"id":"\ud83d x","to":"\udd14\ud83d","from":"\ud83d\u0041","meta":{"k":"\ud800\ud800\udc00"}}`, true},
	{"invalid utf-8", "{\"id\":\"a\xffb\",\"to\":\"\xed\xa0\x80\",\"from\":\"\\n\xc3\"}", true},
	{"nulls keep fields", `{"id":"x","id":null,"segments":2,"segments":null,"ts":null,"meta":{"a":"1"},"meta":{"b":"2"}}`, true},
	{"meta null after object", `{"meta":{"a":"1"},"meta":null}`, true},
	{"duplicate keys last wins", `{"status":"accepted","status":"submitted","meta":{"a":"1","a":"2"}}`, true},
	{"unknown values", `{"x":{"y":[1,-2.5e+3,true,false,null,{"z":"\u0041"}],"w":{}},"v":[],"u":-0,"t":0.1E1,"id":"i"}`, true},
	{"empty object", `{}`, true},
	{"negative zero", `{"segments":-0,"duration_ms":-12}`, true},
	// Not understood: encoding/json decides (same result by construction).
	{"folded key", `{"ID":"x","Status":"submitted"}`, false},
	{"unicode folded key", "{\"\u017Ftatus\":\"submitted\"}", false},
	{"escaped key", `{"\u0069d":"x"}`, true},
	{"number as string", `{"segments":"2"}`, false},
	{"fraction", `{"segments":2.0}`, false},
	{"overflow", `{"duration_ms":9223372036854775808}`, false},
	{"meta null value", `{"meta":{"a":null}}`, false},
	{"ts number", `{"ts":5}`, false},
	{"ts escaped", `{"ts":"2026-11-27T17:31:18\u005a"}`, false},
	{"ts bad", `{"ts":"yesterday"}`, false},
	{"top-level null", `null`, false},
	{"trailing data", `{"id":"x"} {}`, false},
	{"control char", "{\"id\":\"a\x01\"}", false},
	{"truncated", `{"id":"x","meta":{"a":`, false},
	{"bad literal", `{"x":nul}`, false},
	{"leading zero", `{"x":01}`, false},
}

// The fast decoder returns exactly what encoding/json returns, and takes the shapes the
// gateway writes (rather than quietly falling back on them).
func TestDecodeEventShapes(t *testing.T) {
	for _, tc := range eventShapes {
		t.Run(tc.name, func(t *testing.T) {
			var want Event
			wantErr := json.Unmarshal([]byte(tc.json), &want)
			fast, ok := decodeEventFast([]byte(tc.json))
			if ok != tc.fast {
				t.Fatalf("fast path taken = %v, want %v", ok, tc.fast)
			}
			if ok {
				if wantErr != nil {
					t.Fatalf("fast path accepted what encoding/json rejects (%v): %+v", wantErr, fast)
				}
				if !reflect.DeepEqual(fast, want) {
					t.Fatalf("fast decode\n got %+v\nwant %+v", fast, want)
				}
			}
			got, err := DecodeEvent([]byte(tc.json))
			if (err != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("DecodeEvent = %+v, %v; want %+v, %v", got, err, want, wantErr)
			}
		})
	}
}

// Deep nesting in an unknown value is left to encoding/json rather than recursed into.
func TestDecodeEventDeepNesting(t *testing.T) {
	deep := `{"x":`
	for range 100 {
		deep += "["
	}
	for range 100 {
		deep += "]"
	}
	deep += `,"id":"y"}`
	if _, ok := decodeEventFast([]byte(deep)); ok {
		t.Fatal("fast path took 100 levels of nesting")
	}
	ev, err := DecodeEvent([]byte(deep))
	if err != nil || ev.ID != "y" {
		t.Fatalf("DecodeEvent = %+v, %v", ev, err)
	}
}

// Whenever encoding/json decodes a record, DecodeEvent returns the same Event; whatever
// the record, DecodeEvent does not panic, and its fast path never accepts what
// encoding/json rejects.
func FuzzDecodeEvent(f *testing.F) {
	for _, tc := range eventShapes {
		f.Add([]byte(tc.json))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		var want Event
		wantErr := json.Unmarshal(value, &want)
		got, err := DecodeEvent(value)
		if wantErr == nil && (err != nil || !reflect.DeepEqual(got, want)) {
			t.Fatalf("DecodeEvent(%q) = %+v, %v; encoding/json: %+v", value, got, err, want)
		}
		if fast, ok := decodeEventFast(value); ok && (wantErr != nil || !reflect.DeepEqual(fast, want)) {
			t.Fatalf("fast path on %q = %+v; encoding/json: %+v, %v", value, fast, want, wantErr)
		}
	})
}

// refBuild is the former build: a Request through encoding/json.
func refBuild(t testing.TB, b *builder, n int, t0 time.Time) (key, value []byte, kind string) {
	t.Helper()
	kind = b.t.Mix.kind(b.rng.Float64())
	to := Recipient(b.rng.IntN(b.t.Recipients))
	r := Request{
		ID: b.t.RunID + "-" + strconv.Itoa(n), Channel: "sms", Tenant: b.t.Tenant, To: to,
		Campaign: b.t.Campaign,
		Meta:     map[string]string{MetaT0: strconv.FormatInt(t0.UnixNano(), 10), MetaKind: kind},
	}
	switch kind {
	case KindVoice:
		r.Channel, r.Pool, r.Voice = "voice", b.t.VoicePool, &Voice{RingTimeoutS: 5, MaxDurationS: 1}
	case KindGSM:
		r.Text = TextGSM
	case KindGSMMulti:
		r.Text = TextGSMMulti
	case KindUCS2:
		r.Text = TextUCS2
	}
	if r.Channel == "sms" {
		dlr := b.dlr
		r.DLR = &dlr
	}
	v, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(to), v, kind
}

// build writes byte for byte what encoding/json wrote, for every kind, several seeds, and
// names that need escaping; earlier keys and values are not overwritten by later builds.
func TestBuild(t *testing.T) {
	mix := Mix{UCS2: 0.25, Multipart: 0.25, Voice: 0.25}
	for _, tc := range []struct {
		name string
		t    Traffic
	}{
		{"plain", Traffic{Requests: 1, Mix: mix, RunID: "b1", Tenant: "default", Campaign: "bench", VoicePool: "p", Seed: 1}},
		{"receipts", Traffic{Requests: 1, Mix: mix, RunID: "b2", Tenant: "default", Campaign: "bench", VoicePool: "p", DLR: true, Seed: 2}},
		{"no tenant or campaign", Traffic{Requests: 1, Mix: mix, RunID: "r", VoicePool: "p", Seed: 3, Recipients: 7}},
		{"escapes", Traffic{Requests: 1, Mix: mix, RunID: "a<b>&\"\\\n\u2028\xff", Tenant: "t\t🔔",
			Campaign: "c\u2029</script>", VoicePool: "p\x01é", Seed: 4}},
		{"long names", Traffic{Requests: 1, Mix: mix, RunID: string(make([]byte, 3000)), Campaign: "c", VoicePool: "v", Seed: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ref := newBuilder(tc.t), newBuilder(tc.t)
			t0 := time.Unix(1795800678, 123456789)
			type msg struct{ key, value []byte }
			var keep []msg
			var wants []msg
			kinds := map[string]bool{}
			for n := range 400 {
				at := t0.Add(time.Duration(n) * time.Millisecond)
				k, v, kind := got.build(n, at)
				wk, wv, wkind := refBuild(t, ref, n, at)
				if kind != wkind || string(k) != string(wk) || string(v) != string(wv) {
					t.Fatalf("build(%d) = %q %s %s\nwant %q %s %s", n, k, v, kind, wk, wv, wkind)
				}
				kinds[kind] = true
				keep, wants = append(keep, msg{k, v}), append(wants, msg{wk, wv})
				_ = append(k, "overwrite?"...) // capped: must not reach the next message
				_ = append(v, "overwrite?"...)
			}
			for i := range keep {
				if string(keep[i].key) != string(wants[i].key) || string(keep[i].value) != string(wants[i].value) {
					t.Fatalf("message %d changed after later builds: %q %s", i, keep[i].key, keep[i].value)
				}
			}
			if len(kinds) != 4 {
				t.Fatalf("kinds built = %v, want all four", kinds)
			}
		})
	}
}

// appendRecipient writes Recipient(i).
func TestAppendRecipient(t *testing.T) {
	for _, i := range []int{0, 1, 2, 3, 9999, 10000, 19_999_999, 20_000_000, 20_000_001, 1 << 40} {
		if got, want := string(appendRecipient(nil, i)), Recipient(i); got != want {
			t.Errorf("appendRecipient(%d) = %q, want %q", i, got, want)
		}
	}
}

// appendRequest writes what encoding/json.Marshal writes for any request it takes.
func FuzzAppendRequest(f *testing.F) {
	f.Add("b1-1", "sms", "default", "+358400000001", "", "", TextUCS2, "", "bench", "", true, 0, 0, "", "bench_kind", "gsm")
	f.Add("<&>", "voice", "", "\u2028", "\xff", "p", "\x00\x1f\"\\", "UCS2", "", "m", false, 5, 1, "hi", "", "")
	f.Fuzz(func(t *testing.T, id, channel, tenant, to, from, pool, text, enc, campaign, module string,
		dlr bool, ring, maxDur int, prompt, mk, mv string) {
		r := Request{ID: id, Channel: channel, Tenant: tenant, To: to, From: from, Pool: pool, Text: text,
			Encoding: enc, Campaign: campaign, Module: module, Meta: map[string]string{mk: mv, "z": mv + "1"}}
		if dlr {
			r.DLR = &dlr
			r.Voice = &Voice{RingTimeoutS: ring, MaxDurationS: maxDur, Prompt: prompt}
		}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendRequest([]byte("prefix"), &r)
		if !ok || string(got) != "prefix"+string(want) {
			t.Fatalf("appendRequest = %s, %v\nwant prefix%s", got, ok, want)
		}
	})
}

// A request with a time is left to encoding/json.
func TestAppendRequestTimes(t *testing.T) {
	now := time.Now()
	if b, ok := appendRequest(nil, &Request{ID: "x", NotBefore: &now}); ok || b != nil {
		t.Fatalf("appendRequest with not_before = %s, %v; want not taken", b, ok)
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	value := []byte(eventShapes[1].json) // submitted: the event the tally decodes most
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeEvent(value); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ev Event
			if err := json.Unmarshal(value, &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkBuild(b *testing.B) {
	tr := Traffic{Requests: 1, RunID: "b1x2y3", Tenant: "default", Campaign: "bench", Seed: 1}
	t0 := time.Now()
	b.Run("append", func(b *testing.B) {
		bl := newBuilder(tr)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			bl.build(n, t0)
			n++
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		bl := newBuilder(tr)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			refBuild(b, bl, n, t0)
			n++
		}
	})
}
