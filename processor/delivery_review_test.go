package processor_test

// Found by a review of exactly-once and rebalances: each test failed before
// its fix, for the reason its comment gives (in the past tense where it
// describes what was wrong).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// With ordering: partition, a stop (revoke or shutdown) that comes while
// the dispatcher waits for an in-flight slot gives that newest record up
// (giveUp); the records before it, which the stop's grace lets finish, are
// still handed to the producer in order (the sequencer dropped every
// emission once broken, also the ones before the record given up). README ("Delivery"): "A rebalance or
// shutdown finishes the records in progress (within
// processing.shutdown_timeout) ... flushes, and commits". Here e-0 and e-1
// finish within the grace: both are written and committed (they were not,
// and the next owner paid for them again).
func TestPartitionOrderingStopFinishesRecordsInProgress(t *testing.T) {
	h := newHarness(t, 1)
	h.produceEvents(3) // e-i at offset i
	release := make(chan struct{})
	started := make(chan string, 3)
	cfg := h.config(processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		started <- l.Mobile[7:]
		select {
		case <-release:
		case <-ctx.Done():
			return processor.Result{}, ctx.Err()
		}
		return fakeAnswer(l), nil
	}))
	cfg.Ordering = processor.OrderingPartition
	cfg.MaxInFlight = 2 // e-0 and e-1 in progress; e-2 waits for a slot
	cfg.ShutdownTimeout = 30 * time.Second
	p, stop := h.start(cfg)
	<-started
	<-started
	// e-2 taken: the dispatcher waits for a slot for it.
	kafkatest.WaitFor(t, func() bool { return p.Stats().InFlight == 2 && p.Frontier(h.in, 0) == 2 })
	stopping := p.Stopping(h.in, 0)
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	<-stopping
	close(release) // e-0 and e-1 finish within the grace
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var ids []string
	for _, r := range h.kafka.ConsumeAll(ctx, h.out) {
		ids = append(ids, eventID(t, r.Value))
	}
	slices.Sort(ids)
	committed := h.kafka.CommittedOffsets(h.group, h.in)[0]
	if got := strings.Join(ids, " "); got != "e-0 e-1" || committed != 2 {
		t.Errorf("outputs [%s], committed offset %d; want e-0 and e-1 (finished within the grace) written and committed (2)", got, committed)
	}
	if n := len(started); n != 0 {
		t.Errorf("%d more lookups started during the stop, want none", n)
	}
}

// bigEvent is event i with about 3 KB of incompressible padding: its
// output is over an output topic's max.message.bytes of 3000 (the broker
// refuses it), its dead letter is not (the dead-letter topic has the
// default limit).
func bigEvent(topic string, i int) *kgo.Record { return randomPadded(topic, i, 1500) }

// randomPadded is event i with n random bytes of padding, in hex.
func randomPadded(topic string, i, n int) *kgo.Record {
	return padded(event(topic, i, false), `"big":`, n)
}

// padded is r with n random bytes of padding, in hex, in a member before
// the one that starts with before.
func padded(r *kgo.Record, before string, n int) *kgo.Record {
	pad := make([]byte, n)
	for j := range pad {
		pad[j] = byte(rand.IntN(256)) // incompressible: the producer compresses
	}
	r.Value = bytes.Replace(r.Value, []byte(before), []byte(fmt.Sprintf(`"pad":"%x",%s`, pad, before)), 1)
	return r
}

