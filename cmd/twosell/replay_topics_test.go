package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/juhe/juhesim"
)

// README (Replay): --output-topic is required and dead letters go to
// --dlq-topic, by default <output-topic>.dlq; both come from the command
// line alone, since kafka.output_topic and kafka.dlq_topic are the live
// job's. Found by review: the errors about them said "set in the config
// file, TWOSELL_KAFKA_OUTPUT_TOPIC or --output-topic", of which only the
// flag counts, and a kafka.dlq_topic set for the live job was ignored
// without a word.
func TestReplayTopicsComeFromTheCommandLineAlone(t *testing.T) {
	t.Setenv("TWOSELL_JUHE_KEY", testKey)
	t.Setenv("TWOSELL_KAFKA_OUTPUT_TOPIC", "live-out")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "--input-topic", "in"}, "--output-topic is required"},
		{[]string{"replay", "--input-topic", "in", "--output-topic", "in"}, "set with --output-topic; replay takes it from the command line alone"},
		{[]string{"replay", "--input-topic", "in.dlq", "--output-topic", "in"}, `set with --dlq-topic, by default the output topic + ".dlq"; replay takes it from the command line alone`},
	} {
		var stdout, stderr syncBuffer
		code := Main(t.Context(), c.args, &stdout, &stderr)
		if out := stderr.String(); code == 0 || !strings.Contains(out, c.want) || strings.Contains(out, "set in the config file") ||
			!strings.Contains(out, "TWOSELL_KAFKA_") || !strings.Contains(out, "not ") {
			t.Errorf("%v: exit %d, want an error with %q, saying the file and the variable do not count:\n%s", c.args, code, c.want, out)
		}
	}

	k, _, cfg, _, _ := replayFixture(t)
	var recs []*kgo.Record
	for i, m := range juhesim.Population(3) {
		recs = append(recs, &kgo.Record{Topic: cfg.Kafka.InputTopic,
			Value: fmt.Appendf(nil, `{"event_id":"e-%d","mobile":%q,"registered_at":"2023-05-01"}`, i, m)})
	}
	recs = append(recs, &kgo.Record{Topic: cfg.Kafka.InputTopic, Value: []byte("not json")})
	k.Produce(recs...)
	live := k.Name("live-dlq")
	t.Setenv("TWOSELL_KAFKA_DLQ_TOPIC", live)

	// Without --dlq-topic: <output-topic>.dlq, and a WARN that the live
	// job's dead-letter topic is not used.
	out := k.Name("replay")
	s, logs := runReplayCmd(t, replayArgs(cfg, out))
	if s.DLQTopic != out+".dlq" || s.DeadLetters != 1 || len(k.ConsumeAll(t.Context(), out+".dlq")) != 1 {
		t.Errorf("dead letters: %d to %q, want 1 to %q", s.DeadLetters, s.DLQTopic, out+".dlq")
	}
	if !strings.Contains(logs, "kafka.dlq_topic") || !strings.Contains(logs, live) {
		t.Errorf("no warning that kafka.dlq_topic %q is not the replay's:\n%s", live, logs)
	}

	// With --dlq-topic: there, and nothing to warn of.
	out2, dlq := k.Name("replay"), k.Name("replay-dlq")
	s, logs = runReplayCmd(t, replayArgs(cfg, out2, "--dlq-topic", dlq))
	if s.DLQTopic != dlq || len(k.ConsumeAll(t.Context(), dlq)) != 1 {
		t.Errorf("dead letters to %q, want %q", s.DLQTopic, dlq)
	}
	if strings.Contains(logs, "kafka.dlq_topic") {
		t.Errorf("a warning about kafka.dlq_topic though --dlq-topic was given:\n%s", logs)
	}
}
