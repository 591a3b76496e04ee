package processor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
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

// A record waiting for another record's call of its number holds no
// in-flight slot: with two slots, one call held and a record waiting for
// it, a record of another number still gets the second slot and its call.
// Woken, the waiter is answered from what the call taught, or makes the
// next call when the answer does not imply its date; stopped while it
// waits, it is given up, and the commit stays below it.
//
// At-least-once only: exactly-once, the records produced once the call is
// held come in the next transaction, after the held one's (the ordering
// tests run the same way in both modes, TestOrderingWithCacheAnswers).
func TestCoalescedWaitHoldsNoSlot(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mobile int    // event(…, mobile): its last digit picks fakeAnswer's res
		date   string // the waiter's date; the first record's is 2024-01-02
		stop   bool   // stop while it waits, instead of answering the call
		fail   bool   // the call fails (unavailable): the waiter shares the failure
		calls  int    // of the first record's number
		source string // the waiter's output's
	}{
		{name: "answered", mobile: 1, date: "2024-01-02", calls: 1, source: "cache"},          // res 1 at D answers D
		{name: "makes the next call", mobile: 2, date: "2023-05-06", calls: 2, source: "api"}, // res 2 at D answers no earlier date
		{name: "stopped", mobile: 1, date: "2024-01-02", stop: true},
		// Held back with the call's failure and tried again later, as a
		// waiter on a task is, not with a call of its own at once.
		{name: "shares the failure", mobile: 1, date: "2024-01-02", fail: true, calls: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testCoalescedWait(t, tc.mobile, tc.date, tc.stop, tc.fail, tc.calls, tc.source)
		})
	}
}

func testCoalescedWait(t *testing.T, mobile int, date string, stop, fail bool, wantCalls int, source string) {
	h := newHarness(t, 1)
	first := event(h.in, mobile, false) // e-<mobile> at offset 0
	first.Value = bytes.Replace(first.Value, []byte(fmt.Sprintf(`"e-%d"`, mobile)), []byte(`"e-0"`), 1)
	waiter := event(h.in, mobile, false) // e-1: the same number, another key
	waiter.Value = bytes.Replace(waiter.Value, []byte(fmt.Sprintf(`"e-%d"`, mobile)), []byte(`"e-1"`), 1)
	waiter.Value = bytes.Replace(waiter.Value, []byte(`"2024-01-02T03:04:05+08:00"`), []byte(`"`+date+`"`), 1)
	waiter.Key = []byte("another-user")
	other := event(h.in, 2, false) // e-2: another number
	other.Key = []byte("a-third-user")
	firstMobile, otherMobile := fmt.Sprintf("1731234%04d", mobile), "17312340002"
	if mobile == 2 {
		otherMobile = "17312340003"
		other = event(h.in, 3, false)
		other.Value = bytes.Replace(other.Value, []byte(`"e-3"`), []byte(`"e-2"`), 1)
		other.Key = []byte("a-third-user")
	}

	held, release := make(chan struct{}), make(chan struct{})
	otherCalled := make(chan struct{})
	var calls atomic.Int64
	provider := processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		switch l.Mobile {
		case firstMobile:
			if calls.Add(1) == 1 {
				close(held)
				select {
				case <-release:
				case <-ctx.Done():
					return processor.Result{}, ctx.Err()
				}
			}
			if fail {
				return processor.Result{}, processor.Unavailable(errors.New("the provider is down"))
			}
		case otherMobile:
			close(otherCalled)
		}
		return fakeAnswer(l), nil
	})
	cost, err := processor.NewCostControl(provider, processor.CostConfig{Secret: []byte("test-secret"), TracerProvider: h.tp})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(cost)
	cfg.MaxInFlight = 2
	cfg.ShutdownTimeout = 100 * time.Millisecond
	if fail {
		cfg.RetryBackoff, cfg.MaxRetryBackoff = time.Hour, time.Hour // no retry within the test
		cfg.MaxInFlight = 3                                          // the two held ones, and the other number
	}
	p, stopRun := h.start(cfg)
	h.kafka.Produce(first)
	<-held // the call is in flight before the waiter comes
	h.kafka.Produce(waiter, other)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	select {
	case <-otherCalled:
	case <-ctx.Done():
		t.Fatalf("the other number was not looked up while a call was held (%d in flight, %d coalesced): the waiter holds a slot",
			p.Stats().InFlight, cost.CostStats().Coalesced)
	}
	if n := cost.CostStats().Coalesced; n != 1 {
		t.Fatalf("%d lookups coalesced, want the waiter's", n)
	}
	if stop {
		if err := stopRun(); err != nil {
			t.Fatalf("Run = %v, want nil after a stop", err)
		}
		got := h.kafka.ConsumeAll(ctx, h.out)
		for _, r := range got {
			if id := eventID(t, r.Value); id != "e-2" {
				t.Errorf("output of %s after a stop while its call was held", id)
			}
		}
		checkCommittedPrefix(t, h.kafka.CommittedOffsets(h.group, h.in)[0], got)
		return
	}
	close(release)
	if fail {
		kafkatest.WaitFor(t, func() bool { return p.Holds(h.in, 0) == 2 })
		if n := calls.Load(); n != int64(wantCalls) {
			t.Errorf("%d calls of the number once both records are held, want %d: the waiter called at once", n, wantCalls)
		}
		if err := stopRun(); err != nil {
			t.Fatal(err)
		}
		checkCommittedPrefix(t, h.kafka.CommittedOffsets(h.group, h.in)[0], h.kafka.ConsumeAll(ctx, h.out))
		return
	}
	h.kafka.Consume(ctx, countAtLeast(3), h.out)
	if err := stopRun(); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != int64(wantCalls) {
		t.Errorf("%d calls of the number, want %d", n, wantCalls)
	}
	for _, r := range h.kafka.ConsumeAll(ctx, h.out) {
		if eventID(t, r.Value) == "e-1" && !bytes.Contains(r.Value, []byte(`"source":"`+source+`"`)) {
			t.Errorf("the waiter's output %s, want source %s", r.Value, source)
		}
	}
	// The wait has the cost controls' span, as a waiter on a task has it,
	// with the answer when it got one.
	var waits []string
	for _, sp := range h.spans.Ended() {
		if sp.Name() != "twosell.cache" {
			continue
		}
		attrs := map[string]string{}
		for _, a := range sp.Attributes() {
			attrs[string(a.Key)] = a.Value.Emit()
		}
		if attrs["twosell.coalesced"] == "true" {
			waits = append(waits, attrs["twosell.source"])
		}
	}
	want := []string{"cache"} // answered by the call it waited for
	if source == "api" {
		want = []string{""} // woken to make the next call, which has its own span
	}
	if !slices.Equal(waits, want) {
		t.Errorf("coalesced twosell.cache spans with sources %q, want %q", waits, want)
	}
}

