package processor

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A header's key and value are written with their lengths, as varints:
// recordBytes counts them (a record of a thousand empty headers passed the
// check of its size, and the broker refused it; found by review).
func TestRecordBytesCountsTheHeadersLengths(t *testing.T) {
	t.Parallel()
	r := &kgo.Record{Key: []byte("k"), Value: []byte("v")}
	for range 1000 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "x"})
	}
	if got, want := recordBytes(r), 2+1000*(1+2); got != want {
		t.Errorf("recordBytes = %d, want %d", got, want)
	}
}
