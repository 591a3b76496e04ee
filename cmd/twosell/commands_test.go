package main

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor/kafkatest"
)

// Without the ledger: a direct call, each case its own.
func TestQuery(t *testing.T) {
	sim, url := newSim(t, juhesim.Faults{})
	t.Setenv("TWOSELL_JUHE_KEY", testKey)
	t.Setenv("TWOSELL_LEDGER_ENABLED", "false")
	sim.Register(juhesim.Population(100)...) // for the digest modes
	recycled, notRecycled := "", ""
	for _, m := range juhesim.Population(100) {
		switch _, res := juhesim.Expect(m, "20200101"); res {
		case 1:
			recycled = m
		case 2:
			notRecycled = m
		}
	}
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStatus string
		wantErr    string
	}{
		{"recycled", []string{recycled, "--date", "20200101"}, 0, "recycled", ""},
		{"formats as the processor reads them", []string{"+86 " + notRecycled[:3] + "-" + notRecycled[3:], "--date", "2020-01-01"}, 0, "not_recycled", ""},
		{"sha256 mode", []string{recycled, "--date", "20200101", "--juhe-mode", "sha256"}, 0, "recycled", ""},
		{"wrong key is an error", []string{recycled, "--date", "20200101"}, 1, "", "10001"},
		// 232702 says what to check at once (found by review: only a run
		// of them did, which one query never makes).
		{"wrong openid says what to check", []string{recycled, "--date", "20200101", "--juhe-mode", "aes"}, 1, "", "check juhe.mode (aes) and juhe.openid"},
		{"no date", []string{recycled}, 2, "", "--date is required"},
		{"bad mobile", []string{"12345", "--date", "20200101"}, 2, "", "11 digits"},
		{"bad date", []string{recycled, "--date", "tomorrow"}, 2, "", "--date"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			switch tt.name {
			case "wrong key is an error":
				t.Setenv("TWOSELL_JUHE_KEY", "not-the-key")
			case "wrong openid says what to check":
				t.Setenv("TWOSELL_JUHE_OPENID", "not-the-openid")
			}
			var stdout, stderr syncBuffer
			args := append([]string{"query", "--juhe-url", url}, tt.args...)
			code := Main(t.Context(), args, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if tt.wantErr != "" && !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q does not say %q", stderr.String(), tt.wantErr)
			}
			if out := stderr.String() + stdout.String(); strings.Contains(out, testKey) || strings.Contains(out, "not-the-openid") {
				t.Error("the key or the openid was printed")
			}
			if tt.code != 0 {
				return
			}
			var got queryResult
			if err := json.Unmarshal([]byte(stdout.String()), &got); err != nil {
				t.Fatalf("stdout %q is not one JSON line: %v", stdout.String(), err)
			}
			if got.Status != tt.wantStatus || got.Source != "api" || got.Date != "20200101" || !regexp.MustCompile(`^1\d\d\*{4}\d{4}$`).MatchString(got.Mobile) {
				t.Errorf("got %+v, want status %s on 20200101 with the mobile masked", got, tt.wantStatus)
			}
		})
	}
}

