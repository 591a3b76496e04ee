package processor

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor/kafkatest"
)

// A worker hands out the output record freed last, with its value's
// buffer; what its processor's workers keep is bounded, and given back
// when a worker stops.
func TestOutputFreeKeepsTheLastFreedWithinTheBound(t *testing.T) {
	var kept keptOutputs
	a, b, c := outputFree{kept: &kept}, outputFree{kept: &kept}, outputFree{kept: &kept}

	r1, r2 := a.get(), a.get()
	if r1 == r2 || r1.free != &a || r1.promise == nil {
		t.Fatalf("new records: %p %p, free %p, promise set %v", r1, r2, r1.free, r1.promise != nil)
	}
	r1.value = append(r1.value, make([]byte, 1000)...)
	r1.recycle()
	r2.recycle()
	if a.bytes != r1.size()+r2.size() || kept.bytes.Load() != keptChunk {
		t.Fatalf("the worker keeps %d bytes (want %d), the processor counts %d (want a chunk, %d)",
			a.bytes, r1.size()+r2.size(), kept.bytes.Load(), keptChunk)
	}
	if got := a.get(); got != r2 {
		t.Fatal("the last freed record is not handed out first")
	}
	got := a.get()
	if got != r1 || cap(got.value) < 1000 || len(got.value) != 0 || got.promise == nil {
		t.Fatalf("the record came back as %p (want %p), value len %d cap %d", got, r1, len(got.value), cap(got.value))
	}
	if a.bytes != 0 {
		t.Fatalf("the worker counts %d bytes with nothing kept", a.bytes)
	}

	// Up to the processor's bound, and no further, by any worker.
	var bs []*outputRecord
	for range maxKeptOutputBytes/maxPooledValue + 10 {
		r := b.get()
		r.value = make([]byte, 0, maxPooledValue)
		bs = append(bs, r)
	}
	for _, r := range bs {
		r.recycle()
	}
	if n := kept.bytes.Load(); n > maxKeptOutputBytes || a.bytes+b.bytes > n || b.bytes < maxKeptOutputBytes-2*keptChunk {
		t.Fatalf("the processor counts %d bytes for a bound of %d; the workers keep %d and %d", n, maxKeptOutputBytes, a.bytes, b.bytes)
	}
	r := c.get()
	r.value = make([]byte, 0, maxPooledValue)
	r.recycle()
	if len(c.recs) != 0 {
		t.Fatal("a record was kept over the bound")
	}

	// A worker that takes its records back gives back what it reserved.
	for len(b.recs) > 0 {
		b.get()
	}
	if b.bytes != 0 || b.reserved >= 2*keptChunk || kept.bytes.Load() != a.reserved+b.reserved {
		t.Fatalf("with nothing kept a worker reserves %d bytes; the processor counts %d", b.reserved, kept.bytes.Load())
	}
	for _, r := range bs {
		r.recycle()
	}

	// A stopped worker gives back what it reserved, and keeps nothing more.
	b.close()
	a.close()
	if n := kept.bytes.Load(); n != 0 {
		t.Fatalf("the processor counts %d bytes after its workers stopped", n)
	}
	b.get().recycle()
	if len(b.recs) != 0 || kept.bytes.Load() != 0 {
		t.Fatal("a stopped worker kept a record")
	}
}

