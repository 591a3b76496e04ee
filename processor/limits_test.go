package processor_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor"
)

func TestDecodeRecordLimits(t *testing.T) {
	t.Parallel()
	c, err := processor.NewCodec(processor.CodecConfig{Location: shanghai(t), MaxRecordBytes: 200, MaxHeaders: 3})
	if err != nil {
		t.Fatal(err)
	}
	valid := []byte(`{"mobile":"17312345678","registered_at":"2024-01-02"}`)
	hdr := func(n, size int) []kgo.RecordHeader {
		hs := make([]kgo.RecordHeader, n)
		for i := range hs {
			hs[i] = kgo.RecordHeader{Key: "h", Value: bytes.Repeat([]byte("v"), size)}
		}
		return hs
	}
	tests := []struct {
		name   string
		rec    *kgo.Record
		class  string   // "" for an event
		reason []string // in the reason
	}{
		{"within", &kgo.Record{Value: valid, Key: []byte("k"), Headers: hdr(3, 10)}, "", nil},
		{"value over", &kgo.Record{Topic: "in", Partition: 2, Offset: 7, Value: append(valid, bytes.Repeat([]byte(" "), 200)...)},
			processor.ClassTooLarge, []string{"is 253 bytes (key 0, value 253, headers 0)", "limit of 200 (input.max_record_bytes)", "in/2/7"}},
		{"key over", &kgo.Record{Value: valid, Key: bytes.Repeat([]byte("k"), 150)}, processor.ClassTooLarge, []string{"key 150"}},
		{"headers over in bytes", &kgo.Record{Value: valid, Headers: hdr(2, 80)}, processor.ClassTooLarge, []string{"headers 162"}},
		{"too many headers", &kgo.Record{Value: valid, Headers: hdr(4, 1)}, processor.ClassTooManyHeaders,
			[]string{"has 4 headers, more than the limit of 3 (input.max_headers)"}},
		// The size is checked before the value is read: an invalid value
		// over the limit is too large, not invalid JSON.
		{"invalid and over", &kgo.Record{Value: bytes.Repeat([]byte("{"), 300)}, processor.ClassTooLarge, nil},
		{"invalid within", &kgo.Record{Value: []byte("{")}, processor.ClassInvalidJSON, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := c.DecodeRecord(tt.rec)
			if tt.class == "" {
				if err != nil || ev.Mobile != "17312345678" {
					t.Fatalf("DecodeRecord = %+v, %v", ev, err)
				}
				return
			}
			ie, ok := processor.AsInputError(err)
			if !ok || ie.Class != tt.class {
				t.Fatalf("DecodeRecord error %v, want class %s", err, tt.class)
			}
			for _, want := range tt.reason {
				if !strings.Contains(ie.Reason, want) {
					t.Errorf("reason %q lacks %q", ie.Reason, want)
				}
			}
		})
	}

	// The defaults: 1 MiB and 64 headers.
	def, err := processor.NewCodec(processor.CodecConfig{Location: shanghai(t)})
	if err != nil {
		t.Fatal(err)
	}
	atLimit := append(bytes.Clone(valid), bytes.Repeat([]byte(" "), processor.DefaultMaxRecordBytes-len(valid)-64)...)
	if _, err := def.DecodeRecord(&kgo.Record{Value: atLimit, Headers: hdr(64, 0)}); err != nil { // 64 one-byte keys
		t.Errorf("a record at the default limits: %v", err)
	}
	if _, err := def.DecodeRecord(&kgo.Record{Value: append(atLimit, ' '), Headers: hdr(64, 0)}); err == nil {
		t.Error("a record one byte over the default limit was accepted")
	}
	if _, err := def.DecodeRecord(&kgo.Record{Value: valid, Headers: hdr(65, 0)}); err == nil {
		t.Error("65 headers were accepted")
	}
}

// Records beyond the limits become dead letters, never a stop: a record
// over the size limit without its bytes; one with too many headers byte for
// byte; and an event whose output and dead letter Kafka both refuse as too
// large, as a dead letter without the input's bytes. Exactly-once too,
// where the refusals abort the transaction and its retry dead-letters.
func TestLimitsDeadLetter(t *testing.T) {
	bothModes(t, testLimitsDeadLetter)
}

func testLimitsDeadLetter(t *testing.T, eos bool) {
	h := newHarnessMode(t, 1, eos)
	big := event(h.in, 1, false)
	big.Value = append(big.Value[:len(big.Value)-1], []byte(`,"pad":"`+strings.Repeat("x", 6000)+`"}`)...)
	headers := event(h.in, 2, false)
	for i := range 10 {
		headers.Headers = append(headers.Headers, kgo.RecordHeader{Key: fmt.Sprintf("h%d", i)})
	}
	refused := event(h.in, 3, false) // within the limit; its output is not
	refused.Value = append(refused.Value[:len(refused.Value)-1], []byte(`,"pad":"`+strings.Repeat("y", 3000)+`"}`)...)
	fine := event(h.in, 4, false)
	h.kafka.Produce(big, headers, refused, fine)

	cfg := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		return fakeAnswer(l), nil
	}))
	cfg.Codec.MaxRecordBytes = 5000
	cfg.Codec.MaxHeaders = 8
	// The producer refuses records over 3 KiB, as a topic with a small
	// max.message.bytes would.
	cfg.ClientOpts = append(cfg.ClientOpts, kgo.ProducerBatchMaxBytes(3<<10))
	_, stop := h.start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := h.kafka.Consume(ctx, countAtLeast(4), h.out, h.dlq)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	bySource := map[string]*kgo.Record{}
	for _, r := range got {
		if r.Topic == h.out {
			if id := eventID(t, r.Value); id != "e-4" {
				t.Errorf("%s was enriched", id)
			}
			continue
		}
		src, _ := header(r, processor.HeaderSource)
		bySource[src] = r
	}
	check := func(offset int, class string, payload bool, reason ...string) {
		t.Helper()
		src := fmt.Sprintf("%s/0/%d", h.in, offset)
		r := bySource[src]
		if r == nil {
			t.Fatalf("no dead letter for %s", src)
		}
		if c, _ := header(r, processor.HeaderErrorClass); c != class {
			t.Errorf("%s: class %q, want %q", src, c, class)
		}
		in := []*kgo.Record{big, headers, refused}[offset]
		if payload {
			_, hasOrigin := header(r, "origin")
			if !bytes.Equal(r.Value, in.Value) || !bytes.Equal(r.Key, in.Key) || !hasOrigin {
				t.Errorf("%s: the dead letter does not carry the input byte for byte", src)
			}
		} else if len(r.Value) != 0 || len(r.Key) != 0 || headerCount(r, "origin") != 0 {
			t.Errorf("%s: the dead letter carries the input's bytes (%d value bytes)", src, len(r.Value))
		}
		msg, _ := header(r, processor.HeaderError)
		for _, want := range reason {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: reason %q lacks %q", src, msg, want)
			}
		}
	}
	check(0, processor.ClassTooLarge, false, "more than the limit of 5000 (input.max_record_bytes)", h.in+"/0/0")
	check(1, processor.ClassTooManyHeaders, true, "has 12 headers, more than the limit of 8")
	check(2, processor.ClassOutputRejected, false, "Kafka refused the enriched event", "the dead letter omits the input's key, value and headers")
}
