package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor"
)

// benchOptions are the flags of "twosell bench".
type benchOptions struct {
	Events     int
	Latency    time.Duration
	InFlight   int
	Partitions int
	Distinct   int
	Duration   time.Duration
	QPS        float64
	Ordering   string
	// FetchMaxWait is processing.fetch_max_wait.
	FetchMaxWait time.Duration
	JSON         bool
	CPUProfile   string
	MemProfile   string
	Ledger       bool
	// Rounds: the whole measurement this many times, each on a broker and
	// a simulator of its own; the round of the median ratio is reported.
	Rounds int
}

// benchResult is what "twosell bench" prints; README documents each field.
type benchResult struct {
	Events                int     `json:"events"`
	Done                  int64   `json:"done"`
	DeadLetters           int64   `json:"dead_letters"`
	Seconds               float64 `json:"seconds"`
	Throughput            float64 `json:"throughput"`
	PassthroughThroughput float64 `json:"passthrough_throughput"`
	// The passthrough runs before twosell and again after it (see runBench):
	// PassthroughThroughput is of their mean time, and these are each
	// run's.
	PassthroughThroughputBefore float64 `json:"passthrough_throughput_before"`
	PassthroughThroughputAfter  float64 `json:"passthrough_throughput_after"`
	// The bench process's CPU during the passthrough ÷ events, in µs.
	PassthroughCPUMicrosPerEvent float64 `json:"passthrough_cpu_us_per_event"`
	// When the first output was acknowledged, from each phase's start.
	FirstOutputMillis            float64  `json:"first_output_ms"`
	PassthroughFirstOutputMillis float64  `json:"passthrough_first_output_ms"`
	RatioPassthrough             float64  `json:"ratio_passthrough"`
	Bound                        *float64 `json:"bound"`
	RatioBound                   *float64 `json:"ratio_bound"`
	CPUMicrosPerEvent            float64  `json:"cpu_us_per_event"`
	P50Millis                    float64  `json:"p50_ms"`
	P99Millis                    float64  `json:"p99_ms"`
	// The provider's calls as twosell saw them (the Enricher's time, its
	// retries included), against latency_ms: on a busy machine they take
	// longer than the simulator's latency (found in the twenty-ninth
	// session: 23–36 ms at 20 ms).
	CallP50Millis              float64 `json:"call_p50_ms"`
	CallMaxMillis              float64 `json:"call_max_ms"`
	PeakHeapMB                 float64 `json:"peak_heap_mb"`
	APICalls                   int64   `json:"api_calls"`
	LatencyMillis              float64 `json:"latency_ms"`
	InFlight                   int     `json:"in_flight"`
	Partitions                 int     `json:"partitions"`
	Distinct                   int     `json:"distinct"`
	Ordering                   string  `json:"ordering"`
	FetchMaxWaitMillis         float64 `json:"fetch_max_wait_ms"`
	AvgInFlight                float64 `json:"avg_in_flight"`
	BrokerCPUMicros            float64 `json:"broker_cpu_us_per_event"`
	PassthroughBrokerCPUMicros float64 `json:"passthrough_broker_cpu_us_per_event"`
	SimCPUMicros               float64 `json:"sim_cpu_us_per_event"`
	GOMAXPROCS                 int     `json:"gomaxprocs"`
	// After the warm-up: see steadyState.
	WarmupSeconds          *float64 `json:"warmup_seconds"`
	SteadyThroughput       *float64 `json:"steady_throughput"`
	RatioPassthroughSteady *float64 `json:"ratio_passthrough_steady"`
	// Each round's ratio_passthrough, in the order they ran (--rounds);
	// the other fields are the median round's.
	Rounds                 int       `json:"rounds"`
	RatioPassthroughRounds []float64 `json:"ratio_passthrough_rounds"`
}

