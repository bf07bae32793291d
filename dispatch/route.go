package dispatch

import (
	"sort"
	"strings"
)

// router maps a destination to the connections that serve it: longest matching prefix
// first, connections of equal prefix length in configuration order, "*" last. It is built
// once and read without locks.
type router struct {
	entries []routeEntry // sorted: longer prefix first, then config order
}

type routeEntry struct {
	prefix string // "" for "*"
	conn   int    // index in configuration order
}

func newRouter(prefixes [][]string) router {
	var r router
	for i, ps := range prefixes {
		for _, p := range ps {
			if p == "*" {
				p = ""
			}
			r.entries = append(r.entries, routeEntry{prefix: p, conn: i})
		}
	}
	sort.SliceStable(r.entries, func(a, b int) bool {
		return len(r.entries[a].prefix) > len(r.entries[b].prefix)
	})
	return r
}

// candidates appends to dst the connections that serve to, best first, each once.
func (r *router) candidates(dst []int, to string) []int {
	for _, e := range r.entries {
		if !strings.HasPrefix(to, e.prefix) {
			continue
		}
		seen := false
		for _, c := range dst {
			if c == e.conn {
				seen = true
				break
			}
		}
		if !seen {
			dst = append(dst, e.conn)
		}
	}
	return dst
}
