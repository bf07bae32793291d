package dispatch

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateRequestNamesTheField(t *testing.T) {
	for _, tt := range []struct{ in, reason, field string }{
		{`{"id":"a","channel":"sms","to":"+358401234567","text":"hi"}`, "", ""},
		{`{"id":"a","channel":"sms","to":"nope","text":"hi"}`, ReasonInvalidAddress, "to"},
		{`{"id":"a","channel":"fax","to":"+358401234567","text":"hi"}`, "", "channel"},
		{`{"id":"a","channel":"sms","to":"+358401234567"}`, "", "text"},
		{`{"id":"a","channel":"sms","to":"+358401234567","text":"ç","encoding":"gsm7"}`, "encoding_mismatch", ""},
		{`not json`, ReasonInvalidJSON, ""},
	} {
		err := ValidateRequest([]byte(tt.in), 0, false)
		if tt.reason == "" && tt.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.in, err)
			}
			continue
		}
		var re *RequestError
		if !errors.As(err, &re) {
			t.Fatalf("%s: want *RequestError, got %v", tt.in, err)
		}
		if tt.reason != "" && re.Reason != tt.reason {
			t.Errorf("%s: reason %q, want %q", tt.in, re.Reason, tt.reason)
		}
		if tt.field != "" && !strings.Contains(re.Detail, tt.field) {
			t.Errorf("%s: detail %q does not name %q", tt.in, re.Detail, tt.field)
		}
	}
}