// cmdBench is "twosell bench": in one run, on an embedded broker and the
// simulator (each in a process of its own, so that this process's CPU is
// twosell's), it produces the whole backlog, measures a bare franz-go
// consume→produce passthrough of it, then twosell end to end over the same
// records, and prints the ratios.
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o benchOptions
	fs.IntVar(&o.Events, "events", 50000, "events to produce before twosell starts (the backlog)")
	fs.DurationVar(&o.Latency, "latency", 20*time.Millisecond, "the simulated provider's latency")
	fs.IntVar(&o.InFlight, "in-flight", 256, "records in flight (processing.max_in_flight)")
	fs.IntVar(&o.Partitions, "partitions", 8, "partitions of the input topic")
	fs.IntVar(&o.Distinct, "distinct", 0, "distinct mobiles the events use (0: all distinct)")
	fs.DurationVar(&o.Duration, "duration", 0, "stop twosell after this long and report what was done (0: until all events are done)")
	fs.Float64Var(&o.QPS, "qps", 0, "the simulator's QPS limit, and twosell's juhe.qps (0: none)")
	o.Ordering = config.OrderingKey
	fs.Func("ordering", "processing.ordering: key, partition or none (default key)", func(s string) (err error) {
		o.Ordering, err = config.CheckChoice("processing.ordering", s)
		return err
	})
	fs.DurationVar(&o.FetchMaxWait, "fetch-max-wait", config.Default().Processing.FetchMaxWait,
		"processing.fetch_max_wait: how long the broker may hold a fetch that finds nothing new")
	fs.BoolVar(&o.JSON, "json", false, "print the result as one JSON object")
	fs.BoolVar(&o.Ledger, "ledger", true, "write paid answers to the ledger topic, as run does (--ledger=false measures without it)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the twosell phase to this file")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write a heap profile at the end of the twosell phase to this file")
	fs.IntVar(&o.Rounds, "rounds", 1, "measure this many times, each round on a broker and a simulator of its own, and report the round with the median ratio_passthrough (ratio_passthrough_rounds lists every round's)")
	if err := config.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	if o.Events < 1 || o.InFlight < 1 || o.Partitions < 1 || o.Distinct < 0 || o.Rounds < 1 {
		return usageError{"--events, --in-flight, --partitions and --rounds must be at least 1, --distinct at least 0"}
	}
	if o.Rounds > 1 && (o.CPUProfile != "" || o.MemProfile != "") {
		return usageError{"--cpuprofile and --memprofile profile one round: use them with --rounds 1"}
	}
	if !config.ValidFetchMaxWait(o.FetchMaxWait) {
		return usageError{fmt.Sprintf("--fetch-max-wait %s is not valid; valid: %s", o.FetchMaxWait, config.FetchMaxWaitRange)}
	}
	res, err := benchRounds(ctx, o, stderr)
	if err != nil {
		return err
	}
	if o.JSON {
		return printJSONLine(stdout, res)
	}
	printBench(stdout, res)
	return nil
}

// benchRounds runs the bench o.Rounds times and returns the round whose
// ratio_passthrough is the median (the upper of the two middle ones for an
// even count), with every round's ratio. The rounds are independent: a
// round's broker, simulator, backlog and cache are its own.
func benchRounds(ctx context.Context, o benchOptions, stderr io.Writer) (*benchResult, error) {
	var rounds []*benchResult
	var ratios []float64
	for i := range o.Rounds {
		if o.Rounds > 1 {
			fmt.Fprintf(stderr, "bench: round %d of %d\n", i+1, o.Rounds)
		}
		res, err := runBench(ctx, o, stderr)
		if err != nil {
			return nil, err
		}
		rounds, ratios = append(rounds, res), append(ratios, res.RatioPassthrough)
	}
	slices.SortStableFunc(rounds, func(a, b *benchResult) int { return cmp.Compare(a.RatioPassthrough, b.RatioPassthrough) })
	res := rounds[len(rounds)/2]
	res.Rounds, res.RatioPassthroughRounds = o.Rounds, ratios
	return res, nil
}

