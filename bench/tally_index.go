package bench

// idIndex is the Tally's per-request state, kept without pointers. A run's ids are
// "<prefix><n>" (Traffic.RunID), so the state of request n is slots[n] and a status is a
// one-byte code: the garbage collector has nothing to scan here however long the run.
// The map of id strings to *idState it replaces added three heap objects per request to
// the measured process, and by the end of a 16 s run at 15k/s its GC cycles marked
// 700k of them (mark phases of 80–110 ms, seen in the gateway's latency). Written here
// because it is the bench's own bookkeeping; no library keeps a dense table of this shape.
// Ids that are not a plain decimal after the prefix (the demo's named ids, tests) use a
// map into a second table. Not safe for concurrent use: the Tally's mutex guards it.
type idIndex struct {
	slots  []idState        // by request number
	others []idState        // ids that are not a number, by other[id]
	other  map[string]int32 // index in others
	more   map[int64][]uint8
	names  []string // status of code c is names[c-1]; code 0 is ""
	codes  map[string]uint8
}

// idState is one request's state; terms are the codes of its first terminal statuses in
// arrival order (more are in idIndex.more, keyed by the state's key).
type idState struct {
	segments  int32
	outcome   uint8 // code of what made it done; 0 while it is not
	nterm     uint8
	submitted bool
	terms     [4]uint8
}

// maxDense bounds the request numbers kept by number, and how far beyond the table's
// length a number may jump before the id is kept by name instead (a stray id such as
// "<prefix>999999999" must not allocate gigabytes).
const (
	maxDense  = 1 << 30
	denseJump = 1 << 20
)

func newIDIndex() idIndex {
	return idIndex{other: map[string]int32{}, more: map[int64][]uint8{}, codes: map[string]uint8{}}
}

// expect sizes the table for n requests.
func (x *idIndex) expect(n int) {
	if n > cap(x.slots) && n <= maxDense {
		s := make([]idState, len(x.slots), n)
		copy(s, x.slots)
		x.slots = s
	}
}

// number returns the request number of an id's suffix when it is a plain decimal (no
// sign, no leading zero).
func number(suffix string) (int, bool) {
	if len(suffix) == 0 || len(suffix) > 9 || (suffix[0] == '0' && len(suffix) > 1) {
		return 0, false
	}
	n := 0
	for i := 0; i < len(suffix); i++ {
		c := suffix[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// get returns the state of the id with this suffix (after the prefix), adding it when
// new, and its key (for idIndex.more). The pointer is valid until the next get.
func (x *idIndex) get(suffix string) (*idState, int64) {
	if n, ok := number(suffix); ok && n < maxDense && n < len(x.slots)+denseJump {
		if n >= len(x.slots) {
			if n >= cap(x.slots) {
				s := make([]idState, len(x.slots), max(2*cap(x.slots), n+1, 1024))
				copy(s, x.slots)
				x.slots = s
			}
			x.slots = x.slots[:n+1]
		}
		return &x.slots[n], int64(n)
	}
	i, ok := x.other[suffix]
	if !ok {
		i = int32(len(x.others))
		x.others = append(x.others, idState{})
		x.other[suffix] = i
	}
	return &x.others[i], -1 - int64(i)
}

// lookup returns the state of id, or nil when it was never seen.
func (x *idIndex) lookup(id, prefix string) (*idState, int64) {
	if len(id) < len(prefix) || id[:len(prefix)] != prefix {
		return nil, 0
	}
	suffix := id[len(prefix):]
	if n, ok := number(suffix); ok && n < len(x.slots) {
		return &x.slots[n], int64(n)
	}
	if i, ok := x.other[suffix]; ok {
		return &x.others[i], -1 - int64(i)
	}
	return nil, 0
}

// code returns status's code, assigning one when new ("" is 0).
func (x *idIndex) code(status string) uint8 {
	if status == "" {
		return 0
	}
	c, ok := x.codes[status]
	if !ok {
		if len(x.names) == 255 {
			// Only submitted and terminal statuses are recorded: a fixed set of 13.
			panic("bench: more than 255 statuses in a tally")
		}
		x.names = append(x.names, status)
		c = uint8(len(x.names))
		x.codes[status] = c
	}
	return c
}

func (x *idIndex) status(code uint8) string {
	if code == 0 {
		return ""
	}
	return x.names[code-1]
}

func (x *idIndex) addTerminal(s *idState, key int64, status string) {
	c := x.code(status)
	if int(s.nterm) < len(s.terms) {
		s.terms[s.nterm] = c
		s.nterm++
		return
	}
	x.more[key] = append(x.more[key], c)
}

// terminals returns the terminal statuses of a state, in arrival order (nil if none).
func (x *idIndex) terminals(s *idState, key int64) []string {
	if s.nterm == 0 {
		return nil
	}
	out := make([]string, 0, int(s.nterm)+len(x.more[key]))
	for _, c := range s.terms[:s.nterm] {
		out = append(out, x.status(c))
	}
	for _, c := range x.more[key] {
		out = append(out, x.status(c))
	}
	return out
}