// At-least-once, an output the broker refuses is replaced by its dead
// letter from a goroutine of its own (emitFromPromise), which a revoke now
// waits for (flushAll). (The revoke's Flush returned once the refused
// output's promise had returned, before the dead letter was handed to the
// producer; the revoke committed without the record, and the dead letter
// was written after the revoke all the same.) The partition's next owner reads the
// record again and dead-lettered it again: two dead letters for one input
// after a plain cooperative rebalance. README ("Delivery"): "A rebalance
// ... finishes the records in progress ... flushes, and commits; nothing of
// a revoked partition is committed after its revoke"; DESIGN: "every input
// record ends as exactly one output or one dead letter (at-least-once:
// possibly more than one after a crash)". No crash here. (The output
// topic's limit is lowered once p1 has started: read at its start, it
// would have bounded p1's batches and dead-lettered the big outputs before
// they were produced; lowered later, the broker refuses them.)
func TestRevokeWaitsForTheDeadLetterOfARefusedOutput(t *testing.T) {
	h := newHarness(t, 2)
	if h.kafka.Fake == nil {
		t.Skip("needs the embedded broker")
	}
	h.kafka.CreateTopics(2, h.out, h.dlq)
	// One big event in each input partition.
	for p := range int32(2) {
		r := bigEvent(h.in, int(p))
		r.Partition = p
		h.kafka.Client(kgo.RecordPartitioner(kgo.ManualPartitioner())).ProduceSync(context.Background(), r)
	}
	release := make(chan struct{})
	var asked atomic.Int64
	enricher := processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		asked.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return processor.Result{}, ctx.Err()
		}
		return fakeAnswer(l), nil
	})
	cfg := h.config(enricher)
	cfg.Ordering = processor.OrderingNone
	p1, stop1 := h.start(cfg)
	kafkatest.WaitFor(t, func() bool { return asked.Load() == 2 }) // both records in progress on p1
	limit := "3000"
	altered, err := kadm.NewClient(h.kafka.Client()).AlterTopicConfigs(t.Context(),
		[]kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: &limit}}, h.out)
	if err == nil {
		_, err = altered.On(h.out, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	stopping0, stopping1 := p1.Stopping(h.in, 0), p1.Stopping(h.in, 1)
	_, stop2 := h.start(h.config(enricher)) // a second member: one partition moves to it
	// p1 revokes one partition: its record finishes within the grace.
	select {
	case <-stopping0:
	case <-stopping1:
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h.kafka.Consume(ctx, countAtLeast(2), h.dlq)
	kafkatest.WaitFor(t, func() bool {
		c := h.kafka.CommittedOffsets(h.group, h.in)
		return c[0] == 1 && c[1] == 1
	})
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	bySource := map[string]int{}
	for _, r := range h.kafka.ConsumeAll(ctx, h.out, h.dlq) {
		src, _ := header(r, processor.HeaderSource)
		bySource[r.Topic+" "+src]++
		if reason, _ := header(r, processor.HeaderError); r.Topic == h.dlq && !strings.Contains(reason, "MESSAGE_TOO_LARGE") {
			t.Errorf("%s: dead letter %q; want the broker's refusal of the output", src, reason)
		}
	}
	for src, n := range bySource {
		if n != 1 {
			t.Errorf("%s: %d records for one input after a rebalance, want 1", src, n)
		}
	}
	if len(bySource) != 2 {
		t.Errorf("records by input: %v, want one dead letter for each of the 2 inputs", bySource)
	}
}

// juheLike is an Enricher that makes requests as the juhe client does
// through cmd/twosell's juheEnricher: a transient fault is retried once
// (juhe.retries), each retry gated by processor.BeforeRetry (a rate token
// and a unit of the budget); a retry the gate refuses is not made, and the
// query ends with the last fault, which juheEnricher maps to Unavailable.
// retrying is told when the first request has failed.
func juheLike(retrying chan<- string) processor.Enricher {
	return processor.EnricherFunc(func(ctx context.Context, l processor.Lookup) (processor.Result, error) {
		fault := errors.New("juhe: 232704 query failed") // transient
		retrying <- l.Mobile[7:]
		if err := processor.BeforeRetry(ctx); err != nil {
			if ctx.Err() != nil {
				return processor.Result{}, ctx.Err()
			}
			return processor.Result{Mode: "plain", Code: 232704, Attempts: 1, Billable: 1}, processor.Unavailable(fault)
		}
		return fakeAnswer(l), nil // the retry is answered
	})
}

// With on_unavailable: emit, a stop (revoke or shutdown) that comes while a
// record's retry waits for the provider rate abandons the record, as a
// first request waiting for the rate is (README "Delivery": "a record still
// waiting for it is abandoned, not paid for"). (It was written
// "unavailable" and committed: the client ended the query with the first
// attempt's fault, which the processor took for the provider being down.)
func TestStopDuringARetryDoesNotEmitUnavailable(t *testing.T) {
	h := newHarness(t, 1)
	h.produceEvents(1)
	retrying := make(chan string, 4)
	// One call every 100 s: the retry waits for its token until the stop.
	cost := openCost(t, juheLike(retrying), processor.CostConfig{Secret: []byte("s"), QPS: 0.01})
	cfg := h.config(cost)
	cfg.EmitUnavailable = true
	p, stop := h.start(cfg)
	<-retrying // the first request failed; the retry waits for a rate token
	stopping := p.Stopping(h.in, 0)
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	<-stopping
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []string
	for _, r := range h.kafka.ConsumeAll(ctx, h.out) {
		s, _ := header(r, processor.HeaderStatus)
		got = append(got, eventID(t, r.Value)+" "+s)
	}
	committed := h.kafka.CommittedOffsets(h.group, h.in)[0]
	if len(got) != 0 || committed != 0 {
		t.Errorf("outputs %v, committed offset %d; want none and 0: the stop cut the record's retry, so it is abandoned and delivered again", got, committed)
	}
}
