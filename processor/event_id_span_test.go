package processor_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The event id goes on the process span (twosell.event_id) masked as the
// record key is: as it is, masked if it is a mobile (an upstream that ids
// its events by the number), left out if it holds one written otherwise.
// Found by review: the id went out as it was, a plain mobile in every
// trace.
func TestEventIDOnSpansHidesAMobile(t *testing.T) {
	const mobile = "17398765432"
	h := newHarness(t, 1)
	h.kafka.Produce(
		&kgo.Record{Topic: h.in, Key: []byte("k-1"),
			Value: []byte(`{"event_id":"` + mobile + `","mobile":"` + mobile + `","registered_at":"2024-01-02"}`)},
		&kgo.Record{Topic: h.in, Key: []byte("k-2"),
			Value: []byte(`{"event_id":"reg-` + mobile + `","mobile":"` + mobile + `","registered_at":"2024-01-02"}`)},
		&kgo.Record{Topic: h.in, Key: []byte("k-3"),
			Value: []byte(`{"event_id":"e-3","mobile":"` + mobile + `","registered_at":"2024-01-02"}`)},
	)
	_, stop := h.start(h.config(answer))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h.kafka.Consume(ctx, countAtLeast(3), h.out, h.dlq)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, s := range h.spans.Ended() {
		for _, a := range s.Attributes() {
			if a.Key == "twosell.event_id" {
				ids[a.Value.AsString()]++
			}
		}
	}
	if len(ids) != 2 || ids["173****5432"] != 1 || ids["e-3"] != 1 {
		t.Errorf("twosell.event_id on spans: %v; want 173****5432 and e-3 once each, and no reg-...", ids)
	}
}
