package processor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Dead-letter classes the engine itself assigns (the codec's are in
// inputerror.go; an Enricher names its own through Reject).
const (
	ClassOutputRejected = "output_rejected" // Kafka refused the enriched event (e.g. too large)
	ClassRejected       = "rejected"        // an Enricher rejected the record without naming a class
)

// errAbandoned is a record's work given up (shutdown, revoke, fatal error
// elsewhere): the record stays unfinished, so it is delivered again.
var errAbandoned = errors.New("abandoned")

// process takes one record to its end: an output, a dead letter, or (when
// abandoned or fatal) nothing, which leaves it unfinished and uncommitted.
func (w *partitionWorker) process(r *kgo.Record) {
	p := w.p
	ctx, span := p.tracer.WithProcessSpan(r)
	defer span.End()

	ev, err := p.codec.Decode(r.Value, r.Timestamp)
	if err != nil {
		var ie *InputError
		if !errors.As(err, &ie) {
			ie = &InputError{Class: ClassInvalidJSON, Reason: err.Error()}
		}
		p.deadLetter(ctx, w, r, ie.Class, ie.Reason)
		return
	}
	if ev.ID != "" {
		span.SetAttributes(attribute.String("twosell.event_id", ev.ID))
	}

	res, err := w.lookup(ctx, Lookup{Mobile: ev.Mobile, Date: ev.Date})
	span.SetAttributes(attribute.Int("twosell.attempts", res.Attempts))
	if res.Code != 0 {
		span.SetAttributes(attribute.Int("juhe.error_code", res.Code))
	}
	if err != nil {
		var de *DispositionError
		switch {
		case errors.Is(err, errAbandoned):
			span.SetStatus(codes.Error, "abandoned")
			p.log.Debug("record abandoned", "source", source(r))
		case errors.As(err, &de) && de.Disposition == DispositionReject:
			class := de.Class
			if class == "" {
				class = ClassRejected
			}
			p.deadLetter(ctx, w, r, class, fmt.Sprintf("the provider rejected the lookup of %s on %s: %v",
				MaskMobile(ev.Mobile), ev.Date, err))
		default: // fatal
			span.RecordError(err)
			span.SetStatus(codes.Error, "fatal")
			p.fail(err)
		}
		return
	}
	span.SetAttributes(
		attribute.String("twosell.status", string(res.Status)),
		attribute.String("twosell.source", res.Source),
	)
	p.produceOutput(ctx, w, r, ev, res)
}

// lookup asks the Enricher, holding the record back while the provider is
// unavailable: the partition's fetching pauses and the lookup is retried with
// growing waits, so an outage becomes lag instead of failed events. With
// EmitUnavailable the record is answered "unavailable" instead. It returns an
// error only to dead-letter (Reject), to stop (Fatal), or errAbandoned.
func (w *partitionWorker) lookup(ctx context.Context, l Lookup) (Result, error) {
	p := w.p
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(w.ctx, cancel) // abandoning cancels the call in flight
	defer stop()

	wait := p.cfg.RetryBackoff
	held := false
	defer func() {
		if held {
			w.unhold()
		}
	}()
	attempts := 0
	for {
		res, err := p.cfg.Enricher.Enrich(ctx, l)
		attempts += res.Attempts
		res.Attempts = attempts
		if ctx.Err() != nil {
			return res, errAbandoned
		}
		if err == nil {
			return res, nil
		}
		switch DispositionOf(err) {
		case DispositionReject, DispositionFatal:
			return res, err
		}
		if p.cfg.EmitUnavailable {
			p.stats.unavailable.Add(1)
			return Result{Status: StatusUnavailable, Mode: res.Mode, Code: res.Code, Attempts: attempts}, nil
		}
		if !held {
			held = true
			w.hold(err)
		}
		p.log.Debug("provider unavailable; retrying the record later", "source", w.tp.topic, "wait", wait, "err", err)
		t := time.NewTimer(wait/2 + rand.N(wait/2+1)) // jitter, so partitions do not retry in step
		select {
		case <-t.C:
		case <-w.stop:
			t.Stop()
			// Shutting down: a held record will not finish within any
			// grace period; abandon it now.
			return res, errAbandoned
		case <-ctx.Done():
			t.Stop()
			return res, errAbandoned
		}
		wait = min(2*wait, p.cfg.MaxRetryBackoff)
	}
}

// hold pauses the partition while a record waits for the provider, logging
// once for the whole processor when the first partition is held.
func (w *partitionWorker) hold(err error) {
	w.setPaused(pauseHeld, true)
	if w.p.held.Add(1) == 1 {
		w.p.log.Warn("provider unavailable: holding records back and pausing fetching until it answers", "err", err)
	}
}

func (w *partitionWorker) unhold() {
	w.setPaused(pauseHeld, false)
	if w.p.held.Add(-1) == 0 {
		w.p.log.Info("provider available again: resumed fetching")
	}
}

// produceOutput writes the enriched event. The record is finished when Kafka
// acknowledges it.
func (p *Processor) produceOutput(ctx context.Context, w *partitionWorker, in *kgo.Record, ev *Event, res Result) {
	value, err := p.codec.Encode(ev, Enrichment{
		Status:    res.Status,
		Res:       res.Res,
		Date:      ev.Date,
		OrderID:   res.OrderID,
		Source:    res.Source,
		CheckedAt: p.cfg.Now(),
		Mode:      res.Mode,
	})
	if err != nil {
		p.deadLetter(ctx, w, in, ClassOutputRejected, "the enriched event could not be encoded: "+err.Error())
		return
	}
	out := &kgo.Record{
		Topic:     p.cfg.OutputTopic,
		Key:       in.Key,
		Value:     value,
		Headers:   withHeaders(in.Headers, kgo.RecordHeader{Key: HeaderStatus, Value: []byte(res.Status)}),
		Timestamp: in.Timestamp,
		Context:   ctx, // the process span: the kotel hook injects traceparent from it
	}
	offset := in.Offset
	p.cl.Produce(context.Background(), out, func(_ *kgo.Record, err error) {
		switch {
		case err == nil:
			p.stats.produced.Add(1)
			p.stats.status(res.Status)
			w.track.done(offset)
		case abandoned(err):
		case recordRejected(err):
			p.deadLetter(ctx, w, in, ClassOutputRejected,
				fmt.Sprintf("Kafka refused the enriched event for topic %s: %v", p.cfg.OutputTopic, err))
		default:
			p.fail(fmt.Errorf("cannot write to the output topic %s: %w", p.cfg.OutputTopic, err))
		}
	})
}

// deadLetter writes the input's key and value byte for byte, its headers, and
// the reason to the dead-letter topic. The record is finished when Kafka
// acknowledges the dead letter; if the dead letter cannot be written the
// processor stops, because dropping the record is never an option.
func (p *Processor) deadLetter(ctx context.Context, w *partitionWorker, in *kgo.Record, class, reason string) {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("twosell.error_class", class))
	span.SetStatus(codes.Error, class)
	p.log.Debug("dead letter", "source", source(in), "class", class, "reason", reason)
	dl := &kgo.Record{
		Topic: p.cfg.DLQTopic,
		Key:   in.Key,
		Value: in.Value,
		Headers: withHeaders(in.Headers,
			kgo.RecordHeader{Key: HeaderError, Value: []byte(reason)},
			kgo.RecordHeader{Key: HeaderErrorClass, Value: []byte(class)},
			kgo.RecordHeader{Key: HeaderSource, Value: []byte(source(in))},
		),
		Timestamp: in.Timestamp,
		Context:   ctx,
	}
	offset := in.Offset
	p.cl.Produce(context.Background(), dl, func(_ *kgo.Record, err error) {
		switch {
		case err == nil:
			p.stats.deadLettered.Add(1)
			p.stats.deadLetterClass(class)
			w.track.done(offset)
		case abandoned(err):
		default:
			p.fail(fmt.Errorf("cannot write to the dead-letter topic %s: %w", p.cfg.DLQTopic, err))
		}
	})
}

// withHeaders copies the input's headers, replacing any with the same keys as
// the added ones (an input that went through twosell before must not carry
// two statuses).
func withHeaders(in []kgo.RecordHeader, add ...kgo.RecordHeader) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, 0, len(in)+len(add)+1) // +1: traceparent
outer:
	for _, h := range in {
		for _, a := range add {
			if h.Key == a.Key {
				continue outer
			}
		}
		out = append(out, h)
	}
	return append(out, add...)
}

// source names a record as topic/partition/offset.
func source(r *kgo.Record) string {
	return r.Topic + "/" + strconv.FormatInt(int64(r.Partition), 10) + "/" + strconv.FormatInt(r.Offset, 10)
}

// abandoned reports whether a produce failed only because the client is
// closing: the record stays unfinished and is delivered again.
func abandoned(err error) bool {
	return errors.Is(err, kgo.ErrClientClosed) || errors.Is(err, context.Canceled)
}

// recordRejected reports whether Kafka refused this one record for what it
// is (rather than the topic or cluster being unusable).
func recordRejected(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge) ||
		errors.Is(err, kerr.InvalidRecord)
}