func runBench(ctx context.Context, o benchOptions, stderr io.Writer) (*benchResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	progress := func(format string, args ...any) { fmt.Fprintf(stderr, "bench: "+format+"\n", args...) }

	// The broker and the simulator run apart, so that this process's CPU is
	// twosell's (and the passthrough's, measured separately).
	broker, err := startChildCommand(ctx, self, "kafka broker listening on ", "broker", "--addr", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer broker.stop()
	simArgs := []string{"sim", "--addr", "127.0.0.1:0", "--latency", o.Latency.String(), "--population", "0"}
	if o.QPS > 0 {
		simArgs = append(simArgs, "--qps", fmt.Sprint(o.QPS))
	}
	sim, err := startChildCommand(ctx, self, "juhe simulator listening on ", simArgs...)
	if err != nil {
		return nil, err
	}
	defer sim.stop()
	brokers := []string{broker.addr}

	input, passWarm, passBefore, passAfter := "bench-input", "bench-passthrough-warmup", "bench-passthrough", "bench-passthrough-after"
	adm := kadm.NewClient(mustClient(kgo.SeedBrokers(brokers...)))
	defer adm.Close()
	for _, t := range []string{input, passWarm, passBefore, passAfter, "bench-enriched", "bench-dlq"} {
		if _, err := adm.CreateTopic(ctx, int32(o.Partitions), 1, nil, t); err != nil {
			return nil, fmt.Errorf("creating %s: %w", t, err)
		}
	}

	progress("producing %d events to %d partitions", o.Events, o.Partitions)
	if err := produceBenchEvents(ctx, brokers, input, o); err != nil {
		return nil, err
	}

	// The passthrough runs before twosell and after it, and is taken at
	// its mean: run first, on a broker and a process just started, it was
	// 12% slower (median of 14 runs) than run after twosell, which favoured
	// twosell when the passthrough ran first only.
	progress("passthrough: a bare franz-go consume→produce of the same records")
	// A first run, not counted: the first passthrough on a broker and a
	// process just started was 1.23 times slower than the next (median of
	// 14 runs, a review of the bench), while twosell never runs first; the
	// mean of the runs before and after twosell made up only half of it.
	if _, err := measurePassthrough(ctx, brokers, input, passWarm, o.Events, broker); err != nil {
		return nil, err
	}
	before, err := measurePassthrough(ctx, brokers, input, passBefore, o.Events, broker)
	if err != nil {
		return nil, err
	}

	progress("twosell: latency %s, %d in flight, ordering %s", o.Latency, o.InFlight, o.Ordering)
	others := func() (time.Duration, time.Duration) { return broker.cpu(), sim.cpu() }
	res, err := benchTwosell(ctx, brokers, "http://"+sim.addr, input, o, others)
	if err != nil {
		return nil, err
	}

	progress("passthrough again, after twosell")
	after, err := measurePassthrough(ctx, brokers, input, passAfter, o.Events, broker)
	if err != nil {
		return nil, err
	}
	n := float64(o.Events)
	res.PassthroughThroughput = 2 * n / (before.seconds + after.seconds)
	res.PassthroughThroughputBefore, res.PassthroughThroughputAfter = n/before.seconds, n/after.seconds
	res.PassthroughCPUMicrosPerEvent = float64((before.cpu + after.cpu).Microseconds()) / (2 * n)
	res.PassthroughFirstOutputMillis = float64(before.first+after.first) / 2 / float64(time.Millisecond)
	res.PassthroughBrokerCPUMicros = float64((before.brokerCPU + after.brokerCPU).Microseconds()) / (2 * n)
	res.RatioPassthrough = res.Throughput / res.PassthroughThroughput
	if res.SteadyThroughput != nil {
		// Not like for like (README): twosell without its start, the
		// passthrough with its own (about half of its run, its first
		// poll bringing the whole backlog). A review of the bench found no
		// like-for-like divisor in this passthrough: after its first
		// acknowledgement it only produces what it fetched.
		r := *res.SteadyThroughput / res.PassthroughThroughput
		res.RatioPassthroughSteady = &r
	}
	switch {
	case o.Distinct > 0:
		// Most answers come from knowledge, which the bound (calls in
		// flight over their latency) does not count: no bound applies.
	case o.Latency > 0:
		bound := float64(o.InFlight) / o.Latency.Seconds()
		if o.QPS > 0 {
			bound = math.Min(bound, o.QPS)
		}
		ratio := res.Throughput / bound
		res.Bound, res.RatioBound = &bound, &ratio
	case o.QPS > 0:
		bound := o.QPS
		ratio := res.Throughput / bound
		res.Bound, res.RatioBound = &bound, &ratio
	}
	res.APICalls, err = simRequests(context.WithoutCancel(ctx), "http://"+sim.addr) // after a Ctrl-C too
	if err != nil {
		return nil, err
	}
	return res, nil
}

// benchTwosell runs the processor over the backlog, in this process, and
// measures it: wall time, this process's CPU, the latency added per record,
// and the peak heap.
func benchTwosell(ctx context.Context, brokers []string, simURL, input string, o benchOptions, others func() (broker, sim time.Duration)) (*benchResult, error) {
	cfg := config.Default()
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.Group = fmt.Sprintf("bench-%d", time.Now().UnixNano())
	cfg.Kafka.InputTopic, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic = input, "bench-enriched", "bench-dlq"
	cfg.Juhe.URL = simURL
	cfg.Juhe.AllowInsecure = true
	cfg.Juhe.Key = benchKey
	cfg.Juhe.MaxConns = o.InFlight
	cfg.Processing.MaxInFlight = o.InFlight
	cfg.Processing.Ordering = o.Ordering
	cfg.Processing.FetchMaxWait = o.FetchMaxWait
	// A deployment that knows its provider's limit sets juhe.qps to it;
	// without it, twosell learns of the limit from 10012 answers, which
	// hold records back (DESIGN.md: quota).
	cfg.Juhe.QPS = o.QPS
	cfg.Ledger.Enabled = o.Ledger
	cfg.Log.Level = "warn"
	if err := cfg.Validate("run"); err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tp := noop.NewTracerProvider() // tracing costs are measured when a collector is configured; see README
	client, err := newJuheClient(&cfg, tp, metricnoop.NewMeterProvider(), log)
	if err != nil {
		return nil, err
	}
	defer client.Close() // the provider's connections

	added := make([]time.Duration, 0, o.Events/benchTimeEvery+1)
	// Counts, not the acknowledgement times: the bench's own bookkeeping
	// lives in the heap it measures.
	var acksAtLookup int     // records finished at lastLookup
	var lastLookup time.Time // the last acknowledgement of a record that waited for the provider
	var firstAck time.Time   // the first acknowledgement OnRecord reports (the first records wait for the provider)
	var addedMu sync.Mutex
	// The cost controls as "run" has them: with --distinct, most answers
	// come from the knowledge cache.
	calls := &timedEnricher{next: juheEnricher{client}}
	cost, err := openCostControl(ctx, &cfg, calls, "bench", tp, log)
	if err != nil {
		return nil, err
	}
	defer closeCostControl(ctx, cost)
	pc, err := processorConfig(&cfg, cost, tp, log)
	if err != nil {
		return nil, err
	}
	pc.OnRecordEvery = benchTimeEvery
	pc.OnRecord = func(t processor.RecordTiming) {
		addedMu.Lock()
		if t.Sampled {
			added = append(added, t.Added())
		}
		if t.Provider > 0 && t.Acked.After(lastLookup) {
			lastLookup, acksAtLookup = t.Acked, int(t.Done)
		}
		if firstAck.IsZero() || t.Acked.Before(firstAck) {
			firstAck = t.Acked
		}
		addedMu.Unlock()
	}
	proc, err := processor.New(pc)
	if err != nil {
		return nil, err
	}

	runtime.GC() // the producing phase's garbage is not twosell's
	var peak atomic.Uint64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	sampled := make(chan struct{})
	go func() { defer close(sampled); sampleHeap(sampleCtx, &peak) }()

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	broker0, sim0 := others()
	cpu0, start := processCPU(), time.Now()
	runErr := make(chan error, 1)
	go func() { runErr <- proc.Run(runCtx) }()

	deadline := make(<-chan time.Time)
	if o.Duration > 0 {
		t := time.NewTimer(o.Duration)
		defer t.Stop()
		deadline = t.C
	}
	// Every 10 ms, and every millisecond for the last 5% of the events:
	// the phase ends at the tick that sees them all done, and a 10 ms tick
	// throughout made it up to 10 ms longer than it was (the passthrough's
	// ends when its Flush returns).
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var s processor.Stats
	var inFlightSum, samples float64
	fine := 0 // ticks since the ticker went to 1 ms
wait:
	for {
		select {
		case err := <-runErr:
			stopSampling()
			return nil, fmt.Errorf("twosell stopped: %w", err)
		case <-deadline:
			break wait
		case <-ctx.Done():
			break wait
		case <-tick.C:
			s = proc.Stats()
			done := s.Produced + s.DeadLettered
			if done >= int64(o.Events) {
				break wait
			}
			if fine%10 == 0 { // avg_in_flight: a sample every 10 ms
				inFlightSum += float64(s.InFlight)
				samples++
			}
			switch {
			case fine > 0:
				fine++
			case done*20 >= int64(o.Events)*19:
				tick.Reset(time.Millisecond)
				fine = 1
			}
		}
	}
	seconds := time.Since(start).Seconds()
	s = proc.Stats()
	acksAtEnd := int(s.Produced + s.DeadLettered) // a --duration run finishes more while it stops
	cpu := processCPU() - cpu0
	broker1, sim1 := others()
	if o.MemProfile != "" {
		if err := writeHeapProfile(o.MemProfile); err != nil { // not in the CPU measured
			return nil, err
		}
	}
	stopSampling()
	<-sampled
	stopRun()
	if err := <-runErr; err != nil {
		return nil, err
	}

	done := s.Produced + s.DeadLettered
	addedMu.Lock()
	slices.Sort(added)
	res := &benchResult{
		Events:             o.Events,
		Done:               done,
		DeadLetters:        s.DeadLettered,
		Seconds:            seconds,
		Throughput:         float64(done) / seconds,
		CPUMicrosPerEvent:  float64(cpu.Microseconds()) / math.Max(1, float64(done)),
		P50Millis:          percentileMillis(added, 0.50),
		P99Millis:          percentileMillis(added, 0.99),
		CallP50Millis:      calls.percentileMillis(0.5),
		CallMaxMillis:      calls.percentileMillis(1),
		PeakHeapMB:         float64(peak.Load()) / (1 << 20),
		LatencyMillis:      float64(o.Latency) / float64(time.Millisecond),
		InFlight:           o.InFlight,
		Partitions:         o.Partitions,
		Distinct:           o.Distinct,
		Ordering:           o.Ordering,
		FetchMaxWaitMillis: float64(o.FetchMaxWait) / float64(time.Millisecond),
		GOMAXPROCS:         runtime.GOMAXPROCS(0),
		AvgInFlight:        inFlightSum / math.Max(1, samples),
		// The other processes' CPU over the same window, per event done:
		// where the machine's cores went.
		BrokerCPUMicros: float64((broker1 - broker0).Microseconds()) / math.Max(1, float64(done)),
		SimCPUMicros:    float64((sim1 - sim0).Microseconds()) / math.Max(1, float64(done)),
	}
	if !firstAck.IsZero() {
		res.FirstOutputMillis = float64(firstAck.Sub(start)) / float64(time.Millisecond)
	}
	res.WarmupSeconds, res.SteadyThroughput = steadyState(start, start.Add(time.Duration(seconds*float64(time.Second))), lastLookup, acksAtLookup, acksAtEnd)
	addedMu.Unlock()
	return res, nil
}

// steadyState splits the twosell phase (start to end) at warm, the last
// acknowledgement of a record that went to the provider (its own call or
// one it shared): after it, every record was answered from knowledge.
// atWarm and atEnd are the acknowledgements counted by then. It returns the
// warm-up's length and the throughput after it, or nils when no record went
// to the provider, or when fewer than a tenth of the records, or less than
// 100 ms, come after it (too little to measure a rate on).
func steadyState(start, end, warm time.Time, atWarm, atEnd int) (warmup, throughput *float64) {
	if warm.IsZero() {
		return nil, nil
	}
	// Records a --duration run finished while it stopped come after end:
	// they are not the run's.
	if warm.After(end) {
		warm, atWarm = end, atEnd
	}
	w := warm.Sub(start).Seconds()
	after := max(atEnd-atWarm, 0)
	span := end.Sub(warm)
	if after*10 < atEnd || span < 100*time.Millisecond {
		return &w, nil
	}
	tp := float64(after) / span.Seconds()
	return &w, &tp
}

// benchTimeEvery is how many records of twosell's phase are timed from
// their start to their acknowledgement for p50_ms and p99_ms: one in
// benchTimeEvery. Timing every record (two clock reads and a callback under
// a lock) cost a run of answers from knowledge 12% of its throughput.
const benchTimeEvery = 8

// benchKey is the simulator's key in "twosell bench"; not a secret.
const benchKey = "bench-key"

// produceBenchEvents writes the backlog: events spread over users (keys)
// and over o.Distinct mobiles.
func produceBenchEvents(ctx context.Context, brokers []string, topic string, o benchOptions) error {
	cl := mustClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond))
	defer cl.Close()
	distinct := o.Distinct
	if distinct == 0 {
		distinct = o.Events
	}
	mobiles := juhesim.Population(distinct)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i := range o.Events {
		m := mobiles[i%len(mobiles)]
		day := time.Date(2015+i%10, time.Month(1+i%12), 1+i%28, 0, 0, 0, 0, time.UTC)
		r := &kgo.Record{
			Topic: topic,
			Key:   fmt.Appendf(nil, "u-%d", i%(o.Events/4+1)),
			Value: fmt.Appendf(nil, `{"event_id":"e-%d","user_id":"u-%d","mobile":"%s","registered_at":"%s","channel":"app","device":{"os":"android","app_version":"5.3.1"},"referrer_id":9007199254740993123}`,
				i, i%(o.Events/4+1), m, day.Format("2006-01-02")),
		}
		wg.Add(1)
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return fmt.Errorf("producing the backlog: %w", err)
	}
	return nil
}