// "twosell dev" on a taken address says which flag picks another.
// dev refuses values its flags cannot mean, naming the flag, before it
// starts anything.
func TestDevUsage(t *testing.T) {
	for _, tt := range []struct{ args, want string }{
		{"--partitions -2", "--partitions -2: want 1 or more"},
		{"--generate -5", "--generate -5: want 0 (none) or more"},
		{"--sim-latency -1s", "--sim-latency -1s: want 0 or more"},
		{"--show -1", "--show -1: want 0 or more"},
	} {
		var stdout, stderr syncBuffer
		code := Main(t.Context(), append([]string{"dev"}, strings.Fields(tt.args)...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("dev %s: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}
}

func TestDevAddressInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, flag := range []string{"--kafka-addr", "--sim-addr"} {
		args := []string{"dev", "--kafka-addr", "127.0.0.1:0", "--sim-addr", "127.0.0.1:0", "--metrics-addr", ""}
		args = append(args, flag, taken.Addr().String())
		var stdout, stderr syncBuffer
		if code := Main(t.Context(), args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "choose another address with "+flag) {
			t.Errorf("%s taken: exit %d, stderr %q; want 1 and the flag named", flag, code, stderr.String())
		}
	}
}

// "twosell dev" on free ports: the sample events are all processed, a
// client produces to and consumes from the broker it printed, and it exits
// 0 when told to stop.
// startDevCmd runs "twosell dev" on free ports with args until ctx ends; exit
// gives its exit status.
func startDevCmd(ctx context.Context, args ...string) (stdout, stderr *syncBuffer, exit <-chan int) {
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- Main(ctx, append([]string{"dev", "--kafka-addr", "127.0.0.1:0", "--sim-addr", "127.0.0.1:0", "--sim-latency", "1ms"}, args...), stdout, stderr)
	}()
	return stdout, stderr, code
}

func TestDev(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout, stderr, exit := startDevCmd(ctx, "--metrics-addr", "127.0.0.1:0", "--generate", "200")
	kafkatest.WaitFor(t, func() bool { return strings.Contains(stdout.String(), "all 200 sample events processed") })
	out := stdout.String()
	broker := regexp.MustCompile(`kafka broker\s+(\S+)`).FindStringSubmatch(out)
	if broker == nil {
		t.Fatalf("no broker address in:\n%s", out)
	}
	if !strings.Contains(out, "enriched  key=") || !strings.Contains(out, "invalid_") {
		t.Errorf("dev shows no enriched events or no dead-letter classes:\n%s", out)
	}
	metricsURL := regexp.MustCompile(`metrics\s+(http://\S+/metrics)`).FindStringSubmatch(out)
	if metricsURL == nil {
		t.Fatalf("no metrics address in:\n%s", out)
	}
	if body := scrape(t, metricsURL[1]); !strings.Contains(body, `twosell_records_produced_total{status="recycled"}`) {
		t.Errorf("dev's /metrics has no produced events:\n%s", body)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(broker[1]), kgo.ConsumeTopics(devOutputTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	mine := &kgo.Record{Topic: devInputTopic, Key: []byte("u-test"),
		Value: []byte(`{"event_id":"from-test","mobile":"` + devSample() + `","registered_at":"2024-01-02"}`)} // the query line's number
	if err := cl.ProduceSync(ctx, mine).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 60*time.Second)
	defer pcancel()
	found := false
	for !found && pctx.Err() == nil {
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
			if strings.Contains(string(r.Value), `"event_id":"from-test"`) {
				found = true
				if h, _ := headerValue(r, "traceparent"); h == "" {
					t.Error("the enriched event has no traceparent")
				}
			}
		})
	}
	if !found {
		t.Fatal("the event produced by a client never came out enriched")
	}

	// The query line dev prints works as printed: the key it gives is the
	// simulator's, and its ledger is read under the secret it gives, so
	// the number dev answered is answered from the ledger (found by review:
	// no key was printed, and every other command paid again).
	var qout, qerr syncBuffer
	if code := Main(ctx, devQueryLine(t, out), &qout, &qerr); code != 0 || !strings.Contains(qout.String(), `"source":"cache"`) ||
		strings.Contains(qerr.String(), "cache.secret") || strings.Contains(qerr.String(), "shorter than") {
		t.Errorf("dev's query line: exit %d, stdout %s, stderr %s; want the ledger's answer, without a warning", code, qout.String(), qerr.String())
	}

	cancel()
	if code := <-exit; code != 0 {
		t.Fatalf("dev exited %d, want 0; stderr:\n%s", code, stderr.String())
	}
}

// devQueryLine sets the environment dev's printed query line sets, and
// returns its command line.
func devQueryLine(t *testing.T, out string) []string {
	t.Helper()
	query := regexp.MustCompile(`query:\s+((?:TWOSELL_\w+=\S+ )+)twosell (query .*)`).FindStringSubmatch(out)
	if query == nil {
		t.Fatalf("no query line in:\n%s", out)
	}
	for _, kv := range strings.Fields(query[1]) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return strings.Fields(query[2])
}

// Found by a walkthrough: dev in an AES mode printed neither its mode nor
// the openid the mode needs, and the query line it printed asked in plain
// mode. Its lines now carry both, and the query line works as printed.
func TestDevQueryLineInAnAESMode(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout, stderr, exit := startDevCmd(ctx, "--metrics-addr", "", "--generate", "0", "--juhe-mode", "sha256+aes")
	kafkatest.WaitFor(t, func() bool { return strings.Contains(stdout.String(), "stop:") })
	out := stdout.String()
	if !strings.Contains(out, "TWOSELL_JUHE_MODE=sha256+aes TWOSELL_JUHE_OPENID=") {
		t.Errorf("dev does not print the mode and the openid for other commands:\n%s", out)
	}
	var qout, qerr syncBuffer
	if code := Main(ctx, devQueryLine(t, out), &qout, &qerr); code != 0 || !strings.Contains(qout.String(), `"mode":"sha256+aes"`) ||
		strings.Contains(qout.String(), "no_record") {
		t.Errorf("dev's query line: exit %d, stdout %s, stderr %s; want an answer in sha256+aes, of a number the simulator knows", code, qout.String(), qerr.String())
	}
	cancel()
	if code := <-exit; code != 0 {
		t.Fatalf("dev exited %d, want 0; stderr:\n%s", code, stderr.String())
	}
}

// "twosell bench" runs end to end on its own broker and simulator processes
// (this test binary, as "twosell") and reports every field. It checks the
// fields' consistency, never their speed.
func TestBench(t *testing.T) {
	t.Setenv("TWOSELLTEST_MAIN", "1") // the children run main
	var stdout, stderr syncBuffer
	code := Main(t.Context(), []string{"bench", "--events", "400", "--latency", "1ms", "--in-flight", "16",
		"--partitions", "2", "--distinct", "50", "--fetch-max-wait", "20ms", "--json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(stdout.String()), &got); err != nil {
		t.Fatalf("stdout %q: %v", stdout.String(), err)
	}
	for _, f := range []string{"events", "seconds", "throughput", "passthrough_throughput", "ratio_passthrough",
		"bound", "ratio_bound", "cpu_us_per_event", "p50_ms", "p99_ms", "peak_heap_mb", "api_calls",
		"passthrough_cpu_us_per_event", "broker_cpu_us_per_event", "passthrough_broker_cpu_us_per_event", "sim_cpu_us_per_event"} {
		if _, ok := got[f]; !ok {
			t.Errorf("no field %q in %s", f, stdout.String())
		}
	}
	if got["fetch_max_wait_ms"] != 20.0 {
		t.Errorf("fetch_max_wait_ms %v, want 20 (--fetch-max-wait)", got["fetch_max_wait_ms"])
	}
	// With --distinct most answers come from knowledge: no provider bound.
	if got["events"] != 400.0 || got["done"] != 400.0 || got["bound"] != nil || got["ratio_bound"] != nil {
		t.Errorf("events %v done %v bound %v ratio_bound %v; want 400, 400, null and null", got["events"], got["done"], got["bound"], got["ratio_bound"])
	}
	if pc := got["passthrough_cpu_us_per_event"].(float64); pc <= 0 {
		t.Errorf("passthrough_cpu_us_per_event %v: the passthrough used no CPU?", pc)
	}
	for _, f := range []string{"broker_cpu_us_per_event", "passthrough_broker_cpu_us_per_event", "sim_cpu_us_per_event"} {
		if v, ok := got[f].(float64); !ok || v < 0 {
			t.Errorf("%s %v", f, got[f])
		}
	}
	if calls := got["api_calls"].(float64); calls < 1 || calls > 400 {
		t.Errorf("api_calls %v: want between 1 and one per event", calls)
	}
	// The calls as twosell saw them: the simulator's 1 ms at least.
	if p50, top := got["call_p50_ms"].(float64), got["call_max_ms"].(float64); p50 < 1 || top < p50 {
		t.Errorf("call_p50_ms %v, call_max_ms %v: want at least the latency, the most at least the median", p50, top)
	}
	if tp, pt := got["throughput"].(float64), got["passthrough_throughput"].(float64); tp <= 0 || pt <= 0 {
		t.Errorf("throughput %v, passthrough %v", tp, pt)
	}
	// The passthrough ran twice, before twosell and after it; it is taken
	// at the mean of their times, which lies between their rates.
	before, _ := got["passthrough_throughput_before"].(float64)
	after, _ := got["passthrough_throughput_after"].(float64)
	if pt := got["passthrough_throughput"].(float64); before <= 0 || after <= 0 || pt < min(before, after) || pt > max(before, after) ||
		math.Abs(pt-2/(1/before+1/after)) > 1e-6*pt {
		t.Errorf("passthrough %v from runs of %v and %v: want the rate of their mean time", pt, before, after)
	}
	// Every record of a mobile's first lookup went to the provider: there
	// is a warm-up, within the run.
	if w, ok := got["warmup_seconds"].(float64); !ok || w <= 0 || w > got["seconds"].(float64) {
		t.Errorf("warmup_seconds %v, seconds %v: want a warm-up within the run", got["warmup_seconds"], got["seconds"])
	}
	// The first outputs come within each phase: after its start, before
	// its end.
	if f, ok := got["first_output_ms"].(float64); !ok || f <= 0 || f > got["seconds"].(float64)*1000 {
		t.Errorf("first_output_ms %v, seconds %v: want the first output within the run", got["first_output_ms"], got["seconds"])
	}
	if f, ok := got["passthrough_first_output_ms"].(float64); !ok || f <= 0 || f > got["events"].(float64)/got["passthrough_throughput"].(float64)*1000 {
		t.Errorf("passthrough_first_output_ms %v, passthrough_throughput %v: want the first output within its run",
			got["passthrough_first_output_ms"], got["passthrough_throughput"])
	}
}

// With --rounds, the bench measures that many times, independently, and
// reports the round of the median ratio, listing every round's.
func TestBenchRounds(t *testing.T) {
	t.Setenv("TWOSELLTEST_MAIN", "1") // the children run main
	var stdout, stderr syncBuffer
	code := Main(t.Context(), []string{"bench", "--events", "200", "--latency", "1ms", "--in-flight", "16",
		"--partitions", "2", "--distinct", "20", "--fetch-max-wait", "20ms", "--rounds", "3", "--json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	var got struct {
		Rounds       int       `json:"rounds"`
		Ratios       []float64 `json:"ratio_passthrough_rounds"`
		Ratio        float64   `json:"ratio_passthrough"`
		Throughput   float64   `json:"throughput"`
		Passthrough  float64   `json:"passthrough_throughput"`
		DoneJSON     int       `json:"done"`
		APICallsJSON int       `json:"api_calls"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &got); err != nil {
		t.Fatalf("stdout %q: %v", stdout.String(), err)
	}
	if got.Rounds != 3 || len(got.Ratios) != 3 || strings.Count(stderr.String(), "bench: round ") != 3 {
		t.Fatalf("rounds %d, ratios %v; stderr:\n%s", got.Rounds, got.Ratios, stderr.String())
	}
	sorted := slices.Sorted(slices.Values(got.Ratios))
	if got.Ratio != sorted[1] || math.Abs(got.Ratio-got.Throughput/got.Passthrough) > 1e-9*got.Ratio {
		t.Errorf("ratio_passthrough %v of rounds %v: want the median, the reported round's own", got.Ratio, got.Ratios)
	}
	// Each round is its own: its calls are paid again, on its own simulator.
	if got.DoneJSON != 200 || got.APICallsJSON < 1 {
		t.Errorf("the reported round did %d events with %d paid calls", got.DoneJSON, got.APICallsJSON)
	}
}

// A child's CPU is read from /proc as the kernel counts it: here, this
// process's own, against getrusage's.
func TestChildCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	for x := 0; processCPU() < 200*time.Millisecond; x++ { // CPU to count
		_ = math.Sqrt(float64(x))
	}
	self := &childCommand{cmd: &exec.Cmd{Process: &os.Process{Pid: os.Getpid()}}}
	before := processCPU()
	got := self.cpu()
	after := processCPU()
	// /proc counts in 10 ms ticks.
	if got < before-20*time.Millisecond || got > after+20*time.Millisecond {
		t.Errorf("/proc says %v of CPU, getrusage %v to %v", got, before, after)
	}
}

// Bad bench flags are refused before anything starts, naming the flag.
func TestBenchUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--events", "0"}, "--events, --in-flight, --partitions and --rounds must be at least 1"},
		{[]string{"--rounds", "0"}, "--rounds must be at least 1"},
		{[]string{"--rounds", "3", "--cpuprofile", "cpu.out"}, "use them with --rounds 1"},
		{[]string{"--fetch-max-wait", "5ms"}, "--fetch-max-wait 5ms is not valid; valid: 10ms to 1m"},
		{[]string{"--fetch-max-wait", "2m"}, "--fetch-max-wait 2m0s is not valid"},
		// Found by review: refused after the backlog and the passthrough,
		// exit 1, pointing at settings bench does not read.
		{[]string{"--ordering", "foo"}, `invalid value "foo" for flag -ordering: "foo" is not valid; valid: key, partition, none`},
	} {
		var stdout, stderr syncBuffer
		code := Main(t.Context(), append([]string{"bench"}, tt.args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("bench %v: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
		if strings.Contains(stderr.String(), "bench: passthrough") {
			t.Errorf("bench %v started before refusing its flags: %q", tt.args, stderr.String())
		}
	}
}

// A flag no command knows, or a value of the wrong kind, is a usage error:
// exit 2, the flag package's message and the flags' usage printed once.
func TestFlagErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--bogus"},
		{"query", "--bogus", "17312345678", "--date", "20240102"},
		{"query", "17312345678", "--date", "20240102", "--juhe-timeout", "5"},
		{"gen", "--events", "many"},
		{"replay", "--bogus"},
		{"ledger", "export", "--bogus"},
		{"dev", "--partitions", "x"},
		{"broker", "--bogus"},
		{"sim", "--bogus"},
		{"bench", "--events", "x"},
	} {
		var stdout, stderr syncBuffer
		code := Main(t.Context(), args, &stdout, &stderr)
		if code != 2 || strings.Count(stderr.String(), "flag provided but not defined")+strings.Count(stderr.String(), "invalid value") != 1 {
			t.Errorf("%v: exit %d, want 2 and the error once:\n%s", args, code, stderr.String())
		}
	}
}

func TestSteadyState(t *testing.T) {
	start := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	acks := func(from, to, step int) []time.Time {
		var a []time.Time
		for ms := from; ms <= to; ms += step {
			a = append(a, at(ms))
		}
		return a
	}
	tests := []struct {
		name       string
		end, warm  time.Time
		acked      []time.Time
		warmup, tp float64 // -1: null
	}{
		{"no record went to the provider", at(1000), time.Time{}, acks(1, 1000, 1), -1, -1},
		{"warm-up, then 800 records in 800 ms", at(1000), at(200), append(acks(1, 200, 1), acks(201, 1000, 1)...), 0.2, 1000},
		{"nothing after the warm-up", at(700), at(200), acks(10, 200, 10), 0.2, -1},
		{"fewer than a tenth after the warm-up", at(1000), at(950), acks(1, 1000, 1), 0.95, -1},
		{"less than 100 ms after the warm-up", at(1000), at(950), append(acks(1, 10, 1), acks(951, 1000, 1)...), 0.95, -1},
		{"--duration: acknowledged while stopping", at(1000), at(1050), acks(10, 1100, 10), 1, -1},
		{"--duration: not counted after the end", at(1000), at(200), acks(1, 2000, 1), 0.2, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upTo := func(limit time.Time) (n int) { // the acknowledgements counted by then
				for _, a := range tt.acked {
					if !a.After(limit) {
						n++
					}
				}
				return n
			}
			w, tp := steadyState(start, tt.end, tt.warm, upTo(tt.warm), upTo(tt.end))
			check := func(what string, got *float64, want float64) {
				t.Helper()
				switch {
				case want < 0 && got != nil:
					t.Errorf("%s = %v, want null", what, *got)
				case want >= 0 && got == nil:
					t.Errorf("%s = null, want %v", what, want)
				case want >= 0 && math.Abs(*got-want) > 1e-9*math.Max(1, want):
					t.Errorf("%s = %v, want %v", what, *got, want)
				}
			}
			check("warmup", w, tt.warmup)
			check("throughput", tp, tt.tp)
		})
	}
}

// Ctrl-C while dev is still producing its sample events is a stop like any
// other: exit 0 (README: "runs until Ctrl-C").
func TestDevStoppedWhileProducing(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the signal came before (or while) the samples are produced
	var stdout, stderr syncBuffer
	code := Main(ctx, []string{"dev", "--kafka-addr", "127.0.0.1:0", "--sim-addr", "127.0.0.1:0", "--metrics-addr", ""}, &stdout, &stderr)
	if code != 0 {
		t.Errorf("exit %d, want 0; stderr: %s", code, stderr.String())
	}
}

// An export that fails leaves the file named by --output as it was. (Found
// by review: it was truncated before the export began.)
func TestLedgerExportKeepsTheFileOnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	path := filepath.Join(t.TempDir(), "june.csv")
	if err := os.WriteFile(path, []byte("last month's reconciled export\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	code := Main(t.Context(), []string{"ledger", "export", "--brokers", addr, "--output", path}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), "reconciled") {
		t.Errorf("a failed export truncated %s to %q", path, b)
	}
}

// "twosell query" without its MOBILE argument is a usage error (exit 2), as
// README says, whatever the configuration. (Found by review: exit 1, with
// the missing key's error.)
func TestQueryWithoutMobileIsUsage(t *testing.T) {
	t.Setenv("TWOSELL_JUHE_KEY", "")
	var stdout, stderr syncBuffer
	if code := Main(t.Context(), []string{"query"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2; stderr: %s", code, stderr.String())
	}
}

// "twosell ledger -h" answers with its usage, as every command's -h does.
func TestLedgerHelp(t *testing.T) {
	var stdout, stderr syncBuffer
	if code := Main(t.Context(), []string{"ledger", "-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "twosell ledger export [--from-day") {
		t.Errorf("exit %d, stderr %q; want 0 and the usage", code, stderr.String())
	}
}

// A misspelled TWOSELL_ variable stops the commands that read the settings
// before they do anything (a budget typo would spend without a limit), and
// is none of the other commands' business.
func TestUnknownEnvironmentVariable(t *testing.T) {
	t.Setenv("TWOSELL_JUHE_DAILYBUDGET", "100")
	for _, cmd := range []string{"run", "replay", "query", "gen", "ledger"} {
		var stdout, stderr syncBuffer
		code := Main(t.Context(), []string{cmd, "--print-config"}, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "twosell "+cmd+": unknown environment variable TWOSELL_JUHE_DAILYBUDGET (did you mean TWOSELL_JUHE_DAILY_BUDGET?)") {
			t.Errorf("%s: exit %d, stderr %q", cmd, code, stderr.String())
		}
	}
	for _, args := range [][]string{{"bench", "-h"}, {"run", "-h"}} {
		var stdout, stderr syncBuffer
		if code := Main(t.Context(), args, &stdout, &stderr); code != 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}

// A broker listening on a wildcard gives clients a name they can reach:
// --advertise, else this machine's name; "::" was what they got.
func TestBrokerAdvertisesAReachableHost(t *testing.T) {
	host, _ := os.Hostname()
	for _, tt := range []struct{ addr, advertise, want string }{
		{"0.0.0.0:0", "localhost", "localhost"},
		{":0", "", host},
		{"127.0.0.1:0", "", "127.0.0.1"},
	} {
		cluster, err := startBroker(tt.addr, kfake.ListenFn(advertisedListen(tt.addr, tt.advertise)))
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(cluster.ListenAddrs()[0])
		cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:" + port))
		if err != nil {
			t.Fatal(err)
		}
		m, err := kadm.NewClient(cl).BrokerMetadata(t.Context())
		cl.Close()
		cluster.Close()
		if err != nil || len(m.Brokers) != 1 || m.Brokers[0].Host != tt.want {
			t.Errorf("%s --advertise %q: brokers %+v (%v), want host %q", tt.addr, tt.advertise, m.Brokers, err, tt.want)
		}
	}
}

// --advertise takes a host: the port is the one the broker listens on.
func TestBrokerAdvertiseIsAHost(t *testing.T) {
	var stdout, stderr syncBuffer
	if code := Main(t.Context(), []string{"broker", "--addr", "127.0.0.1:0", "--advertise", "kafka:9092"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "a host only") {
		t.Errorf("exit %d, stderr %q; want 2 and what --advertise takes", code, stderr.String())
	}
}

// The broker's line gives the address clients are given; where that is not
// the bound host, a second line says what is bound (found by a walkthrough:
// "--addr 127.0.0.1:P --advertise myhost.example" printed only "listening on
// myhost.example:P").
func TestBrokerSaysWhatItBinds(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- Main(ctx, []string{"broker", "--addr", "127.0.0.1:0", "--advertise", "myhost.example"}, &stdout, &stderr)
	}()
	kafkatest.WaitFor(t, func() bool { return strings.Contains(stdout.String(), "(bound") })
	out := stdout.String()
	m := regexp.MustCompile(`^kafka broker listening on myhost\.example:(\d+)\n  \(bound to 127\.0\.0\.1:(\d+);`).FindStringSubmatch(out)
	if m == nil || m[1] != m[2] {
		t.Errorf("broker printed %q; want the address given to clients, then the one bound, on one port", out)
	}
	cancel()
	if code := <-exit; code != 0 {
		t.Errorf("exit %d, stderr %s", code, stderr.String())
	}
}

// The commands that read no settings (dev, sim, bench, broker) show their
// flags and refuse a bad value as the others do: "--latency", and what the
// value should have been (found by a walkthrough: "Usage of sim:", "-latency",
// and "parse error").
func TestOwnFlagsAreShownAndRefusedAsSettingsAre(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"sim", "--latency", "5"}, 2, []string{`invalid value "5" for flag -latency: expected a Go duration such as 500ms`, "Usage: twosell sim [flags]", "  --latency duration\n"}},
		{[]string{"bench", "--json=maybe"}, 2, []string{`"maybe" for -json: expected true or false`, "  --json\n"}},
		{[]string{"bench", "--events", "many"}, 2, []string{`"many" for flag -events: expected an integer`, "--events int\n", "(default 50000)"}},
		{[]string{"dev", "-h"}, 0, []string{"Usage: twosell dev [flags]", "  --generate int\n"}},
		{[]string{"broker", "--help"}, 0, []string{"Usage: twosell broker [flags]", "  --addr string\n"}},
	} {
		var stdout, stderr syncBuffer
		code := Main(t.Context(), tt.args, &stdout, &stderr)
		for _, w := range tt.want {
			if code != tt.code || !strings.Contains(stderr.String(), w) {
				t.Errorf("%v: exit %d, stderr:\n%s\nwant %d and %q", tt.args, code, stderr.String(), tt.code, w)
				break
			}
		}
		if strings.Contains(stderr.String(), "parse error") || strings.Contains(stderr.String(), "Usage of") || strings.Contains(stderr.String(), "TWOSELL_<SECTION>") {
			t.Errorf("%v: Go's own usage or errors, or the settings' note:\n%s", tt.args, stderr.String())
		}
	}
}
