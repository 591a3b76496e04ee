package processor

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor/kafkatest"
)

// flushLog is a franz-go logger that calls flushing at the start of each
// Flush of its client.
type flushLog struct{ flushing func() }

func (l flushLog) Level() kgo.LogLevel { return kgo.LogLevelInfo }
func (l flushLog) Log(_ kgo.LogLevel, msg string, _ ...any) {
	if msg == "flushing" {
		l.flushing()
	}
}

// holdHandOver holds a dead letter's hand-over to the main producer (in
// Produce, before franz-go counts the record) until release.
type holdHandOver struct {
	topic   string
	entered chan struct{}
	release chan struct{}
	handed  atomic.Bool // released: the record is being counted
	once    sync.Once
}

func (h *holdHandOver) OnProduceRecordBuffered(r *kgo.Record) {
	if r.Topic != h.topic {
		return
	}
	h.once.Do(func() { close(h.entered) })
	<-h.release
	h.handed.Store(true)
}

// waitingForReplacements reports whether a goroutine is parked in
// pending.wait: flushAll waiting for a replacement to be handed over.
func waitingForReplacements() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[select") && strings.Contains(g, "processor.(*pending).wait(") {
			return true
		}
	}
	return false
}

// flushAll promises (record.go) that it returns once every output and dead
// letter handed to the producer is acknowledged, the replacements started
// from promises included: the revoke commits after it, and the replay
// reports from it. A record refused alone is replaced by its dead letter
// from the second producer's promise, during flushAlone; the next round
// counted that replacement in before, flushed the main producer, and only
// then waited for the replacement to be handed over (replacing.wait). When
// the hand-over comes after that Flush (emitFromPromise's goroutine is
// scheduled late), nothing flushed the main producer again: adds ==
// before, and flushAll returned with the dead letter unacknowledged (found
// by review). At a revoke the record was then left uncommitted though its
// dead letter was written: the partition's next owner wrote it again. Now
// each round waits for the hand-overs before its flush.
//
// Here X, produced alone, is refused alone during flushAll's first
// flushAlone; its dead letter's hand-over is held until flushAll waits for
// it (as a goroutine scheduled late would be), and the broker holds the
// dead letter until the main producer flushes again, or flushAll returns.
func TestFlushAllWaitsForTheDeadLetterOfARecordRefusedAlone(t *testing.T) {
	k := kafkatest.NewFake(t, nil)
	k.CreateTopics(1, "out", "dlq")
	td, err := kadm.NewClient(k.Client()).ListTopics(context.Background(), "out", "dlq")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string][16]byte{"out": td["out"].ID, "dlq": td["dlq"].ID}
	hold := &holdHandOver{topic: "dlq", entered: make(chan struct{}), release: make(chan struct{})}
	var releaseHold sync.Once
	t.Cleanup(func() { releaseHold.Do(func() { close(hold.release) }) })

	// X's produce alone is refused once flushAll has flushed the main
	// producer a first time (so the refusal comes after flushAll's first
	// count of replacements); the dead letter is held by the broker until
	// dlRelease.
	refuseX := make(chan struct{})
	dlRelease := make(chan struct{})
	var dlReleaseOnce sync.Once
	releaseDL := func() { dlReleaseOnce.Do(func() { close(dlRelease) }) }
	t.Cleanup(releaseDL)
	k.Fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.Fake.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		switch {
		case kafkatest.WritesTopic(pr, "out", ids["out"]):
			k.Fake.SleepControl(func() { <-refuseX })
			return kafkatest.Refusal(pr, kerr.MessageTooLarge), nil, true
		case kafkatest.WritesTopic(pr, "dlq", ids["dlq"]):
			k.Fake.SleepControl(func() { <-dlRelease })
		}
		return nil, nil, false
	})

	// The main producer's first Flush lets the broker refuse X; a Flush
	// after the dead letter's hand-over lets it answer the dead letter.
	firstFlush := make(chan struct{})
	var firstOnce sync.Once
	onFlush := func() {
		firstOnce.Do(func() { close(firstFlush) })
		if hold.handed.Load() {
			releaseDL()
		}
	}
	mainCl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.WithLogger(flushLog{onFlush}), kgo.WithHooks(hold),
		kgo.DefaultProduceTopic("out"))
	if err != nil {
		t.Fatal(err)
	}
	defer mainCl.Close()
	p := &Processor{log: slog.New(slog.DiscardHandler), cfg: Config{ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}}}
	p.setClient(mainCl)
	defer p.lone.close()

	var dlAcked atomic.Bool
	dl := &kgo.Record{Topic: "dlq", Value: []byte("dead letter of X")}
	// X's promise, as onAck's for an output refused alone: its dead letter
	// is handed over from a goroutine (emitFromPromise).
	p.produceAlone(&kgo.Record{Topic: "out", Value: []byte("X")}, func(_ *kgo.Record, err error) {
		if sizeRefused(err) {
			p.emitFromPromise(emission{rec: dl, promise: func(_ *kgo.Record, err error) {
				if err == nil {
					dlAcked.Store(true)
				}
			}})
		}
	})
	// X is handed to the second producer (and held by the broker).
	kafkatest.WaitFor(t, func() bool { return p.replacing.wait(canceled()) == nil })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	flushed := make(chan error, 1)
	go func() { flushed <- p.flushAll(ctx, mainCl) }()

	<-firstFlush // flushAll's first Flush of the main producer
	close(refuseX)
	<-hold.entered // X refused alone: its dead letter is being handed over
	// Held until flushAll waits for the hand-over.
	go func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			if waitingForReplacements() {
				releaseHold.Do(func() { close(hold.release) })
				return
			}
		}
	}()
	ferr := <-flushed
	releaseDL()
	if ferr != nil {
		t.Fatal(ferr)
	}
	if !dlAcked.Load() {
		t.Errorf("flushAll returned nil with the dead letter of X (refused alone) handed to the producer but not acknowledged: " +
			"it waited for the hand-over after its last Flush of the main producer. A revoke then commits without X, " +
			"whose dead letter is written anyway: its next owner writes a second one")
	}
}

// canceled is a context already canceled: pending.wait with it reports
// whether nothing is in flight.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
