package storage

import (
	"encoding/binary"
	"time"
)

// Key layout: one prefix byte per table, then the parts. A part that is followed by
// another is length-prefixed (uvarint), so no byte value is special; the last part is raw,
// so iteration within a prefix is in that part's byte order. Times are big-endian
// nanoseconds since 1970, so keys sort in time order.
const (
	pOptOut     = 'O' // O tenant channel(1) address           -> ts(8) source (below every other prefix: migrate.go)
	pClaim      = 'c' // c id                                  -> 0xC2 at(8) acceptedSeq(8) source (earlier: at(8) source)
	pTerminal   = 't' // t id                                  -> status
	pHistory    = 'h' // h id seq(8)                           -> nil (the event is in the x batch holding seq; accepted's seq is in the claim)
	pReceiptID  = 'r' // r connection smscid                   -> part(2) requestID
	pSubmission = 's' // s requestID                           -> submission JSON
	pQueue      = 'q' // q offer(8) id                         -> nil
	pSchedItem  = 'i' // i id                                  -> item JSON
	pCampaign   = 'k' // k tenant campaign id                  -> nil
	pUsage      = 'u' // u pool number kind(1) start(8)        -> count(8)
	pSetting    = 'g' // g namespace key                       -> value
	pOutbox     = 'x' // x first(8)                            -> the events first, first+1, … (outbox_batch.go)
	pOutboxMark = 'y' // y                                     -> seq(8): published up to here
	pEarly      = 'e' // e connection smscid                   -> receipt JSON (not yet tracked)
	pDue        = 'w' // w expiry(8) requestID                 -> nil (receipt timeout index)
)

// expiresAt is Badger's expiry (unix seconds) of an entry that must live until t: rounded
// up, so that it lives at least that long (truncated, an entry with a 1 s ttl could
// expire within a millisecond).
func expiresAt(t time.Time) uint64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return uint64(s)
}

func appendLP(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixNano()))
}

// readLP returns the length-prefixed part at the start of b and the rest.
func readLP(b []byte) (string, []byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return "", nil, false
	}
	return string(b[k : k+int(n)]), b[k+int(n):], true
}

func key1(p byte, s string) []byte {
	b := make([]byte, 0, 1+len(s))
	return append(append(b, p), s...)
}

func key2(p byte, a, s string) []byte {
	b := make([]byte, 0, 3+len(a)+len(s))
	return append(appendLP(append(b, p), a), s...)
}
