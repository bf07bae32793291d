package dispatch

import (
	"fmt"
	"strings"
)

// ValidatePrefixes checks the destination prefixes of a route (an SMSC connection's or a
// SIP trunk's `routes`): at least one, each "*" (the default route) or "+" and digits.
// The error names the bad entry relative to the key: "routes[1]: ...".
func ValidatePrefixes(routes []string) error {
	if len(routes) == 0 {
		return fmt.Errorf("routes: must list at least one prefix or \"*\"")
	}
	for i, r := range routes {
		if r != "*" && (!strings.HasPrefix(r, "+") || len(r) < 2 || strings.Trim(r[1:], "0123456789") != "") {
			return fmt.Errorf("routes[%d]: must be \"*\" or \"+\" and digits, got %q", i, r)
		}
	}
	return nil
}
