// Package rotation picks the sender ID or caller number of each request from a pool of
// numbers: round robin, smooth weighted, least used, sticky (consistent hashing) or local
// presence, within per-number caps, cooldowns and health states.
//
// Place in the pipeline: dispatch (Pools) asks a pool for a number in its sender-selection
// stage and feeds voice outcomes and SMS receipts back for health. The package is pure:
// counters and the clock come in as arguments; no I/O, no goroutines, no locks (a Pool is
// serialised by its caller).
//
// How a pool works: each number is in exactly one place — the set of usable numbers (a
// bitset, plus a heap for weighted and least_used), a timer heap of numbers waiting for a
// cooldown, an hourly or daily cap (UTC) or a quarantine to end, a bench of numbers on
// probation sitting out picks, or nowhere (disabled). A pick first releases the numbers
// whose wait is over, then asks the strategy for a usable number, so that no strategy ever
// sees a number that breaks a cap or a state, and an exhausted pool answers at once with
// the earliest instant from the timer heap.
//
// Strategies:
//   - round_robin: numbers in number order, skipping unusable ones.
//   - weighted: stride scheduling (each number's virtual pass advances by 1/weight per
//     pick; the lowest pass goes next), which spreads a number's picks evenly: in any
//     window of sum(weights) picks each number gets its weight ±1. A number coming back
//     from a wait gets no credit for the time away, so it does not burst.
//   - least_used: fewest uses today, then least recently used.
//   - sticky: a consistent-hash ring with weight × vnodes points per number, placed by a
//     fixed hash of the number alone, so a recipient maps to the same number on every
//     instance and only a removed number's recipients move. When the recipient's number
//     is unusable the next numbers on the ring are tried, then a plain scan.
//   - local_presence: a number of the recipient's area code, else its country, else any
//     (round robin within each). Prefixes come from github.com/nyaruka/phonenumbers when
//     the pool is built; a pick only compares string prefixes.
//
// Health: outcomes go into a sliding window (10 buckets) per number and per pool. A number
// whose success rate is below ratio × the rest of the pool's (min_samples each) is
// quarantined for rest, then picked on probation with probation_share of its share; after
// probation_samples outcomes it is active again if healthy, else quarantined again.
package rotation
