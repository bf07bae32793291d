package dispatch

import (
	"fmt"
	"sync"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// quietHours decides whether a recipient is inside its quiet hours and when they end.
//
// The recipient's time zone comes from libphonenumber's prefix → time zone data
// (phonenumbers.GetTimezonesForPrefix on the E.164 number): the longest known prefix
// decides, so a US number gets its area code's zone. When the data lists several zones
// for a prefix (a mobile range of a multi-zone country, e.g. +7 9xx) the first listed one
// is the representative zone; when it knows none, UTC is used.
type quietHours struct {
	enabled    bool
	start, end int // minutes after local midnight
	zones      sync.Map
}

func newQuietHours(c QuietHoursConfig) (*quietHours, error) {
	q := &quietHours{enabled: c.Enabled}
	if !c.Enabled {
		return q, nil
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("dispatch: quiet_hours: %w", err)
	}
	s, _ := time.Parse("15:04", c.Start)
	e, _ := time.Parse("15:04", c.End)
	q.start, q.end = s.Hour()*60+s.Minute(), e.Hour()*60+e.Minute()
	if q.start == q.end {
		q.enabled = false
	}
	return q, nil
}

// location returns the representative time zone of an E.164 number.
func (q *quietHours) location(to string) *time.Location {
	name := "UTC"
	if tzs, err := phonenumbers.GetTimezonesForPrefix(to); err == nil && len(tzs) > 0 && tzs[0] != phonenumbers.UNKNOWN_TIMEZONE {
		name = tzs[0]
	}
	if l, ok := q.zones.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		l = time.UTC
	}
	q.zones.Store(name, l)
	return l
}

// until returns the end of the quiet period that now is in for to, or the zero time
// when now is not inside quiet hours.
func (q *quietHours) until(to string, now time.Time) time.Time {
	if !q.enabled {
		return time.Time{}
	}
	local := now.In(q.location(to))
	m := local.Hour()*60 + local.Minute()
	var quiet bool
	if q.start < q.end {
		quiet = m >= q.start && m < q.end
	} else {
		quiet = m >= q.start || m < q.end
	}
	if !quiet {
		return time.Time{}
	}
	y, mo, d := local.Date()
	end := time.Date(y, mo, d, q.end/60, q.end%60, 0, 0, local.Location())
	if !end.After(local) {
		end = time.Date(y, mo, d+1, q.end/60, q.end%60, 0, 0, local.Location())
	}
	return end.UTC()
}
