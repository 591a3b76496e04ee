package main

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// Distinctive secrets: any appearance of one, or of a piece of one, is a
// leak and not chance.
const (
	leakSASLPassword  = "Sasl-Pw-9d2e71c4b8"
	leakWrongPassword = "Wrong-Pw-41f7ac09e3"
	leakKey           = "Juhe-Key-3f6a0b8e5c"
	leakWrongKey      = "Wrong-Key-c81b5f27e4"
	leakOpenID        = "OpenID-71e4c9a2d0"
)

// A full pipeline runs with distinctive secrets through every path that
// could carry one — SASL_SSL with SCRAM-SHA-512, the provider over TLS with
// a private CA, the AES mode (openid and the AES key derived from it), GET
// (the key in the query string), a provider that echoes the key, the
// encrypted mobile and the openid in its error text, an outage that opens
// the breaker, dead letters, a wrong key (fatal), and a wrong SASL password
// at start — and every captured log line, error, span name, attribute,
// event and status, output record and dead letter (key, value, headers) is
// searched for them: zero hits. twosell has no metrics endpoint yet, so
// there are no metric labels to search.
func TestSecretsNeverLeakFromThePipeline(t *testing.T) {
	pki := newPKI(t, "kafka")
	k := securedCluster(t, config.SASLScramSHA512, "twosell", leakSASLPassword, pki, false)
	aesKey := string(juhe.AESKey(leakOpenID))

	// The provider: the simulator over TLS, behind a front that answers
	// the first requests with an unknown code whose text echoes what it got.
	sim, err := juhesim.New(juhesim.Config{Keys: []string{leakKey}, OpenID: leakOpenID, Population: -1})
	if err != nil {
		t.Fatal(err)
	}
	var echoed atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == juhe.PathQueryEncry && echoed.Add(1) <= 6 {
			_ = r.ParseForm()
			echo := fmt.Sprintf("echo key=%s mobile=%s openid=%s aeskey=%s url=%s", r.Form.Get("key"), r.Form.Get("mobile"),
				leakOpenID, aesKey, r.URL.String())
			fmt.Fprintf(w, `{"reason":%q,"result":null,"error_code":31337}`, echo)
			return
		}
		sim.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	juheCA := filepath.Join(t.TempDir(), "juhe-ca.pem")
	if err := os.WriteFile(juheCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	configure := func(key string) *config.Config {
		cfg := testConfig(t, k, srv.URL, juhe.ModeAES)
		cfg.Kafka.TLS = config.KafkaTLS{Enabled: true, CAFile: pki.caFile}
		cfg.Kafka.SASL = config.KafkaSASL{Mechanism: config.SASLScramSHA512, Username: "twosell", Password: leakSASLPassword}
		cfg.Juhe.Key, cfg.Juhe.OpenID = config.Secret(key), leakOpenID
		cfg.Juhe.Method = http.MethodGet
		cfg.Juhe.CAFile = juheCA
		cfg.Log.Level, cfg.Log.Format = "debug", "json"
		if err := cfg.Validate("run"); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	var (
		text  strings.Builder // everything that left the process
		spans = tracetest.NewSpanRecorder()
	)
	noEnv := func(string) (string, bool) { return "", false }
	ctx, cancel := context.WithTimeout(t.Context(), 120*time.Second)
	defer cancel()

	// Run 1: enrich everything, through the echoes and an outage.
	cfg := configure(leakKey)
	const n = 80
	evs := pipelineEvents(cfg.Kafka.InputTopic, n)
	k.Produce(records(evs)...)
	if err := sim.SetFaults(juhesim.Faults{Outage: juhesim.Outage503, AfterRequests: 30}); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runProcessor(runCtx, cfg, noEnv, logs, sdktrace.WithSpanProcessor(spans)) }()
	// Until the breaker opens: ten 503s did not always open it, when
	// answers to the calls made before the outage came between them (the
	// breaker opens after faults in a row).
	kafkatest.WaitFor(t, func() bool {
		return sim.Stats().ByOutage[juhesim.Outage503] >= 10 && strings.Contains(logs.String(), `"to":"open"`)
	})
	if err := sim.SetFaults(juhesim.Faults{}); err != nil {
		t.Fatal(err)
	}
	k.Consume(ctx, func(r []*kgo.Record) bool { return len(r) >= n }, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic)
	stopRun()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	got := k.ConsumeAll(ctx, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic)
	checkOutcomes(t, cfg, evs, got, false)
	writeRecords(&text, got)
	text.WriteString(logs.String())

	// Run 2: the wrong key, a fatal answer.
	cfg = configure(leakWrongKey)
	evs = pipelineEvents(cfg.Kafka.InputTopic, 20)
	k.Produce(records(evs)...)
	logs = &syncBuffer{}
	err = runProcessor(ctx, cfg, noEnv, logs, sdktrace.WithSpanProcessor(spans))
	if !errors.As(err, new(*processor.FatalError)) || !strings.Contains(err.Error(), "10001") {
		t.Fatalf("run with the wrong key: %v, want a fatal 10001", err)
	}
	fmt.Fprintf(&text, "%v\n%s\n", err, secrets.Redact(err.Error())) // as returned, and as Main prints it
	writeRecords(&text, k.ConsumeAll(ctx, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic))
	text.WriteString(logs.String())

	// Run 3: the wrong SASL password, through Main as a user runs it.
	cfg = configure(leakKey)
	t.Setenv("TWOSELL_JUHE_KEY", leakKey)
	t.Setenv("TWOSELL_JUHE_OPENID", leakOpenID)
	t.Setenv("TWOSELL_KAFKA_SASL_PASSWORD", leakWrongPassword)
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	var stdout, stderr syncBuffer
	if code := Main(ctx, []string{"run", "--config", writeConfigFile(t, cfg)}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d with the wrong SASL password, want 1:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "SASL SCRAM-SHA-512") || !strings.Contains(stderr.String(), k.Brokers[0]) {
		t.Errorf("the start-up error names neither the mechanism nor the broker:\n%s", stderr.String())
	}
	text.WriteString(stdout.String() + stderr.String())

	for _, s := range spans.Ended() {
		fmt.Fprintf(&text, "span %s %v %v %v\n", s.Name(), s.Attributes(), s.Status(), s.Links())
		for _, ev := range s.Events() {
			fmt.Fprintf(&text, "event %s %v\n", ev.Name, ev.Attributes)
		}
	}

	// The paths were taken, or the search proves little.
	all := text.String()
	for _, want := range []string{"31337", `"to":"open"`, "10001", processor.HeaderErrorClass, "juhe.query", "SASL SCRAM-SHA-512"} {
		if !strings.Contains(all, want) {
			t.Errorf("nothing shows %q: a path was not taken", want)
		}
	}
	if len(spans.Ended()) < n {
		t.Errorf("only %d spans recorded", len(spans.Ended()))
	}

	for _, secret := range []string{leakSASLPassword, leakWrongPassword, leakKey, leakWrongKey, leakOpenID, aesKey} {
		pieces := []string{secret}
		if secret != aesKey { // pieces of 16 hex digits could be chance
			pieces = append(pieces, secret[:10], secret[len(secret)-10:])
		}
		for _, p := range pieces {
			if i := strings.Index(all, p); i >= 0 {
				t.Errorf("%q (of a secret) leaked:\n...%s...", p, all[max(0, i-300):min(len(all), i+len(p)+100)])
			}
		}
	}
}

// writeRecords writes every part of the records as text.
func writeRecords(w *strings.Builder, recs []*kgo.Record) {
	for _, r := range recs {
		fmt.Fprintf(w, "record %s %q %q\n", r.Topic, r.Key, r.Value)
		for _, h := range r.Headers {
			fmt.Fprintf(w, "header %q %q\n", h.Key, h.Value)
		}
	}
}
