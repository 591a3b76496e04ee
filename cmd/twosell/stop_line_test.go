package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor/kafkatest"
)

// Found by a walkthrough: after a stop that gave up records held back, the
// "stopped" line said consumed=77773 produced=75296 dead_lettered=1548,
// and 929 records were unaccounted for (the next start wrote them). It now
// counts them, and says what becomes of them.
func TestStoppedLineCountsWhatIsNotFinished(t *testing.T) {
	k := kafkatest.New(t)
	_, url := newSim(t, juhesim.Faults{Outage: juhesim.Outage503})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	evs := goodEvents(cfg.Kafka.InputTopic, 20)
	k.Produce(records(evs)...)
	logs := &syncBuffer{}
	proc, _, stop := runInProcess(t, cfg, logs)
	kafkatest.WaitFor(t, func() bool { s := proc.Stats(); return s.Consumed == int64(len(evs)) && s.HeldPartitions > 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(logs.String()) {
		var l struct {
			Msg         string `json:"msg"`
			Consumed    int64  `json:"consumed"`
			NotFinished int64  `json:"not_finished"`
			Are         string `json:"not_finished_are"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "stopped" {
			continue
		}
		if l.Consumed != int64(len(evs)) || l.NotFinished != l.Consumed || !strings.Contains(l.Are, "read again by the group") {
			t.Errorf("stopped line %s; want all %d records not finished, read again by the group", line, len(evs))
		}
		return
	}
	t.Fatalf("no stopped line:\n%s", logs.String())
}