// passthroughRun is one measured passthrough.
type passthroughRun struct {
	seconds        float64       // from its start to its last acknowledgement
	first          time.Duration // to its first acknowledgement
	cpu, brokerCPU time.Duration // this process's and the broker's over it
}

// measurePassthrough runs a passthrough of n records from input to output
// and measures it.
func measurePassthrough(ctx context.Context, brokers []string, input, output string, n int, broker *childCommand) (passthroughRun, error) {
	runtime.GC() // the last phase's garbage is not this one's, as it is not twosell's
	cpu0, brokerCPU0 := processCPU(), broker.cpu()
	seconds, first, err := passthrough(ctx, brokers, input, output, n)
	if err != nil {
		return passthroughRun{}, err
	}
	return passthroughRun{seconds: seconds, first: first, cpu: processCPU() - cpu0, brokerCPU: broker.cpu() - brokerCPU0}, nil
}

// passthrough consumes n records from input and produces each to output,
// as a bare franz-go program would, and returns how long it took until
// every one was acknowledged, and until the first one was.
func passthrough(ctx context.Context, brokers []string, input, output string, n int) (float64, time.Duration, error) {
	// At least once, as the same job wired by hand would be (and as
	// twosell is): in a consumer group, each poll's records produced, their
	// acknowledgements awaited, then their offsets committed.
	cl := mustClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(fmt.Sprintf("bench-passthrough-%d", time.Now().UnixNano())),
		kgo.ConsumeTopics(input),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.DefaultProduceTopic(output),
	)
	defer cl.Close()
	var acked atomic.Int64
	var first atomic.Int64 // nanoseconds after start
	var firstErr atomic.Value
	start := time.Now()
	var end time.Time // the last acknowledgement, as twosell's phase ends (its commits come after)
	consumed := 0
	for consumed < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		fs.EachRecord(func(r *kgo.Record) {
			consumed++
			cl.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value, Headers: r.Headers}, func(_ *kgo.Record, err error) {
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
				if acked.Add(1) == 1 {
					first.Store(int64(time.Since(start)))
				}
			})
		})
		if err := cl.Flush(ctx); err != nil {
			return 0, 0, err
		}
		end = time.Now()
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			return 0, 0, fmt.Errorf("passthrough: committing: %w", err)
		}
	}
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, 0, fmt.Errorf("passthrough: %w", err)
	}
	return end.Sub(start).Seconds(), time.Duration(first.Load()), nil
}

