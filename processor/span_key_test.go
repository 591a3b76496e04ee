package processor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Registration events are commonly keyed by the phone number. The processor
// copies the key into the output by design, but its spans (kotel's consume,
// process and produce spans, exported over OTLP) carried it too, as
// messaging.kafka.message.key: the plain mobile left the process in every
// trace, where logs and reasons mask it (173****5678). (Found by a security
// review.) The spans carry it masked now.
func TestSpansDoNotCarryPlainMobile(t *testing.T) {
	const mobile = "17398765432"
	h := newHarness(t, 1)
	h.kafka.Produce(
		&kgo.Record{Topic: h.in, Key: []byte(mobile),
			Value: []byte(`{"event_id":"e-1","mobile":"` + mobile + `","registered_at":"2024-01-02"}`)},
		&kgo.Record{Topic: h.in, Key: []byte(mobile), // dead-lettered
			Value: []byte(`{"event_id":"e-2","mobile":"` + mobile + `x","registered_at":"2024-01-02"}`)},
	)
	_, stop := h.start(h.config(answer))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h.kafka.Consume(ctx, countAtLeast(2), h.out, h.dlq)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	masked := 0
	for _, s := range h.spans.Ended() {
		for _, a := range s.Attributes() {
			if a.Key == "messaging.kafka.message.key" && a.Value.Emit() == "173****5432" {
				masked++
			}
			if strings.Contains(a.Value.Emit(), mobile[3:]) {
				t.Errorf("span %q: attribute %s = %q holds the plain mobile", s.Name(), a.Key, a.Value.Emit())
			}
		}
		for _, e := range s.Events() {
			for _, a := range e.Attributes {
				if strings.Contains(a.Value.Emit(), mobile[3:]) {
					t.Errorf("span %q event %q: attribute %s = %q holds the plain mobile", s.Name(), e.Name, a.Key, a.Value.Emit())
				}
			}
		}
	}
	if masked == 0 {
		t.Error("no span carries the key masked (173****5432)")
	}
}
