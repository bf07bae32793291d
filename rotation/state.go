package rotation

import (
	"errors"
	"fmt"
	"time"
)

// Errors of the package.
var (
	// ErrExhausted: no number of the pool may be used now. Pick returns it with the instant
	// the earliest number becomes usable (zero when none ever will, e.g. all disabled).
	ErrExhausted = errors.New("rotation: pool exhausted")
	// ErrInvalidPool wraps a configuration error; the message names the key.
	ErrInvalidPool = errors.New("rotation: invalid pool")
	// ErrUnknownNumber: the number is not in the pool.
	ErrUnknownNumber = errors.New("rotation: unknown number")
)

// State is the state of a number of a pool.
type State uint8

// States. Resting is derived: the number is fine but in its cooldown or at a cap.
const (
	StateActive      State = iota // may be picked
	StateResting                  // in cooldown or at its hourly or daily cap
	StateQuarantined              // success rate well below its pool's: rests until Until
	StateProbation                // back from quarantine with a limited share of picks
	StateDisabled                 // disabled by configuration
)

var stateNames = [...]string{"active", "resting", "quarantined", "probation", "disabled"}

// String returns the state's name as shown in /v1/pools and metrics.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// MarshalText makes a State its name in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("rotation: unknown state %q", b)
}

// NumberView is the observable state of one number at an instant.
type NumberView struct {
	Number   string `json:"number"`
	State    State  `json:"state"`
	Weight   int    `json:"weight"`
	UsesHour int    `json:"uses_hour"`
	UsesDay  int    `json:"uses_day"`
	// Until is when a resting or quarantined number becomes usable, if known.
	Until *time.Time `json:"until,omitempty"`
	// Samples and Successes are the outcomes in the health window; SuccessRate is their
	// ratio, 0 without samples.
	Samples     int     `json:"samples"`
	Successes   int     `json:"successes"`
	SuccessRate float64 `json:"success_rate"`
}

// PoolHealth is the pool-wide outcome count in the health window.
type PoolHealth struct {
	Samples     int     `json:"samples"`
	Successes   int     `json:"successes"`
	SuccessRate float64 `json:"success_rate"`
}