// On a broker, an acknowledged output's record goes back to its worker,
// and a processor that stops keeps none.
func TestOutputRecordsGoBackToTheirWorker(t *testing.T) {
	k := kafkatest.New(t)
	in, out := k.Name("in"), k.Name("out")
	k.CreateTopics(2, in)
	const n = 200
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: in, Key: fmt.Appendf(nil, "u-%d", i),
			Value: fmt.Appendf(nil, `{"event_id":"e-%d","mobile":"1731234%04d","registered_at":"2024-01-02"}`, i, i)})
	}
	k.Produce(recs...)
	p, err := New(Config{
		ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, Group: k.Name("g"),
		InputTopic: in, OutputTopic: out, DLQTopic: out + ".dlq", CreateTopics: true,
		Enricher: EnricherFunc(func(context.Context, Lookup) (Result, error) {
			return Result{Status: StatusNotRecycled, Res: 2, Source: SourceAPI, OrderID: "JH1"}, nil
		}),
		Codec:  CodecConfig{Location: time.UTC},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := runInternal(t, p)
	kafkatest.WaitFor(t, func() bool { return p.Stats().Produced == n })
	kept := func() (recs int) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, w := range p.workers {
			w.outputs.mu.Lock()
			recs += len(w.outputs.recs)
			w.outputs.mu.Unlock()
		}
		return recs
	}
	kafkatest.WaitFor(t, func() bool { return kept() > 0 }) // the last promises may still run
	if p.keptOutputs.bytes.Load() <= 0 {
		t.Fatalf("the workers keep %d records and the processor counts %d bytes", kept(), p.keptOutputs.bytes.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b := p.keptOutputs.bytes.Load(); b != 0 {
		t.Fatalf("a stopped processor counts %d bytes of output records kept", b)
	}
	if got := len(k.ConsumeAll(t.Context(), out)); got != n {
		t.Fatalf("%d outputs, want %d", got, n)
	}
}

// A kept record holds nothing of its last use that points out of it: not
// the input record, its key or its headers' values, nor the contexts, nor a
// value's buffer over the bound. (recycle clears only these: the rest is
// written over by the next use.)
func TestRecycledOutputHoldsNothingOfItsInput(t *testing.T) {
	var kept keptOutputs
	f := outputFree{kept: &kept}
	for _, big := range []bool{false, true} {
		r := f.get()
		in := &kgo.Record{Key: []byte("user-1"), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("input's")}}}
		ctx := context.WithValue(context.Background(), struct{}{}, 1)
		r.value = make([]byte, 0, 512)
		if big {
			r.value = make([]byte, 0, maxPooledValue+1)
		}
		r.value = append(r.value, "{}"...)
		r.rec = kgo.Record{Key: in.Key, Value: r.value, Headers: appendHeaders(r.headers[:0], in.Headers, kgo.RecordHeader{Key: HeaderStatus, Value: []byte("ok")}), Context: ctx}
		r.in, r.ctx = in, ctx
		r.recycle()
		got := f.get()
		if got != r {
			t.Fatal("not the record kept")
		}
		if got.in != nil || got.ctx != nil || got.rec.Context != nil || got.rec.Key != nil || got.rec.Value != nil || got.rec.Headers != nil {
			t.Errorf("big %v: the kept record points out: in %v ctx %v rec %+v", big, got.in, got.ctx, got.rec)
		}
		for i, h := range got.headers {
			if h.Key != "" || h.Value != nil {
				t.Errorf("big %v: header %d kept: %+v", big, i, h)
			}
		}
		if big != (cap(got.value) == 0) {
			t.Errorf("big %v: value's buffer kept with cap %d", big, cap(got.value))
		}
		got.recycle()
	}
}

// An output whose headers outgrow the record's own array (an input with 4
// headers, or 3 and a traceparent appended by the kotel hook) has its first
// four headers in r.headers and the rest in a new slice. recycle cleared only
// the slice rec.Headers points to, and the array kept the input's header
// values (slices of franz-go's fetch buffers) alive while the record was
// kept. (Found by review.)
func TestRecycledOutputWithManyHeadersHoldsNothingOfItsInput(t *testing.T) {
	for _, c := range []struct {
		name      string
		inHeaders int
		kotel     bool
	}{
		{"4 input headers", 4, false},
		{"3 input headers and a traceparent", 3, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var kept keptOutputs
			f := outputFree{kept: &kept}
			r := f.get()
			in := &kgo.Record{Key: []byte("user-1")}
			for i := range c.inHeaders {
				in.Headers = append(in.Headers, kgo.RecordHeader{Key: fmt.Sprintf("h%d", i), Value: []byte("input's")})
			}
			ctx := context.Background()
			r.value = append(make([]byte, 0, 512), "{}"...)
			r.rec = kgo.Record{Key: in.Key, Value: r.value, Context: ctx,
				Headers: appendHeaders(r.headers[:0], in.Headers, kgo.RecordHeader{Key: HeaderStatus, Value: []byte("ok")})}
			if c.kotel { // what kotel's carrier Set does
				r.rec.Headers = append(r.rec.Headers, kgo.RecordHeader{Key: "traceparent", Value: []byte("00-...")})
			}
			r.in, r.ctx = in, ctx
			r.recycle()
			got := f.get()
			if got != r {
				t.Fatal("not the record kept")
			}
			for i, h := range got.headers {
				if h.Key != "" || h.Value != nil {
					t.Errorf("header %d kept by the recycled record: %q=%q", i, h.Key, h.Value)
				}
			}
		})
	}
}
