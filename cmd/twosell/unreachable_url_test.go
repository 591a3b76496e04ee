package main

import (
	"net"
	"strings"
	"testing"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/processor/kafkatest"
)

// Found by a walkthrough: run with juhe.url at a port nothing listens on
// logged "connection refused" and the breaker opening, and nothing of the
// setting to check, as query does. The breaker's line now names it.
func TestRunUnreachableProviderNamesTheSetting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	k := kafkatest.New(t)
	cfg := testConfig(t, k, url, juhe.ModePlain)
	k.Produce(records(pipelineEvents(cfg.Kafka.InputTopic, 20))...)
	logs := &syncBuffer{}
	_, client, stop := runInProcess(t, cfg, logs)
	kafkatest.WaitFor(t, func() bool { return client.BreakerState() == "open" })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "circuit breaker state changed") && strings.Contains(line, `"to":"open"`) {
			if !strings.Contains(line, `"check":"juhe.url (--juhe-url, TWOSELL_JUHE_URL)`) {
				t.Errorf("the breaker's line does not name juhe.url: %s", line)
			}
			return
		}
	}
	t.Fatalf("no line of the breaker opening:\n%s", logs.String())
}
