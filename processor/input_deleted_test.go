package processor_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// The input topic deleted, or deleted and created again, while the
// processor reads it: it stops, with an error that says so (readiness
// false, exit 1), where it retried for ever, still ready; franz-go does not
// adopt a recreated topic's ID, so the records written to the new topic
// waited for a restart nothing asked for (found by a walkthrough).
func TestInputTopicDeletedStopsTheProcessor(t *testing.T) {
	t.Parallel()
	for _, recreate := range []bool{false, true} {
		t.Run(map[bool]string{false: "deleted", true: "recreated"}[recreate], func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 1)
			h.produceEvents(3)
			p, stop := h.start(h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
				return fakeAnswer(l), nil
			})))
			defer stop()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			h.kafka.Consume(ctx, countAtLeast(3), h.out)
			adm := kadm.NewClient(h.kafka.Client())
			if _, err := adm.DeleteTopic(ctx, h.in); err != nil {
				t.Fatal(err)
			}
			want := "was deleted while twosell read it"
			if recreate {
				h.kafka.CreateTopics(1, h.in)
				h.produceEvents(2)
				want = "was deleted and created again while twosell read it"
			}
			kafkatest.WaitFor(t, func() bool { return p.Err() != nil }) // the processor's own stop
			err := stop()
			var fatal *processor.FatalError
			if !errors.As(err, &fatal) || !strings.Contains(err.Error(), want) {
				t.Errorf("Run = %v (processor: %v); want a fatal error saying the input topic %s", err, p.Err(), want)
			}
		})
	}
}
