package main

import (
	"strings"
	"testing"

	"github.com/twosell/twosell/processor"
)

// dev's summary of its sample events lists the counts by status and by
// dead-letter class as "key=count", sorted. Found by review: it printed Go
// maps, "statuses: map[not_recycled:3 recycled:5]".
func TestDevSummaryCountsAreReadable(t *testing.T) {
	s := processor.Stats{
		ByStatus:     map[processor.Status]int64{processor.StatusRecycled: 5, processor.StatusNotRecycled: 3},
		ByErrorClass: map[string]int64{},
	}
	got := devSummary(8, s)
	for _, want := range []string{"all 8 sample events processed", "statuses:     not_recycled=3 recycled=5\n", "dead letters: none\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "map[") {
		t.Errorf("a Go map in:\n%s", got)
	}
}
