package processor

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor/kafkatest"
)

// ledgerPoll is a poll of the ledger topic: an error for each of failing,
// a record for each of read.
func ledgerPoll(failing, read []int32) kgo.Fetches {
	var parts []kgo.FetchPartition
	for _, p := range failing {
		parts = append(parts, kgo.FetchPartition{Partition: p, Err: kerr.UnknownTopicID})
	}
	for _, p := range read {
		parts = append(parts, kgo.FetchPartition{Partition: p, Records: []*kgo.Record{{Topic: "ledger", Partition: p}}})
	}
	return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "ledger", Partitions: parts}}}}
}

// timedOut is a poll cut short by its context, as franz-go returns it.
func timedOut() kgo.Fetches {
	return kgo.Fetches{{Topics: []kgo.FetchTopic{{Partitions: []kgo.FetchPartition{{Partition: -1, Err: context.DeadlineExceeded}}}}}}
}

var all8 = []int32{0, 1, 2, 3, 4, 5, 6, 7}

// A ledger that cannot be read says so once, then once a minute while it
// lasts, and once when it reads again; its polls back off, doubling up to
// a second, while they bring errors and no record; and Unreadable says
// which partitions and why meanwhile. (Found by an operator drill: with the
// topic deleted, polls came back at once with an error for each partition,
// each logged: 38,000 lines a second, while /readyz said ready.)
func TestLedgerThatCannotBeReadSaysSoOnce(t *testing.T) {
	var logs strings.Builder
	l := newLedger(LedgerConfig{Topic: "ledger"}, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	var backoff errorBackoff
	var waits []time.Duration
	for range 4 {
		if !l.polled(t.Context(), ledgerPoll(all8, nil), &backoff) {
			t.Fatal("polled returned false with ctx live")
		}
		waits = append(waits, backoff.d)
	}
	if waits[0] != 10*time.Millisecond || waits[3] != 80*time.Millisecond {
		t.Errorf("backoffs %v, want 10, 20, 40, 80 ms", waits)
	}
	if err := l.Unreadable(); err == nil || !strings.Contains(err.Error(), "UNKNOWN_TOPIC_ID") || !strings.Contains(err.Error(), "[0 1 2 3 4 5 6 7]") {
		t.Errorf("Unreadable() = %v", err)
	}
	now := time.Now()
	for i := range 10 {
		l.reading.took(ledgerPoll(all8, nil), now.Add(time.Duration(i)*time.Second/10), l.log, "ledger")
	}
	l.reading.took(ledgerPoll(all8, nil), now.Add(unreadableEvery), l.log, "ledger")
	l.reading.took(ledgerPoll(all8, nil), now.Add(unreadableEvery+time.Second), l.log, "ledger")
	if got := strings.Count(logs.String(), "cannot read the topic"); got != 2 {
		t.Errorf("%d lines saying the topic cannot be read after 16 failed polls over a minute, want 2 (the first and a minute later):\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "failed_polls=15") {
		t.Errorf("the minute's line does not count the failed polls:\n%s", logs.String())
	}

	// Records of some partitions end their trouble, not the others'.
	at := now.Add(unreadableEvery + 2*time.Second)
	if errs, read := l.reading.took(ledgerPoll(nil, []int32{0, 1, 2, 3, 4, 5}), at, l.log, "ledger"); errs != 0 || !read {
		t.Errorf("took = %d, %v", errs, read)
	}
	if err := l.Unreadable(); err == nil || !strings.Contains(err.Error(), "[6 7]") {
		t.Errorf("Unreadable() = %v, want partitions 6 and 7", err)
	}
	l.reading.took(ledgerPoll(nil, []int32{6, 7}), at, l.log, "ledger")
	if err := l.Unreadable(); err != nil {
		t.Errorf("Unreadable() = %v after a record of every partition", err)
	}
	if got := strings.Count(logs.String(), "the topic reads again"); got != 1 {
		t.Errorf("%d lines saying it reads again, want 1:\n%s", got, logs.String())
	}

	// A stop ends the wait.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	backoff.d = time.Hour
	if l.polled(ctx, ledgerPoll(all8, nil), &backoff) {
		t.Error("polled returned true with ctx ended")
	}
}

// A partition that cannot be read while the others bring records is said
// so, and Unreadable names it (found by review: such a poll was taken as
// readable, the error logged nowhere); a poll with records does not back
// off.
func TestLedgerPartitionThatCannotBeReadIsNotSilent(t *testing.T) {
	var logs strings.Builder
	l := newLedger(LedgerConfig{Topic: "ledger"}, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	for range 100 {
		var backoff errorBackoff
		l.polled(t.Context(), ledgerPoll([]int32{1}, []int32{0}), &backoff)
		if backoff.d != 0 {
			t.Fatalf("backoff %v after a poll with records", backoff.d)
		}
	}
	if got := strings.Count(logs.String(), "UNKNOWN_TOPIC_ID"); got != 1 {
		t.Errorf("%d lines for 100 polls with an error for partition 1, want 1:\n%s", got, logs.String())
	}
	if err := l.Unreadable(); err == nil || !strings.Contains(err.Error(), "[1]") {
		t.Errorf("Unreadable() = %v, want partition 1", err)
	}
}

// A partition that failed, then brings no error for readingQuiet, reads
// again, though no record comes (a quiet topic): polls cut short by their
// context say nothing of it.
func TestLedgerPartitionReadsAgainWhenQuiet(t *testing.T) {
	var logs strings.Builder
	l := newLedger(LedgerConfig{Topic: "ledger"}, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	now := time.Now()
	l.reading.took(ledgerPoll([]int32{3}, nil), now, l.log, "ledger")
	l.reading.took(timedOut(), now.Add(readingQuiet-time.Millisecond), l.log, "ledger")
	if l.Unreadable() == nil {
		t.Fatal("readable again before readingQuiet")
	}
	l.reading.took(timedOut(), now.Add(readingQuiet), l.log, "ledger")
	if err := l.Unreadable(); err != nil || !strings.Contains(logs.String(), "the topic reads again") {
		t.Errorf("Unreadable() = %v after readingQuiet without an error:\n%s", err, logs.String())
	}
}

// Against a broker: the ledger's fetches fail for a while, then the topic
// can be read again, and stays quiet (every answer from knowledge, no
// instance paying): it is seen to read again (found by review: a poll
// waited for a record, and Unreadable kept the old error for good).
func TestLedgerReadsAgainWhileIdle(t *testing.T) {
	k := kafkatest.New(t)
	if k.Fake == nil {
		t.Skip("needs kfake to fail fetches")
	}
	topic := k.Name("ledger")
	var failing atomic.Bool
	k.Fake.ControlKey(int16(kmsg.Fetch), func(r kmsg.Request) (kmsg.Response, error, bool) {
		k.Fake.KeepControl()
		if !failing.Load() {
			return nil, nil, false
		}
		req := r.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.Version = req.Version
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.UnknownServerError.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	var logs logLines
	logs.t = t
	c, err := NewCostControl(EnricherFunc(func(context.Context, Lookup) (Result, error) { return Result{}, nil }), CostConfig{
		Secret: []byte("s"), Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Ledger: &LedgerConfig{Topic: topic, CreateTopic: true, ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	c.ledger.reading.mu.Lock()
	c.ledger.reading.quiet = 300 * time.Millisecond
	c.ledger.reading.mu.Unlock()

	failing.Store(true)
	waitFor(t, "the ledger unreadable", func() bool { return c.LedgerUnreadable() != nil })
	failing.Store(false)
	waitFor(t, "the ledger readable again", func() bool { return c.LedgerUnreadable() == nil })
	if !strings.Contains(logs.String(), "the topic reads again") {
		t.Errorf("no line says the topic reads again")
	}
}

// A ledger whose writes in flight the brokers have answered none of for
// unwritableAfter says so (the outputs of paid answers wait for them); an
// answer to any of their records starts the wait anew, and none in flight
// is no trouble however long ago the last answer came.
func TestLedgerWritesUnansweredAreUnwritable(t *testing.T) {
	l := newLedger(LedgerConfig{Topic: "ledger"}, slog.New(slog.DiscardHandler), nil)
	t0 := time.Now()
	if err := l.Unwritable(t0.Add(time.Hour)); err != nil {
		t.Errorf("no write in flight: %v", err)
	}
	l.writeBegins(t0)
	l.writeBegins(t0.Add(time.Second)) // the second of a run does not restart the clock
	if err := l.Unwritable(t0.Add(unwritableAfter - time.Millisecond)); err != nil {
		t.Errorf("before unwritableAfter: %v", err)
	}
	if err := l.Unwritable(t0.Add(unwritableAfter)); err == nil || !strings.Contains(err.Error(), "2 writes in flight") {
		t.Errorf("after unwritableAfter without an answer: %v", err)
	}
	// The brokers answer: the records' promises.
	w := &ledgerWrite{durable: durable{pending: 2}, l: l}
	w.promise(nil, nil)
	if err := l.Unwritable(time.Now().Add(unwritableAfter / 2)); err != nil {
		t.Errorf("an answer came: %v", err)
	}
	w.promise(nil, nil)
	if n := l.writing.Load(); n != 1 {
		t.Errorf("%d writes in flight after one of two was answered whole, want 1", n)
	}
	(&ledgerWrite{durable: durable{pending: 1}, l: l}).promise(nil, errors.New("refused"))
	if n := l.writing.Load(); n != 0 {
		t.Errorf("%d writes in flight after both ended, want 0", n)
	}
	if err := l.Unwritable(time.Now().Add(time.Hour)); err != nil {
		t.Errorf("none in flight: %v", err)
	}
}