// childCommand is "twosell sim" or "twosell broker" as a process of its own.
type childCommand struct {
	cmd  *exec.Cmd
	addr string
}

// startChildCommand starts self with args and waits for the line that
// starts with prefix and ends with its address.
func startChildCommand(ctx context.Context, self, prefix string, args ...string) (*childCommand, error) {
	// Not ended by a stop of the bench (Ctrl-C), which stops twosell
	// against them and reports what was done; the bench ends them (stop).
	cmd := exec.CommandContext(context.WithoutCancel(ctx), self, args...)
	cmd.SysProcAttr = childAttrs()
	cmd.Env = append(os.Environ(), "TWOSELL_JUHE_KEY="+benchKey)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &childCommand{cmd: cmd}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, prefix) {
			c.addr = strings.TrimPrefix(strings.TrimPrefix(line, prefix), "http://")
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return c, nil
		}
	}
	c.stop()
	return nil, fmt.Errorf("%s %s exited before saying where it listens", self, args[0])
}

// stop ends the child; calling it again does nothing more.
func (c *childCommand) stop() {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		_ = c.cmd.Wait()
	}
}

// cpu is the user and system CPU the running child has used so far (from
// /proc/PID/stat, in clock ticks of 10 ms, Linux's USER_HZ), or 0 where
// there is no /proc.
func (c *childCommand) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: utime and stime are the 14th and 15th
	// fields; comm may hold spaces, so count after its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// simRequests asks the simulator how many API requests it served.
