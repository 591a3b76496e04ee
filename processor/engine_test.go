package processor_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// Per-key and per-partition order hold while many lookups overlap with
// random latencies; without ordering, outputs may overtake.
func TestOrderingUnderRandomLatency(t *testing.T) {
	for _, ordering := range []processor.Ordering{processor.OrderingKey, processor.OrderingPartition, processor.OrderingNone} {
		t.Run(string(ordering), func(t *testing.T) {
			bothModes(t, func(t *testing.T, eos bool) { testOrdering(t, ordering, eos, false) })
		})
	}
}

// Order holds too when most records are answered from knowledge at once,
// overtaking none of the records of their key that wait for the provider.
func TestOrderingWithCacheAnswers(t *testing.T) {
	for _, ordering := range []processor.Ordering{processor.OrderingKey, processor.OrderingPartition} {
		t.Run(string(ordering), func(t *testing.T) {
			bothModes(t, func(t *testing.T, eos bool) { testOrdering(t, ordering, eos, true) })
		})
	}
}

func testOrdering(t *testing.T, ordering processor.Ordering, eos, cached bool) {
	h := newHarnessMode(t, 3, eos)
	const n, keys, mobiles = 600, 20, 30
	var recs []*kgo.Record
	for i := range n {
		r := event(h.in, i, false)
		if cached { // each number many times, each event its own id
			r = event(h.in, i%mobiles, false)
			r.Value = bytes.Replace(r.Value, []byte(fmt.Sprintf(`"e-%d"`, i%mobiles)), []byte(fmt.Sprintf(`"e-%d"`, i)), 1)
		}
		r.Key = []byte(fmt.Sprintf("k-%d", i%keys))
		recs = append(recs, r)
	}
	// Where each event landed, to check order per input partition.
	prod := h.kafka.Client()
	place := make(map[string][2]int64) // event id -> (partition, offset)
	for _, res := range prod.ProduceSync(context.Background(), recs...) {
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		place[eventID(t, res.Record.Value)] = [2]int64{int64(res.Record.Partition), res.Record.Offset}
	}

	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	var inFlight, peak atomic.Int64
	cfg := h.config(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		if c := inFlight.Add(1); c > peak.Load() {
			peak.Store(c)
		}
		defer inFlight.Add(-1)
		mu.Lock()
		d := time.Duration(rng.IntN(3000)) * time.Microsecond
		mu.Unlock()
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return processor.Result{}, ctx.Err()
		}
		return fakeAnswer(l), nil
	}))
	var cost *processor.CostControl
	if cached {
		// Most lookups are answered from knowledge on the dispatcher,
		// between others that wait for the provider on tasks.
		var err error
		if cost, err = processor.NewCostControl(cfg.Enricher, processor.CostConfig{Secret: []byte("s")}); err != nil {
			t.Fatal(err)
		}
		cfg.Enricher = cost
	}
	cfg.Ordering = ordering
	cfg.MaxInFlight = 64
	_, stop := h.start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h.kafka.Consume(ctx, countAtLeast(n), h.out)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := h.kafka.ConsumeAll(ctx, h.out)
	if len(got) != n {
		t.Fatalf("%d outputs, want %d", len(got), n)
	}
	if peak.Load() < 2 {
		t.Fatalf("at most %d lookups overlapped: the test proves nothing", peak.Load())
	}
	if cost != nil {
		answers := int64(0)
		for _, n := range cost.CostStats().CacheAnswers {
			answers += n
		}
		if answers < n/2 {
			t.Fatalf("%d answers from knowledge: the test proves nothing", answers)
		}
	}

	// Outputs of one key share an output partition; within an
	// output partition, check the order of each key and of each
	// input partition's records.
	lastByKey := make(map[string]int64)
	lastByInput := make(map[[2]int64]int64) // (output partition, input partition) -> last input offset
	overtaken := 0
	for _, r := range got {
		at := place[eventID(t, r.Value)]
		k := string(r.Key)
		if last, ok := lastByKey[k]; ok && at[1] < last {
			overtaken++
			if ordering == processor.OrderingKey {
				t.Errorf("key %s: offset %d after %d", k, at[1], last)
			}
		}
		lastByKey[k] = at[1]
		in := [2]int64{int64(r.Partition), at[0]}
		if last, ok := lastByInput[in]; ok && at[1] < last && ordering == processor.OrderingPartition {
			t.Errorf("input partition %d: offset %d produced after %d", at[0], at[1], last)
		}
		lastByInput[in] = at[1]
	}
	t.Logf("%s: peak %d lookups in flight, %d outputs overtook an earlier one of the same key", ordering, peak.Load(), overtaken)
}

