package control

import (
	"errors"
	"testing"

	"github.com/sendcore/sendcore/segment"
)

// segmentBuilt skips the calculator's success cases while package segment is a stub
// (it is built in parallel); the auth and bad-input cases run regardless.
func segmentBuilt(t *testing.T) {
	t.Helper()
	if _, err := segment.CountText("a", segment.Options{}); err != nil {
		var se *segment.Error
		if !errors.As(err, &se) {
			t.Skipf("package segment not built yet: %v", err)
		}
	}
}

func TestSegmentRouteInput(t *testing.T) {
	e := startEnv(t, nil, nil)
	runCases(t, e, []routeCase{
		{"no token", "POST", "/v1/segment", "", jsonCT, `{"text":"hi"}`, 401, ""},
		{"bad token", "POST", "/v1/segment", "nope", jsonCT, `{"text":"hi"}`, 401, ""},
		{"missing text", "POST", "/v1/segment", "read", jsonCT, `{"id":"x"}`, 400, "text: required"},
		{"bad encoding", "POST", "/v1/segment", "read", jsonCT, `{"text":"hi","encoding":"latin1"}`, 400, "encoding: must be auto, gsm7 or ucs2"},
		{"text not a string", "POST", "/v1/segment", "read", jsonCT, `{"text":5}`, 400, "text: must be a string"},
		{"wrong content type", "POST", "/v1/segment", "read", "text/plain", `hi`, 415, ""},
	})
}

func TestSegmentRoute(t *testing.T) {
	segmentBuilt(t)
	e := startEnv(t, nil, nil)
	long := ""
	for i := 0; i < 161; i++ {
		long += "a"
	}
	runCases(t, e, []routeCase{
		{"one gsm7 part", "POST", "/v1/segment", "read", jsonCT, `{"id":"s1","text":"hello"}`, 200, `{"id":"s1","encoding":"gsm7","segments":1,"units":5,"parts":[{"data_coding":0,"udh":"","data":"68656c6c6f"}]}`},
		{"ucs2", "POST", "/v1/segment", "read", jsonCT, `{"text":"привет"}`, 200, `"encoding":"ucs2","segments":1,"units":6`},
		{"two parts with udh", "POST", "/v1/segment", "read", jsonCT, `{"text":"` + long + `"}`, 200, `"segments":2`},
		{"gsm7 mismatch", "POST", "/v1/segment", "read", jsonCT, `{"text":"привет","encoding":"gsm7"}`, 400, "encoding_mismatch"},
	})
}
