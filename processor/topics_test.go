package processor_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// topicRetention reads a topic's retention.ms.
func topicRetention(t *testing.T, adm *kadm.Client, topic string) string {
	t.Helper()
	described, err := adm.DescribeTopicConfigs(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := described.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" {
			return c.MaybeValue()
		}
	}
	return ""
}

// A live run creates its output topics with the input's own retention, so
// that outputs, which keep their inputs' timestamps, are kept as long as
// those; and it warns when an existing output topic would delete the outputs
// of the group's backlog as soon as they are written, then runs on.
func TestRunOutputsKeptAsLongAsInputs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2)
	adm := kadm.NewClient(h.kafka.Client())
	month := fmt.Sprint(int64(30 * 24 * time.Hour / time.Millisecond))
	in := h.kafka.Name("registrations-30d")
	h.kafka.CreateTopicsWith(2, map[string]*string{"retention.ms": kadm.StringPtr(month)}, in)

	cfg := h.config(answer)
	cfg.InputTopic = in
	h.kafka.Produce(event(in, 100, false))
	_, stop := h.start(cfg)
	if got := h.kafka.Consume(t.Context(), countAtLeast(1), h.out); len(got) != 1 {
		t.Fatalf("%d outputs, want 1", len(got))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{h.out, h.dlq} {
		if got := topicRetention(t, adm, topic); got != month {
			t.Errorf("created topic %s has retention.ms=%s; want the input's %s", topic, got, month)
		}
	}

	// An output topic that keeps a day, and a backlog two days old.
	day := fmt.Sprint(int64(24 * time.Hour / time.Millisecond))
	out := h.kafka.Name("enriched-1d")
	h.kafka.CreateTopicsWith(2, map[string]*string{"retention.ms": kadm.StringPtr(day)}, out)
	backlog := h.kafka.Name("registrations-backlog")
	h.kafka.CreateTopicsWith(2, map[string]*string{"retention.ms": kadm.StringPtr(month)}, backlog)
	var recs []*kgo.Record
	for i := range 4 {

		r := event(backlog, i, false)
		r.Partition, r.Timestamp = int32(i%2), time.Now().Add(-48*time.Hour)
		recs = append(recs, r)
	}
	produceManually(t, h.kafka.Client(kgo.RecordPartitioner(kgo.ManualPartitioner())), recs)
	var logs safeBuffer
	cfg.InputTopic, cfg.OutputTopic, cfg.Group = backlog, out, h.kafka.Name("group-backlog")
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	_, stop = h.start(cfg)
	defer stop()
	if got := h.kafka.Consume(t.Context(), countAtLeast(4), out); len(got) != 4 {
		t.Fatalf("%d outputs, want 4: the warning does not stop the run", len(got))
	}
	warned := logs.String()
	for _, want := range []string{"outputs of the group's backlog would be deleted", out, "4 records of the backlog", "0:[0,2) 1:[0,2)", "retention.ms=" + day} {
		if !strings.Contains(warned, want) {
			t.Errorf("the log does not say %q:\n%s", want, warned)
		}
	}
	if strings.Contains(warned, h.dlq+`\" keeps`) { // slog quotes the message
		t.Errorf("warned about %s, which keeps a month:\n%s", h.dlq, warned)
	}
}
