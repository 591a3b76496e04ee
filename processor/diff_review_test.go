package processor_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor"
)

// runUntilDone runs p; the returned context ends when Run returns (or after
// a safety timeout), so that a wait on the cluster stops as soon as the
// processor does.
func runUntilDone(t *testing.T, p *processor.Processor) (ctx context.Context, stop func() error) {
	t.Helper()
	runCtx, cancelRun := context.WithCancel(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // only a broken run waits it out
	done := make(chan error, 1)
	go func() {
		err := p.Run(runCtx)
		cancel()
		done <- err
	}()
	var err error
	var stopped bool
	stop = func() error {
		if !stopped {
			stopped = true
			cancelRun()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { _ = stop(); cancel() })
	return ctx, stop
}

// consumeUntil reads topics from the start until n records came or ctx
// ended; it does not fail the test (the caller says what went wrong).
func consumeUntil(h *harness, ctx context.Context, n int, topics ...string) []*kgo.Record {
	cl := h.kafka.Client(
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	defer cl.Close()
	var recs []*kgo.Record
	for len(recs) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	return recs
}

// An input both too large for the dead-letter topic and older than it
// takes (max.message.bytes and message.timestamp.before.max.ms), exactly
// once: each refusal is remembered by refuse, which replaces the one before
// instead of adding to it (bare, then restamp only, then bare only...), so
// that the transaction's retries alternate between the two refusals until
// a bare dead letter with the input's old timestamp is refused with its
// reason already marked, and the processor stops. At least once the same
// input is dead-lettered, bare and written now.
func TestDiffReviewDeadLetterTooLargeAndTooOldExactlyOnce(t *testing.T) {
	bothModes(t, func(t *testing.T, eos bool) {
		h := newHarnessMode(t, 1, eos)
		if h.kafka.Fake == nil {
			t.Skip("refuses produce requests with kfake's control functions")
		}
		h.kafka.CreateTopics(1, h.out, h.dlq)
		const marker = "PAYLOAD-TOO-LARGE-FOR-THE-DLQ"
		old := time.Date(2020, 3, 4, 5, 6, 7, 0, time.UTC)
		cutoff := time.Now().Add(-time.Hour).UnixMilli()
		h.refuseBatches(func(records []byte, b *kmsg.RecordBatch) *kerr.Error {
			switch {
			case bytes.Contains(records, []byte(marker)): // the input's bytes: over max.message.bytes
				return kerr.MessageTooLarge
			case b.FirstTimestamp < cutoff:
				return kerr.InvalidTimestamp
			}
			return nil
		}, h.dlq)
		cfg := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
			return fakeAnswer(l), nil
		}))
		// Uncompressed, so that the control sees the input's bytes.
		cfg.ClientOpts = append(cfg.ClientOpts, kgo.ProducerBatchCompression(kgo.NoCompression()))
		p, err := processor.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		in := event(h.in, 1, true) // an invalid mobile: dead-lettered
		in.Value = []byte(strings.Replace(string(in.Value), `"mobile"`, `"pad":"`+marker+`","mobile"`, 1))
		in.Timestamp = old
		h.kafka.Produce(in)
		ctx, stop := runUntilDone(t, p)
		got := consumeUntil(h, ctx, 1, h.dlq)
		if len(got) == 0 {
			t.Fatalf("no dead letter written; the processor stopped: %v", p.Err())
		}
		dl := got[0]
		if bytes.Contains(dl.Value, []byte(marker)) || dl.Timestamp.UnixMilli() < cutoff {
			t.Errorf("dead letter value %q timestamp %v: want it bare and written now", dl.Value, dl.Timestamp)
		}
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// An input over input.max_record_bytes (too_large, dead-lettered without
// its bytes) and older than the dead-letter topic takes
// (message.timestamp.before.max.ms), exactly once: the dead letter refused
// for its timestamp is remembered to be written again restamped
// (refusals.refuse ..., restamp true), but deadLetter applies a refusal only
// "&& hasPayload(in)", and a too_large dead letter never has its payload
// (withoutPayload first): the retry writes it again with the input's old
// timestamp, it is refused again, and the transaction aborts for ever
// (here: ten refusals and no dead letter). At least once it is written,
// restamped, at the first retry.
func TestDiffReviewTooLargeAndTooOldInputDeadLetteredExactlyOnce(t *testing.T) {
	bothModes(t, func(t *testing.T, eos bool) {
		h := newHarnessMode(t, 1, eos)
		if h.kafka.Fake == nil {
			t.Skip("refuses produce requests with kfake's control functions")
		}
		h.kafka.CreateTopics(1, h.out, h.dlq)
		old := time.Date(2020, 3, 4, 5, 6, 7, 0, time.UTC)
		cutoff := time.Now().Add(-time.Hour).UnixMilli()
		var refusals atomic.Int64
		looping := make(chan struct{})
		closeLooping := sync.OnceFunc(func() { close(looping) })
		h.refuseBatches(func(_ []byte, b *kmsg.RecordBatch) *kerr.Error {
			if b.FirstTimestamp >= cutoff {
				return nil
			}
			if refusals.Add(1) >= 10 {
				closeLooping()
			}
			return kerr.InvalidTimestamp
		}, h.dlq)
		cfg := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
			return fakeAnswer(l), nil
		}))
		cfg.Codec.MaxRecordBytes = 100 // the event is about 200 bytes: too_large
		p, err := processor.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		in := event(h.in, 1, false)
		in.Timestamp = old
		h.kafka.Produce(in)
		ctx, stop := runUntilDone(t, p)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-looping:
				cancel()
			case <-ctx.Done():
			}
		}()
		got := consumeUntil(h, ctx, 1, h.dlq)
		if len(got) == 0 {
			t.Fatalf("no dead letter after %d refusals of it for its timestamp (the processor: %v): it is written again with the input's timestamp every time",
				refusals.Load(), p.Err())
		}
		if class, _ := header(got[0], processor.HeaderErrorClass); class != processor.ClassTooLarge || got[0].Timestamp.UnixMilli() < cutoff {
			t.Errorf("dead letter class %s, timestamp %v; want too_large, written now", class, got[0].Timestamp)
		}
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}