// TestWaitForACallNotStartedYet: the first lookup of a number leads its
// call from the moment it is dispatched, before it has a slot, so that the
// number's next records wait for it without a slot instead of taking one
// each. (Without it, a bench run's first records of 100 numbers took all
// 256 slots: 100 calls and 156 waiters on tasks, while the records behind
// them queued.) A stop while the leader waits for its slot hands the call
// on, and nothing hangs.
func TestWaitForACallNotStartedYet(t *testing.T) {
	for _, stop := range []bool{false, true} {
		t.Run(map[bool]string{false: "answered", true: "stopped"}[stop], func(t *testing.T) {
			h := newHarness(t, 2)
			blocker := event(h.in, 9, false) // its call holds the only slot
			first := event(h.in, 1, false)   // waits for the slot, leading its number's call
			waiter := event(h.in, 1, false)  // the same number on the other partition
			waiter.Value = bytes.Replace(waiter.Value, []byte(`"e-1"`), []byte(`"e-2"`), 1)
			waiter.Key = []byte("another-user")
			blocker.Partition, first.Partition, waiter.Partition = 0, 0, 1
			cl := h.kafka.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))

			held, release := make(chan struct{}), make(chan struct{})
			var calls atomic.Int64
			provider := processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
				switch l.Mobile {
				case "17312340009":
					close(held)
					select {
					case <-release:
					case <-ctx.Done():
						return processor.Result{}, ctx.Err()
					}
				case "17312340001":
					calls.Add(1)
				}
				return fakeAnswer(l), nil
			})
			cost, err := processor.NewCostControl(provider, processor.CostConfig{Secret: []byte("test-secret")})
			if err != nil {
				t.Fatal(err)
			}
			cfg := h.config(cost)
			cfg.MaxInFlight = 1
			cfg.ShutdownTimeout = 100 * time.Millisecond
			p, stopRun := h.start(cfg)
			produceManually(t, cl, []*kgo.Record{blocker})
			<-held
			produceManually(t, cl, []*kgo.Record{first})
			kafkatest.WaitFor(t, func() bool { return cost.CallsInFlight() == 2 }) // the blocker's, and first's to come
			produceManually(t, cl, []*kgo.Record{waiter})
			kafkatest.WaitFor(t, func() bool { return cost.CostStats().Coalesced == 1 })
			if n := p.Stats().InFlight; n != 1 {
				t.Fatalf("%d records in flight, want the blocker alone", n)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if stop {
				if err := stopRun(); err != nil {
					t.Fatalf("Run = %v, want nil after a stop", err)
				}
				if n := calls.Load(); n != 0 {
					t.Errorf("%d calls of the number made after the stop, want 0", n)
				}
				if n := cost.CallsInFlight(); n != 0 {
					t.Errorf("%d calls left in flight after the stop, want 0: a lead not handed on", n)
				}
				for _, r := range h.kafka.ConsumeAll(ctx, h.out) {
					t.Errorf("output of %s after a stop while its call waited for a slot", eventID(t, r.Value))
				}
				return
			}
			close(release)
			got := h.kafka.Consume(ctx, countAtLeast(3), h.out)
			if err := stopRun(); err != nil {
				t.Fatal(err)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("%d calls of the number, want 1", n)
			}
			for _, r := range got {
				if eventID(t, r.Value) == "e-2" && !bytes.Contains(r.Value, []byte(`"source":"cache"`)) {
					t.Errorf("the waiter's output %s, want source cache", r.Value)
				}
			}
		})
	}
}

