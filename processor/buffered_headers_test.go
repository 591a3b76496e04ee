package processor_test

// Found by a review of the flow control (buffers, in-flight limits,
// co-pause, fetch pools, retention).

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// README ("Concurrency and order"): "each partition buffers at most
// processing.max_buffered_records records and processing.max_buffered_bytes
// bytes that have not started, then its fetching pauses ... a slow or
// failing provider becomes consumer lag, never memory growth"; ("Limits"):
// a record's size is its key, value and headers (input.max_record_bytes),
// and "Buffered and in-flight work is bounded (max_buffered_bytes,
// max_in_flight_bytes)".
//
// push (partition.go) counted a record's bytes as len(Key)+len(Value), and
// the dispatcher's in-flight size (started.size) the same: headers were not
// counted. Records whose bytes are mostly headers (each well within
// max_record_bytes) were fetched without bound while the provider was
// blocked: here 400 records of 16 KiB of headers each (6.4 MiB) were all
// received with max_buffered_bytes at 128 KiB and one lookup in flight, and
// the partition never paused. They count as recordBytes does now.
func TestBufferedBytesCountHeaders(t *testing.T) {
	h := newHarness(t, 1)
	const n, headerBytes = 400, 16 << 10
	cl := h.kafka.Client()
	for i := range n { // one record a batch: a fetch brings about FetchMaxPartitionBytes
		r := event(h.in, i, false)
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "blob", Value: bytes.Repeat([]byte("h"), headerBytes)})
		if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cfg := h.config(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		<-ctx.Done() // the provider hangs
		return processor.Result{}, ctx.Err()
	}))
	cfg.MaxInFlight = 1
	cfg.MaxBufferedBytes = 128 << 10
	cfg.FetchMaxPartitionBytes = 32 << 10
	cfg.ShutdownTimeout = time.Second // the hung lookup is abandoned at the stop
	p, stop := h.start(cfg)
	defer stop() //nolint:errcheck // the stats say it all

	// Fetching pauses (the buffer is full), or the whole partition is in.
	var s processor.Stats
	kafkatest.WaitFor(t, func() bool {
		s = p.Stats()
		return s.PausedPartitions == 1 || s.Consumed == n
	})
	// The bound: max_buffered_bytes (8 records of ~16 KiB), plus one record
	// in flight, plus what a fetch brings past the pause (kfake's first
	// fetch here brings about 30 records); 100 records (1.6 MiB, 12 times
	// max_buffered_bytes) is well past it.
	const bound = n / 4
	if s.PausedPartitions != 1 || s.Consumed > bound {
		t.Errorf("provider blocked: %d records received (%d KiB of headers), paused partitions %d, in flight %d; "+
			"max_buffered_bytes is %d KiB: the records' headers are not counted in the buffer's bytes (nor in flight)",
			s.Consumed, s.Consumed*headerBytes>>10, s.PausedPartitions, s.InFlight, cfg.MaxBufferedBytes>>10)
	}
}
