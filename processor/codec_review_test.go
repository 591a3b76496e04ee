package processor_test

// Tests from a review of the data contract, input to output (twenty-third
// session). Each TestReview* test but TestReviewREADMEExample failed on the
// code as reviewed, for the defect its comment names; the comments say what
// was wrong.

import (
	"context"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/processor"
)

func zzCodec(t *testing.T, cfg processor.CodecConfig) *processor.Codec {
	t.Helper()
	cfg.Location = shanghai(t)
	c, err := processor.NewCodec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// README "Input" example in, README "Output" example out: the member the
// README shows, last, and everything else byte for byte. (Passes: recorded
// as checked.)
func TestReviewREADMEExample(t *testing.T) {
	const in = `{"event_id": "e-1", "user_id": "u-9", "mobile": "17312345678", "registered_at": "2024-01-02T03:04:05+08:00", "anything": 12345678901234567890}`
	const member = `"twosell":{"schema":1,"status":"recycled","res":1,"date":"20240102","order_id":"JH327202401020304050001","source":"api","checked_at":"2024-01-02T03:04:06Z","mode":"plain"}`
	c := zzCodec(t, processor.CodecConfig{})
	ev, err := c.Decode([]byte(in), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Encode(ev, processor.Enrichment{Status: processor.StatusRecycled, Res: 1, OrderID: "JH327202401020304050001",
		Source: "api", CheckedAt: time.Date(2024, 1, 2, 3, 4, 6, 0, time.UTC), Mode: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	want := in[:len(in)-1] + "," + member + "}"
	if string(out) != want {
		t.Fatalf("output\n %s\nwant\n %s", out, want)
	}
	// And the first example of the README (kcat): +86 with spaces and dashes.
	ev, err = c.Decode([]byte(`{"event_id":"e-1","mobile":"+86 173-1234-5678","registered_at":"2024-01-02T03:04:05+08:00"}`), time.Time{})
	if err != nil || ev.Mobile != "17312345678" || ev.Date != "20240102" {
		t.Fatalf("kcat example: %+v, %v", ev, err)
	}
}

// RFC 8259 §8.1: JSON exchanged between systems MUST be UTF-8; DESIGN:
// consumers of the enriched topic need a stable output schema. Decode
// accepts a value whose unknown string member holds a byte that is not
// UTF-8 and Encode copies it, so the enriched event is not valid JSON for
// strict consumers (Jackson: "Invalid UTF-8 start byte 0xff"), while the
// record is neither dead-lettered nor repaired.
func TestReviewOutputIsUTF8(t *testing.T) {
	c := zzCodec(t, processor.CodecConfig{})
	in := []byte("{\"mobile\":\"17312345678\",\"registered_at\":\"2024-01-02\",\"nickname\":\"\xff\xfe\"}")
	ev, err := c.Decode(in, time.Time{})
	if err != nil {
		if ie, ok := processor.AsInputError(err); ok && ie.Class == processor.ClassInvalidJSON {
			return // dead-lettered: fine
		}
		t.Fatal(err)
	}
	out, err := c.Encode(ev, processor.Enrichment{Status: processor.StatusRecycled, Res: 1, CheckedAt: time.Unix(1704124800, 0), Mode: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(out) {
		t.Fatalf("the enriched event is not UTF-8 (not RFC 8259 JSON), and the input was not dead-lettered: %q", out)
	}
}

// README "Input": an event with the mobile field twice, "or keys that
// differ in case only, such as mobile and Mobile", is dead-lettered,
// because Go's encoding/json reads the last in any case. NewCodec (and
// config's validateFieldNames) refuse only names that are equal, so with
// input.id_field "Mobile" the second member is taken for the id and never
// counted: the event is enriched for one number while a Go consumer reads
// the other.
func TestReviewCaseVariantFieldSettingBypassesDuplicateCheck(t *testing.T) {
	c, err := processor.NewCodec(processor.CodecConfig{Location: shanghai(t), IDField: "Mobile"})
	if err != nil {
		return // refused: fine
	}
	in := []byte(`{"mobile":"17312345678","Mobile":"13987654321","registered_at":"2024-01-02"}`)
	ev, err := c.Decode(in, time.Time{})
	if ie, ok := processor.AsInputError(err); ok && ie.Class == processor.ClassDuplicateField {
		return
	}
	var consumer struct {
		Mobile string `json:"mobile"`
	}
	_ = json.Unmarshal(in, &consumer)
	t.Fatalf("Decode = mobile %v, err %v: enriched for %s, but a Go consumer reads mobile %s", ev.Mobile, err, ev.Mobile, consumer.Mobile)
}

// The same gap on the output side: NewCodec says it fails when "the output
// member would overwrite an input field", but only for equal names. With
// output.field "Mobile", the added member folds onto the mobile field for
// Go's encoding/json, and a consumer that decodes the mobile cannot read
// the enriched event at all.
func TestReviewOutputFieldFoldsOntoMobile(t *testing.T) {
	c, err := processor.NewCodec(processor.CodecConfig{Location: shanghai(t), OutputField: "Mobile"})
	if err != nil {
		return // refused: fine
	}
	ev, err := c.Decode([]byte(`{"mobile":"17312345678","registered_at":"2024-01-02"}`), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Encode(ev, processor.Enrichment{Status: processor.StatusRecycled, Res: 1, CheckedAt: time.Unix(1704124800, 0), Mode: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	var consumer struct {
		Mobile string `json:"mobile"`
	}
	if err := json.Unmarshal(out, &consumer); err != nil || consumer.Mobile != "17312345678" {
		t.Fatalf("a consumer of %s reads mobile %q, %v", out, consumer.Mobile, err)
	}
}

// Headers through the engine: one run, three inputs.
//
//   - README "Output": "a traceparent (W3C) is set to the record's produce
//     span". An input with two traceparent headers keeps the second, stale
//     one: kotel's carrier replaces only the first. OpenTelemetry Java reads
//     headers().lastHeader("traceparent"): the stale one.
//   - An input that is a dead letter sent back (redriven) after its fix
//     still carries twosell-error, twosell-error-class and twosell-source;
//     its enriched event keeps them, next to twosell-status: a consumer
//     routing on the headers sees an enriched event that says
//     invalid_mobile. (appendHeaders replaces only the keys it adds.)
//   - An input that went through twosell before carries twosell-status;
//     its dead letter keeps it: a dead letter that says "recycled". The
//     code's own rule (withHeaders: "an input that went through twosell
//     before must not carry two statuses") stops at the output.
func TestReviewHeaders(t *testing.T) {
	h := newHarness(t, 1)
	twoTraceparents := &kgo.Record{Topic: h.in, Key: []byte("u-1"),
		Value: []byte(`{"event_id":"tp","mobile":"17312345671","registered_at":"2024-01-02"}`),
		Headers: []kgo.RecordHeader{
			{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
			{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203332-01")},
		}}
	redriven := &kgo.Record{Topic: h.in, Key: []byte("u-2"),
		Value: []byte(`{"event_id":"redriven","mobile":"17312345672","registered_at":"2024-01-02"}`),
		Headers: []kgo.RecordHeader{
			{Key: processor.HeaderError, Value: []byte(`field "mobile" ("123****") has 5 digits`)},
			{Key: processor.HeaderErrorClass, Value: []byte(processor.ClassInvalidMobile)},
			{Key: processor.HeaderSource, Value: []byte("registrations/0/7")},
		}}
	reenrichedBad := &kgo.Record{Topic: h.in, Key: []byte("u-3"),
		Value:   []byte(`{"event_id":"bad","mobile":"12345","registered_at":"2024-01-02","twosell":{"schema":1,"status":"recycled"}}`),
		Headers: []kgo.RecordHeader{{Key: processor.HeaderStatus, Value: []byte("recycled")}}}
	h.kafka.Produce(twoTraceparents, redriven, reenrichedBad)
	_, stop := h.start(h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		return fakeAnswer(l), nil
	})))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := h.kafka.Consume(ctx, countAtLeast(3), h.out, h.dlq)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	byID := map[string]*kgo.Record{}
	for _, r := range got {
		byID[eventID(t, r.Value)] = r
	}
	t.Run("one traceparent", func(t *testing.T) {
		r := byID["tp"]
		if r == nil || r.Topic != h.out {
			t.Fatalf("no output for the event: %v", r)
		}
		if n := headerCount(r, "traceparent"); n != 1 {
			var tps []string
			for _, hd := range r.Headers {
				if hd.Key == "traceparent" {
					tps = append(tps, string(hd.Value))
				}
			}
			t.Fatalf("output has %d traceparent headers, want 1: %q", n, tps)
		}
	})
	t.Run("output of a redriven dead letter", func(t *testing.T) {
		r := byID["redriven"]
		if r == nil || r.Topic != h.out {
			t.Fatalf("no output for the event: %v", r)
		}
		var stale []string
		for _, k := range []string{processor.HeaderError, processor.HeaderErrorClass, processor.HeaderSource} {
			if v, ok := header(r, k); ok {
				stale = append(stale, k+": "+v)
			}
		}
		if len(stale) > 0 {
			s, _ := header(r, processor.HeaderStatus)
			t.Fatalf("enriched event (%s: %s) carries dead-letter headers %q", processor.HeaderStatus, s, stale)
		}
	})
	t.Run("dead letter of a re-enriched event", func(t *testing.T) {
		r := byID["bad"]
		if r == nil || r.Topic != h.dlq {
			t.Fatalf("no dead letter for the event: %v", r)
		}
		if v, ok := header(r, processor.HeaderStatus); ok {
			class, _ := header(r, processor.HeaderErrorClass)
			t.Fatalf("dead letter (%s: %s) carries %s: %s", processor.HeaderErrorClass, class, processor.HeaderStatus, v)
		}
	})
}
