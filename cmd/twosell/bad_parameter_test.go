package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor/kafkatest"
)

// Found by a walkthrough: a record the provider refused (232702) was
// dead-lettered with "the provider rejected the request parameters" and no
// next step, where query, for the same answer, says what to check. The
// dead letter now says it too: the number as sent, which the mode and, in
// the AES modes, the openid make.
func TestBadParameterDeadLetterSaysWhatToCheck(t *testing.T) {
	k := kafkatest.New(t)
	_, url := newSim(t, juhesim.Faults{ErrorRates: map[int]float64{juhe.CodeBadParam: 1}})
	cfg := testConfig(t, k, url, juhe.ModeSHA256AES)
	evs := pipelineEvents(cfg.Kafka.InputTopic, 3)
	k.Produce(records(evs)...)
	_, _, stop := runInProcess(t, cfg, &syncBuffer{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	k.Consume(ctx, func(r []*kgo.Record) bool { return len(r) >= len(evs) }, cfg.Kafka.DLQTopic)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, r := range k.ConsumeAll(ctx, cfg.Kafka.DLQTopic) {
		class, _ := headerValue(r, "twosell-error-class")
		reason, _ := headerValue(r, "twosell-error")
		if class != ClassBadParameter || !strings.Contains(reason, "check juhe.mode (sha256+aes) and juhe.openid") {
			t.Errorf("dead letter %s: %q; want %s saying to check juhe.mode and juhe.openid", r.Key, reason, ClassBadParameter)
		}
	}
}
