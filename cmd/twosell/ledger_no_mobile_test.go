package main

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// README (Cache, Ledger): the cost controls know numbers only by their hash
// keyed by cache.secret, and the ledger never holds a number. Covered
// elsewhere: the processor's own ledger records hold no number
// (processor TestLedgerSharesKnowledge, a fake provider), the export has
// none (TestLedgerExport), the log above DEBUG has none and no secret
// (TestMetricsAndReadiness), one trace without cost controls
// has none (TestPipelineTracing), and the key, openid and SASL password
// appear nowhere in a run's logs, spans and outputs
// (TestSecretsNeverLeakFromThePipeline).
// Here, "twosell run" as wired (runProcessor: cost controls, ledger, DEBUG
// log, tracing) with real paid answers from the simulator: every record of
// the ledger topic (key, value, headers), every log line at every level and
// every span (name, attributes, events, status, links) holds no number of
// the stream, in clear or as its unkeyed digest, nor juhe.key, juhe.openid
// or cache.secret; and the ledger's keys are processor.HashMobile under
// cache.secret, not under any other secret (the one derived from juhe.key,
// used when cache.secret is not set).
func TestLedgerLogsAndSpansHoldNoMobile(t *testing.T) {
	useCostClock(t)
	k := kafkatest.New(t)
	sim, url := newSim(t, juhesim.Faults{})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	const cacheSecret = "Cache-Secret-6c0e93b1d7"
	cfg.Cache.Secret = cacheSecret
	cfg.Log.Level, cfg.Log.Format = "debug", "json"
	if err := cfg.Validate("run"); err != nil {
		t.Fatal(err)
	}
	mobiles := juhesim.Population(30)
	evs, recs := tenTimes(cfg.Kafka.InputTopic, mobiles)
	k.Produce(recs...)

	spans := tracetest.NewSpanRecorder()
	logs := &syncBuffer{}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan error, 1)
	noEnv := func(string) (string, bool) { return "", false }
	go func() { done <- runProcessor(runCtx, cfg, noEnv, logs, sdktrace.WithSpanProcessor(spans)) }()
	k.Consume(ctx, func(r []*kgo.Record) bool { return len(r) >= len(evs) }, cfg.Kafka.OutputTopic)
	stopRun()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	paid := sim.Stats().Requests
	if paid == 0 {
		t.Fatal("no paid call: the test proves nothing")
	}

	// What may not appear: each number, in clear and by its unkeyed
	// digests (an 11-digit number is found from them by trying every one);
	// the secrets. (Not pieces of a number: a mask shows some of its digits,
	// and 8 digits could be chance among the ids and durations.)
	type needle struct{ what, s string }
	var needles []needle
	for _, m := range mobiles {
		md := md5.Sum([]byte(m))
		sd := sha256.Sum256([]byte(m))
		needles = append(needles, needle{"the number " + m, m},
			needle{"the md5 of " + m, hex.EncodeToString(md[:])}, needle{"the sha256 of " + m, hex.EncodeToString(sd[:])})
	}
	needles = append(needles, needle{"juhe.key", testKey}, needle{"juhe.openid", testOpenID}, needle{"cache.secret", cacheSecret})
	search := func(where, text string) {
		t.Helper()
		for _, n := range needles {
			if i := strings.Index(text, n.s); i >= 0 {
				t.Errorf("%s holds %s: ...%s...", where, n.what, text[max(0, i-120):min(len(text), i+len(n.s)+60)])
				return
			}
		}
	}

	// The ledger topic. The keys the numbers have under cache.secret, and
	// under the secret derived from juhe.key, which cache.secret replaces.
	ledger := k.ConsumeAll(ctx, cfg.Ledger.Topic)
	want := map[string]bool{}  // under cache.secret
	other := map[string]bool{} // under the derived secret
	derived := *cfg
	derived.Cache.Secret = ""
	if cfg.CacheSecret() != cacheSecret || derived.CacheSecret() == "" {
		t.Fatalf("cache secrets %q and %q", cfg.CacheSecret(), derived.CacheSecret())
	}
	for _, m := range mobiles {
		key, otherKey := processor.HashMobile([]byte(cacheSecret), m).String(), processor.HashMobile([]byte(derived.CacheSecret()), m).String()
		if key == otherKey {
			t.Fatalf("%s has the same key under two secrets", m)
		}
		want[key], other[otherKey] = true, true
	}
	known, calls := map[string]bool{}, 0
	for _, r := range ledger {
		var text strings.Builder
		fmt.Fprintf(&text, "key %q value %q", r.Key, r.Value)
		for _, h := range r.Headers {
			fmt.Fprintf(&text, " header %q=%q", h.Key, h.Value)
		}
		search("the ledger record "+string(r.Key), text.String())
		for key := range other {
			if strings.Contains(text.String(), key) {
				t.Errorf("the ledger record %s holds a number's key under the secret derived from juhe.key, not under cache.secret", r.Key)
			}
		}
		switch key := string(r.Key); {
		case strings.HasPrefix(key, "k/"):
			if !want[strings.TrimPrefix(key, "k/")] {
				t.Errorf("knowledge record %s: its key is no number's HashMobile under cache.secret", key)
			}
			known[key] = true
		case strings.HasPrefix(key, "c/"):
			calls++
			var call struct {
				Key string `json:"key"`
			}
			if err := json.Unmarshal(r.Value, &call); err != nil || !want[call.Key] {
				t.Errorf("call record %s %s (%v): its key field is no number's HashMobile under cache.secret", key, r.Value, err)
			}
		default:
			t.Errorf("ledger record %q: neither knowledge (k/) nor a call (c/)", key)
		}
	}
	if len(known) != len(mobiles) || int64(calls) != paid {
		t.Errorf("the ledger knows %d numbers by their keys and holds %d calls; want the %d numbers of the stream and the %d requests the provider answered",
			len(known), calls, len(mobiles), paid)
	}

	// The log, every level.
	all := logs.String()
	if !strings.Contains(all, `"level":"DEBUG"`) || !strings.Contains(all, "ledger loaded") {
		t.Fatalf("no DEBUG line, or no word of the ledger, in the log: the search proves little\n%s", all)
	}
	for line := range strings.Lines(all) {
		search("the log line", line)
	}

	// The spans.
	names := map[string]bool{}
	for _, s := range spans.Ended() {
		names[s.Name()] = true
		var text strings.Builder
		fmt.Fprintf(&text, "span %s %v status %v %q", s.Name(), s.Attributes(), s.Status().Code, s.Status().Description)
		for _, ev := range s.Events() {
			fmt.Fprintf(&text, " event %s %v", ev.Name, ev.Attributes)
		}
		for _, l := range s.Links() {
			fmt.Fprintf(&text, " link %v", l.Attributes)
		}
		search("the span "+s.Name(), text.String())
	}
	for _, name := range []string{"twosell.cache", "juhe.query"} {
		if !names[name] {
			t.Errorf("no %s span among %v: the search proves little", name, keys(names))
		}
	}
}