// TestDispatcherReadsTheClockAfterAWait: the dispatcher reads the time once
// for several records it answers from knowledge, but anew after it waited
// for records: a res 2 answer that expired meanwhile answers nothing, and
// checked_at is the time of the check.
func TestDispatcherReadsTheClockAfterAWait(t *testing.T) {
	h := newHarness(t, 1)
	clock := processor.NewTestClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	var calls atomic.Int64
	provider := processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		calls.Add(1)
		return fakeAnswer(l), nil // ending in 2: res 2, known for NotRecycled
	})
	cost, err := processor.NewCostControl(provider, processor.CostConfig{Secret: []byte("test-secret"), Now: clock.Now,
		TTL: processor.KnowledgeTTL{NotRecycled: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(cost)
	cfg.Now = clock.Now
	_, stopRun := h.start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	checked := func(want int) []string {
		var at []string
		for _, r := range h.kafka.Consume(ctx, countAtLeast(want), h.out) {
			var v struct {
				Twosell struct {
					Source    string `json:"source"`
					CheckedAt string `json:"checked_at"`
				} `json:"twosell"`
			}
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatal(err)
			}
			at = append(at, v.Twosell.Source+" "+v.Twosell.CheckedAt)
		}
		return at
	}
	h.kafka.Produce(event(h.in, 2, false))
	checked(1)
	h.kafka.Produce(event(h.in, 2, false)) // known: answered by the dispatcher
	checked(2)
	clock.Add(2 * time.Hour) // the res 2 answer expires
	h.kafka.Produce(event(h.in, 2, false))
	got := checked(3)
	if err := stopRun(); err != nil {
		t.Fatal(err)
	}
	want := []string{"api 2026-03-01T12:00:00Z", "cache 2026-03-01T12:00:00Z", "api 2026-03-01T14:00:00Z"}
	if !slices.Equal(got, want) {
		t.Errorf("outputs %q, want %q", got, want)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d calls, want 2: the expired answer answered", n)
	}
}

// TestWaitInAnAbortedTransaction: exactly-once, a record waiting for
// another's call of its number in the same transaction is given up when the
// transaction is abandoned (its call held past half the transaction
// timeout), and both records come again and are written once.
func TestWaitInAnAbortedTransaction(t *testing.T) {
	h := newHarnessMode(t, 1, true)
	first := event(h.in, 1, false)
	waiter := event(h.in, 1, false)
	waiter.Value = bytes.Replace(waiter.Value, []byte(`"e-1"`), []byte(`"e-2"`), 1)
	waiter.Key = []byte("another-user")
	var calls atomic.Int64
	provider := processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		if calls.Add(1) == 1 {
			<-ctx.Done() // held until the transaction is abandoned
			return processor.Result{}, ctx.Err()
		}
		return fakeAnswer(l), nil
	})
	cost, err := processor.NewCostControl(provider, processor.CostConfig{Secret: []byte("test-secret")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.config(cost)
	cfg.TransactionTimeout = time.Second // abandoned after 0.5 s
	_, stopRun := h.start(cfg)
	h.kafka.Produce(first, waiter) // one batch, one transaction
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := h.kafka.Consume(ctx, countAtLeast(2), h.out)
	if err := stopRun(); err != nil {
		t.Fatal(err)
	}
	if n := cost.CostStats().Coalesced; n < 1 {
		t.Errorf("%d lookups coalesced, want the waiter's at least", n)
	}
	ids := map[string]int{}
	for _, r := range h.kafka.ConsumeAll(ctx, h.out) {
		ids[eventID(t, r.Value)]++
	}
	if len(got) < 2 || ids["e-1"] != 1 || ids["e-2"] != 1 || len(ids) != 2 {
		t.Errorf("outputs by event %v, want e-1 and e-2 once each", ids)
	}
	if n := calls.Load(); n < 2 {
		t.Errorf("%d calls, want the abandoned one and at least one more", n)
	}
}