// A record whose lookup blocks holds the commit at its offset while the
// records after it finish; once it finishes, the commit moves past them all.
func TestCommitNeverPassesAnUnfinishedRecord(t *testing.T) {
	h := newHarness(t, 1)
	const n, blocked = 50, 5
	var recs []*kgo.Record
	for i := range n {
		r := event(h.in, i, false)
		r.Key = []byte(fmt.Sprintf("k-%d", i)) // no record waits behind the blocked one's key
		recs = append(recs, r)
	}
	h.kafka.Produce(recs...)
	release := make(chan struct{})
	p, stop := h.start(h.config(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		if l.Mobile == fmt.Sprintf("1731234%04d", blocked) {
			select {
			case <-release:
			case <-ctx.Done():
				return processor.Result{}, ctx.Err()
			}
		}
		return fakeAnswer(l), nil
	})))
	kafkatest.WaitFor(t, func() bool {
		return p.Stats().Produced == n-1 && h.kafka.CommittedOffsets(h.group, h.in)[0] == blocked
	})
	close(release)
	kafkatest.WaitFor(t, func() bool { return h.kafka.CommittedOffsets(h.group, h.in)[0] == n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// With the in-flight window full and the buffer at its cap, fetching pauses
// and memory stays bounded; when the provider answers again, fetching
// resumes and everything completes.
func TestPauseResumeUnderAFullWindow(t *testing.T) {
	h := newHarness(t, 1)
	const n = 300
	h.produceEvents(n)
	release := make(chan struct{})
	cfg := h.config(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return processor.Result{}, ctx.Err()
		}
		return fakeAnswer(l), nil
	}))
	cfg.MaxInFlight, cfg.MaxBufferedRecords, cfg.MaxPollRecords = 4, 10, 10
	p, stop := h.start(cfg)
	kafkatest.WaitFor(t, func() bool { s := p.Stats(); return s.InFlight == 4 && s.PausedPartitions == 1 })
	// Received = in flight + buffered; the buffer passes its cap by at most
	// one poll.
	if s := p.Stats(); s.Consumed > int64(cfg.MaxInFlight+cfg.MaxBufferedRecords+cfg.MaxPollRecords) {
		t.Errorf("received %d records with a window of %d and a buffer of %d", s.Consumed, cfg.MaxInFlight, cfg.MaxBufferedRecords)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h.kafka.Consume(ctx, countAtLeast(n), h.out)
	kafkatest.WaitFor(t, func() bool { return p.Stats().PausedPartitions == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := len(h.kafka.ConsumeAll(ctx, h.out)); got != n {
		t.Errorf("%d outputs, want %d", got, n)
	}
}

// The processor's fetches ask the broker to hold them at most
// Config.FetchMaxWait (50ms unless set): how long a partition resumed while
// the others are caught up may wait for the fetch in flight.
func TestFetchMaxWait(t *testing.T) {
	for _, tt := range []struct {
		set  time.Duration
		want int32 // FetchRequest.MaxWaitMillis
	}{{0, 50}, {123 * time.Millisecond, 123}} {
		t.Run(fmt.Sprint(tt.set), func(t *testing.T) {
			h := newHarness(t, 2)
			fetchWaits := h.recordFetchWaits()
			const n = 20
			h.produceEvents(n)
			cfg := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
				return fakeAnswer(l), nil
			}))
			cfg.FetchMaxWait = tt.set
			p, stop := h.start(cfg)
			kafkatest.WaitFor(t, func() bool { return p.Stats().Produced == n })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			waits := fetchWaits()
			if waits[tt.want] == 0 {
				t.Errorf("no fetch asked to be held %d ms; fetches by MaxWaitMillis: %v", tt.want, waits)
			}
			for w, k := range waits {
				if w != tt.want {
					t.Errorf("%d fetches asked to be held %d ms, want %d (the processor's is the only consumer)", k, w, tt.want)
				}
			}
		})
	}
}

// recordFetchWaits records how long each fetch request to h's broker (kfake)
// asks to be held, and returns what it recorded so far by MaxWaitMillis. It
// skips the test without kfake.
func (h *harness) recordFetchWaits() func() map[int32]int {
	h.t.Helper()
	if h.kafka.Fake == nil {
		h.t.Skip("reads the fetch requests with kfake's control functions")
	}
	var mu sync.Mutex
	waits := map[int32]int{}
	h.kafka.Fake.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		// Not the fetch by which franz-go closes its fetch session as the
		// client closes (1 ms, 1 byte).
		if r := req.(*kmsg.FetchRequest); r.MaxBytes != 1 {
			mu.Lock()
			waits[r.MaxWaitMillis]++
			mu.Unlock()
		}
		return nil, nil, false // answered by the broker as usual
	})
	return func() map[int32]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(waits)
	}
}
