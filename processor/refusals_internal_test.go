package processor

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A refusal lasts until its dead letter commits: through aborted retries,
// not past a commit, and not past the partition's revoke.
func TestRefusalsLastUntilTheDeadLetterCommits(t *testing.T) {
	var r refusals
	in := &kgo.Record{Topic: "in", Partition: 1, Offset: 7}
	other := &kgo.Record{Topic: "in", Partition: 2, Offset: 7}
	if _, ok := r.deadLetter(in); ok || r.inTxn() != 0 {
		t.Fatal("a refusal before any")
	}
	r.refuse(in, ClassOutputRejected, "too large", false, false)
	if r.inTxn() != 1 {
		t.Fatalf("inTxn = %d, want 1: the open transaction must abort", r.inTxn())
	}
	r.begin() // the retry
	if _, ok := r.deadLetter(other); ok {
		t.Error("another partition's record is refused")
	}
	e, ok := r.deadLetter(in)
	if !ok || e.reason != "too large" || e.class != ClassOutputRejected || e.bare {
		t.Fatalf("deadLetter = %+v, %v", e, ok)
	}
	if r.inTxn() != 0 {
		t.Error("the retry, which dead-letters, would abort")
	}
	r.begin() // that retry aborted for another reason: the entry stays
	if _, ok := r.deadLetter(in); !ok {
		t.Fatal("the refusal was forgotten by an abort")
	}
	r.committed()
	if _, ok := r.deadLetter(in); ok || r.n.Load() != 0 {
		t.Error("the refusal outlived the commit of its dead letter")
	}
	r.refuse(other, ClassTooManyHeaders, "bad; without its bytes", true, false)
	r.begin()
	r.committed() // a commit without its dead letter (another batch) keeps it
	if e, ok := r.deadLetter(other); !ok || !e.bare {
		t.Fatalf("deadLetter = %+v, %v; want the bare refusal kept", e, ok)
	}
	r.forget(map[string][]int32{"in": {2}})
	if _, ok := r.deadLetter(other); ok || r.n.Load() != 0 {
		t.Error("a revoked partition's refusal was kept")
	}
}
