package processor

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// failedPoll is a poll of the ledger topic that brought an error for each
// of its 8 partitions and no record, as with the topic deleted.
func failedPoll() kgo.Fetches {
	var parts []kgo.FetchPartition
	for p := range int32(8) {
		parts = append(parts, kgo.FetchPartition{Partition: p, Err: kerr.UnknownTopicID})
	}
	return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "ledger", Partitions: parts}}}}
}

// A ledger that cannot be read says so once, then once a minute while it
// lasts, and once when it reads again; its polls back off, doubling up to
// a second; and Unreadable says why meanwhile. (Found by an operator drill:
// with the topic deleted, polls came back at once with an error for each
// partition, each logged: 38,000 lines a second, while /readyz said ready.)
func TestLedgerThatCannotBeReadSaysSoOnce(t *testing.T) {
	var logs strings.Builder
	l := newLedger(LedgerConfig{Topic: "ledger"}, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	var backoff time.Duration
	var waits []time.Duration
	for range 4 {
		if !l.polled(t.Context(), failedPoll(), 0, &backoff) {
			t.Fatal("polled returned false with ctx live")
		}
		waits = append(waits, backoff)
	}
	if want := []time.Duration{10, 20, 40, 80}; waits[0] != want[0]*time.Millisecond || waits[3] != want[3]*time.Millisecond {
		t.Errorf("backoffs %v, want %v ms", waits, want)
	}
	if err := l.Unreadable(); err == nil || !strings.Contains(err.Error(), "UNKNOWN_TOPIC_ID") {
		t.Errorf("Unreadable() = %v", err)
	}
	for range 10 {
		backoff = 0 // spare the test the waits
		l.polled(t.Context(), failedPoll(), 0, &backoff)
	}
	now := time.Now()
	l.unreadable(kerr.UnknownTopicID, now.Add(unreadableEvery))
	l.unreadable(kerr.UnknownTopicID, now.Add(unreadableEvery+time.Second))
	if got := strings.Count(logs.String(), "cannot read the topic"); got != 2 {
		t.Errorf("%d lines saying the topic cannot be read after 16 failed polls over a minute, want 2 (the first and a minute later):\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "failed_polls=15") {
		t.Errorf("the minute's line does not count the failed polls:\n%s", logs.String())
	}

	// A poll that reads records, even with an error for another partition,
	// ends it.
	backoff = time.Second
	if !l.polled(t.Context(), failedPoll(), 3, &backoff) || backoff != 0 {
		t.Errorf("backoff %v after a poll that read records, want 0", backoff)
	}
	if err := l.Unreadable(); err != nil {
		t.Errorf("Unreadable() = %v after a poll that read records", err)
	}
	if got := strings.Count(logs.String(), "the topic reads again"); got != 1 {
		t.Errorf("%d lines saying it reads again, want 1:\n%s", got, logs.String())
	}

	// A stop ends the wait.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	backoff = time.Hour
	if l.polled(ctx, failedPoll(), 0, &backoff) {
		t.Error("polled returned true with ctx ended")
	}
}
