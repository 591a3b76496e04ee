package processor

import (
	"maps"
	"strconv"
	"strings"
	"testing"
)

// The metadata a revoke commits names the records written above the
// offset, by offset and leader epoch, and reads back to the same set; what
// is not ours, or was written for another offset, reads as nothing.
func TestAheadMetadataRoundTrip(t *testing.T) {
	ahead := []pendingOffset{
		{offset: 12, epoch: 3, done: true}, {offset: 13, epoch: 3, done: true}, {offset: 14, epoch: 3, done: true},
		{offset: 16, epoch: 3, done: true},
		{offset: 17, epoch: 4, done: true}, {offset: 18, epoch: 4, done: true},
	}
	meta, n := encodeAhead(10, ahead, aheadMaxBytes)
	if want := "twosell-written 10 3:2-4,6 4:7-8"; n != len(ahead) || meta != want {
		t.Errorf("encodeAhead = %q, %d named; want %q, %d", meta, n, want, len(ahead))
	}
	want := aheadSet{12: 3, 13: 3, 14: 3, 16: 3, 17: 4, 18: 4}
	if got := decodeAhead(meta, 10); !maps.Equal(got, want) {
		t.Errorf("decodeAhead = %v; want %v", got, want)
	}
	for _, tt := range []struct{ meta string }{
		{"member-1234"},                        // franz-go's own commits: the member id
		{"twosell-written 9 3:2-4"},            // written for another offset: a later commit came without it
		{"twosell-written 10 3:0"},             // the offset itself is never written above it
		{"twosell-written 10 3:4-2"},           // a range backwards
		{"twosell-written 10 x:1"},             // not an epoch
		{"twosell-written 10 3:1-99999999999"}, // a range no partition's metadata holds
		{"twosell-written 10"},                 // nothing named
	} {
		if got := decodeAhead(tt.meta, 10); got != nil {
			t.Errorf("decodeAhead(%q) = %v; want nothing", tt.meta, got)
		}
	}
	if _, n := encodeAhead(10, nil, aheadMaxBytes); n != 0 {
		t.Errorf("encodeAhead of nothing: %d named", n)
	}
}

// Metadata over the broker's limit would fail the commit: what does not fit
// is left out, the highest offsets first, and is written again.
func TestAheadMetadataFitsTheLimit(t *testing.T) {
	var ahead []pendingOffset
	for o := int64(1); o <= 5000; o += 2 { // no two consecutive: a range each
		ahead = append(ahead, pendingOffset{offset: o, epoch: 1, done: true})
	}
	meta, n := encodeAhead(0, ahead, aheadMaxBytes)
	if n == 0 || len(meta) > aheadMaxBytes {
		t.Fatalf("%d bytes (%d named); want at most %d", len(meta), n, aheadMaxBytes)
	}
	got := decodeAhead(meta, 0)
	if len(got) != n {
		t.Errorf("%d named, %d read back", n, len(got))
	}
	if len(got) < 500 || len(got) >= len(ahead) || got[1] != 1 || !strings.HasSuffix(meta, ","+itoa(maxKey(got))) {
		t.Errorf("%d of %d named, ending %q; want the lowest that fit", len(got), len(ahead), meta[len(meta)-20:])
	}
	for o := int64(1); o <= maxKey(got); o += 2 { // every one below the last named is named
		if _, ok := got[o]; !ok {
			t.Fatalf("offset %d left out below %d", o, maxKey(got))
		}
	}
}

func maxKey(s aheadSet) int64 {
	m := int64(-1)
	for o := range s {
		m = max(m, o)
	}
	return m
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
