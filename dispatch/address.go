package dispatch

import (
	"errors"
	"fmt"

	"github.com/nyaruka/phonenumbers"
)

// ErrInvalidAddress is wrapped by NormalizeE164 failures.
var ErrInvalidAddress = errors.New("dispatch: invalid address")

// NormalizeE164 returns s as E.164 ("+" and digits). Numbers in national form are read in
// defaultRegion (an ISO 3166 code such as "FI"; "" accepts only international forms).
//
// An input already in canonical E.164 form whose country calling code exists is returned
// as is without calling the parser: it is the common case on the hot path, and
// phonenumbers.Parse costs microseconds and several allocations per call.
func NormalizeE164(s, defaultRegion string) (string, error) {
	if canonical(s) {
		return s, nil
	}
	num, err := phonenumbers.Parse(s, defaultRegion)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidAddress, s, err)
	}
	if !phonenumbers.IsPossibleNumber(num) {
		return "", fmt.Errorf("%w: %q: not a possible number", ErrInvalidAddress, s)
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// canonical reports whether s is "+" then 7..15 digits, not starting with 0, with a
// country calling code that exists (1 to 3 leading digits).
func canonical(s string) bool {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	cc := 0
	for i := 1; i <= 3; i++ {
		cc = cc*10 + int(s[i]-'0')
		if r := phonenumbers.GetRegionCodeForCountryCode(cc); r != "ZZ" && r != "" {
			return true
		}
	}
	return false
}
