package rotation

import (
	"sort"
	"strconv"

	"github.com/nyaruka/phonenumbers"
)

// presence indexes a local_presence pool by area and country prefix. Numbers are sorted,
// so every prefix group is a contiguous range of indexes: picking inside a group is a
// bitset scan, with no allocation and no per-pick parsing of the recipient.
type presence struct {
	groups   []group
	area     map[string]int32 // "+1212", "+35840" → group
	country  map[string]int32 // "+1", "+358" → group
	areaLens []int            // distinct lengths of area keys, longest first
}

type group struct {
	lo, hi, cursor int
}

// prefixes returns the country prefix ("+358") and the area prefix ("+35840", "" when the
// numbering plan has no area code for it) of an E.164 number; both "" for a sender ID.
func prefixes(number string) (country, area string) {
	if len(number) < 2 || number[0] != '+' {
		return "", ""
	}
	num, err := phonenumbers.Parse(number, "")
	if err != nil {
		return "", ""
	}
	country = "+" + strconv.Itoa(int(num.GetCountryCode()))
	if l := phonenumbers.GetLengthOfNationalDestinationCode(num); l > 0 {
		nsn := phonenumbers.GetNationalSignificantNumber(num)
		if l <= len(nsn) && len(country)+l <= len(number) && number[len(country):len(country)+l] == nsn[:l] {
			area = number[:len(country)+l]
		}
	}
	return country, area
}

// newPresence indexes nums, which must be sorted by number.
func newPresence(nums []number) *presence {
	p := &presence{area: map[string]int32{}, country: map[string]int32{}}
	add := func(m map[string]int32, key string, i int) {
		if key == "" {
			return
		}
		if g, ok := m[key]; ok {
			p.groups[g].hi = i + 1 // sorted: members of one prefix are contiguous
			return
		}
		m[key] = int32(len(p.groups))
		p.groups = append(p.groups, group{lo: i, hi: i + 1, cursor: i})
	}
	lens := map[int]bool{}
	for i := range nums {
		c, a := prefixes(nums[i].id)
		add(p.country, c, i)
		add(p.area, a, i)
		if a != "" {
			lens[len(a)] = true
		}
	}
	for l := range lens {
		p.areaLens = append(p.areaLens, l)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(p.areaLens)))
	return p
}

// match returns the recipient's area group and country group, -1 when none.
func (p *presence) match(to string) (area, country int32) {
	area, country = -1, -1
	for _, l := range p.areaLens {
		if len(to) > l {
			if g, ok := p.area[to[:l]]; ok {
				area = g
				break
			}
		}
	}
	// Country calling codes are a prefix code of 1 to 3 digits: at most one matches.
	for l := 2; l <= 4 && l < len(to); l++ {
		if g, ok := p.country[to[:l]]; ok {
			country = g
			break
		}
	}
	return area, country
}
