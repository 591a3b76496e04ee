package juhesim

import "fmt"

// DefaultPopulation is the number of sample mobiles a Sim indexes when
// Config.Population is 0.
const DefaultPopulation = 10000

// prefixes are real mainland mobile prefixes (China Mobile, China Unicom,
// China Telecom, China Broadnet and the virtual operators' 170/171/162/165/167),
// so that sample events look like production traffic.
var prefixes = []string{
	"130", "131", "132", "133", "134", "135", "136", "137", "138", "139",
	"145", "147", "149", "150", "151", "152", "153", "155", "156", "157",
	"158", "159", "162", "165", "166", "167", "170", "171", "172", "173",
	"175", "176", "177", "178", "180", "181", "182", "183", "184", "185",
	"186", "187", "188", "189", "190", "191", "192", "193", "195", "196",
	"197", "198", "199",
}

// Population returns n distinct valid mobiles, the same ones on every call
// and every platform (prefix of a real operator, then pseudo-random digits
// from a fixed-seed generator). The i-th number ends in i mod 100, so any
// 100 consecutive numbers cover every case of the rule: no record (xy 00–04),
// no activation date (05–09) and activation dates spread over ten years.
// Population(n) begins with Population(m) for every m < n, so a simulator
// indexing n numbers knows the digests of any smaller sample. It returns nil
// for n <= 0.
func Population(n int) []string {
	if n <= 0 {
		return nil
	}
	out := make([]string, 0, n)
	seen := make(map[string]struct{}, n)
	// splitmix64, written out rather than math/rand so that the list can never
	// change with the Go version: tests and sample data depend on it.
	state := uint64(0x7477_6f73_656c_6c21) // "twosell!"
	next := func() uint64 {
		state += 0x9e3779b97f4a7c15
		z := state
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
	for i := 0; len(out) < n; {
		r := next()
		p := prefixes[r%uint64(len(prefixes))]
		mid := (r >> 16) % 1_000_000 // digits 4–9: the rule's mobile[3:7] and two more
		m := fmt.Sprintf("%s%06d%02d", p, mid, i%100)
		if _, dup := seen[m]; dup {
			continue // draw again for the same i, so the suffix pattern holds
		}
		seen[m] = struct{}{}
		out = append(out, m)
		i++
	}
	return out
}
