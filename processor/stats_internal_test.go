package processor

import "testing"

// Every status twosell writes is counted without a lock, each in its own
// counter; any other status in the map, and all of them in Stats.
func TestCountsByStatus(t *testing.T) {
	for i, s := range knownStatuses {
		if got := knownStatus(s); got != i {
			t.Errorf("knownStatus(%q) = %d, want %d", s, got, i)
		}
	}
	p := &Processor{stats: newCounters()}
	want := map[Status]int64{}
	for i, s := range append(knownStatuses[:], "from-a-custom-enricher") {
		for range i + 1 {
			p.stats.count(outcome{status: s})
		}
		want[s] = int64(i + 1)
	}
	p.stats.count(outcome{class: ClassInvalidJSON})
	s := p.Stats()
	for st, n := range want {
		if s.ByStatus[st] != n {
			t.Errorf("ByStatus[%q] = %d, want %d", st, s.ByStatus[st], n)
		}
	}
	if len(s.ByStatus) != len(want) || s.Produced != 28 || s.DeadLettered != 1 || s.ByErrorClass[ClassInvalidJSON] != 1 ||
		s.Unavailable != 5 || s.Skipped != 6 {
		t.Errorf("stats %+v", s)
	}
}

// knownStatus is each status's index in knownStatuses, which the counters
// and the status header's values are kept by.
func TestKnownStatusIsItsIndex(t *testing.T) {
	for i, s := range knownStatuses {
		if got := knownStatus(s); got != i {
			t.Errorf("knownStatus(%q) = %d, want %d", s, got, i)
		}
		if got := string(statusValue(s)); got != string(s) {
			t.Errorf("statusValue(%q) = %q", s, got)
		}
	}
	if got := knownStatus("other"); got != -1 {
		t.Errorf("knownStatus of another status = %d, want -1", got)
	}
	if got := string(statusValue("other")); got != "other" {
		t.Errorf("statusValue of another status = %q", got)
	}
}
