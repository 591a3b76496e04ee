package juhesim_test

import (
	"regexp"
	"slices"
	"testing"

	"github.com/twosell/twosell/juhe/juhesim"
)

func TestPopulation(t *testing.T) {
	if p := juhesim.Population(0); p != nil {
		t.Errorf("Population(0) = %v, want nil", p)
	}
	if p := juhesim.Population(-3); p != nil {
		t.Errorf("Population(-3) = %v, want nil", p)
	}
	// Pinned: tests and sample data elsewhere rely on the list never changing.
	want := []string{"13986055100", "16569260201", "18004577602", "15982742503", "19732526904"}
	if got := juhesim.Population(5); !slices.Equal(got, want) {
		t.Errorf("Population(5) = %q, want %q", got, want)
	}

	const n = 20000
	p := juhesim.Population(n)
	if len(p) != n {
		t.Fatalf("len %d, want %d", len(p), n)
	}
	if !slices.Equal(p[:100], juhesim.Population(100)) {
		t.Error("Population(100) is not a prefix of Population(20000)")
	}
	valid := regexp.MustCompile(`^1[3-9]\d{9}$`)
	seen := make(map[string]bool, n)
	prefixes := map[string]bool{}
	cases := map[[2]int]int{} // (code, res) at testDate -> count
	for i, m := range p {
		if !valid.MatchString(m) {
			t.Fatalf("%q is not a valid mobile", m)
		}
		if m[:3] < "130" || m[:3] > "199" {
			t.Fatalf("%q has an unrealistic prefix", m)
		}
		if seen[m] {
			t.Fatalf("%q repeated", m)
		}
		seen[m] = true
		prefixes[m[:3]] = true
		code, res := juhesim.Expect(m, testDate)
		cases[[2]int{code, res}]++
		if xy := int(m[9]-'0')*10 + int(m[10]-'0'); xy != i%100 {
			t.Fatalf("number %d ends in %02d, want %02d", i, xy, i%100)
		}
	}
	// Every outcome of the rule appears, in its share (5%, 5%, and the rest).
	if cases[[2]int{232703, 0}] != n/20 || cases[[2]int{0, 3}] != n/20 || cases[[2]int{0, 1}] == 0 || cases[[2]int{0, 2}] == 0 {
		t.Errorf("outcomes at %s: %v", testDate, cases)
	}
	if len(prefixes) < 40 {
		t.Errorf("only %d prefixes used", len(prefixes))
	}
}