func simRequests(ctx context.Context, simURL string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, simURL+"/sim/stats", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var st juhesim.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, fmt.Errorf("simulator stats: %w", err)
	}
	return st.Requests, nil
}

func mustClient(opts ...kgo.Opt) *kgo.Client {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		panic(err) // only with invalid options, which are fixed here
	}
	return cl
}

// sampleHeap records the largest live heap (objects' bytes) until ctx ends.
func sampleHeap(ctx context.Context, peak *atomic.Uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > peak.Load() {
			peak.Store(v)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// timedEnricher times the calls of next (few: the paid ones).
type timedEnricher struct {
	next processor.Enricher
	mu   sync.Mutex
	took []time.Duration
}

func (e *timedEnricher) Enrich(ctx context.Context, l processor.Lookup) (processor.Result, error) {
	start := time.Now()
	r, err := e.next.Enrich(ctx, l)
	took := time.Since(start)
	e.mu.Lock()
	e.took = append(e.took, took)
	e.mu.Unlock()
	return r, err
}

// percentileMillis is the q quantile of the calls' times, in ms.
func (e *timedEnricher) percentileMillis(q float64) float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	slices.Sort(e.took)
	return percentileMillis(e.took, q)
}

func percentileMillis(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return float64(sorted[max(0, i)]) / float64(time.Millisecond)
}

func printBench(w io.Writer, r *benchResult) {
	fmt.Fprintf(w, "events %d (done %d, dead letters %d) in %.2fs\n", r.Events, r.Done, r.DeadLetters, r.Seconds)
	fmt.Fprintf(w, "throughput %.0f/s; passthrough %.0f/s (ratio %.2f)\n", r.Throughput, r.PassthroughThroughput, r.RatioPassthrough)
	if r.Rounds > 1 {
		fmt.Fprintf(w, "the median of %d rounds, whose ratios were %.2f\n", r.Rounds, r.RatioPassthroughRounds)
	}
	if r.Bound != nil {
		fmt.Fprintf(w, "bound %.0f/s (in-flight / latency, or the QPS limit): ratio %.2f\n", *r.Bound, *r.RatioBound)
	}
	if r.RatioPassthroughSteady != nil {
		fmt.Fprintf(w, "after a %.2fs warm-up (the last record that went to the provider): %.0f/s, passthrough ratio %.2f\n",
			*r.WarmupSeconds, *r.SteadyThroughput, *r.RatioPassthroughSteady)
	}
	fmt.Fprintf(w, "cpu %.1f µs/event; added latency p50 %.2f ms, p99 %.2f ms; peak heap %.1f MiB; api calls %d, %.1f ms each (median; at most %.1f) at a latency of %.0f ms\n",
		r.CPUMicrosPerEvent, r.P50Millis, r.P99Millis, r.PeakHeapMB, r.APICalls, r.CallP50Millis, r.CallMaxMillis, r.LatencyMillis)
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("heap").WriteTo(f, 0)
}
