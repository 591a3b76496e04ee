package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor"
)

// The topics and credentials of "twosell dev". The simulator's key and
// openid, and the cache secret of its ledger, are not secrets: they exist
// only for the dev process, and it prints them for the other commands run
// against it (found by review: a user could not query dev's simulator, and
// paid again for all that its ledger knew, written under a secret not
// printed). The key is 8 characters or more: a shorter one is warned of.
const (
	devInputTopic  = "registrations"
	devOutputTopic = "registrations.enriched"
	devDLQTopic    = "registrations.dlq"
	devKey         = "twosell-dev-key"
	devOpenID      = "dev-openid"
	devCacheSecret = "dev-cache-secret"
)

// devOptions configure "twosell dev".
type devOptions struct {
	KafkaAddr   string        // the embedded broker's listen address
	SimAddr     string        // the simulator's listen address
	MetricsAddr string        // /metrics, /healthz and /readyz; "" disables
	Partitions  int           // partitions of each topic
	Generate    int           // sample events to produce at start
	Mode        juhe.Mode     // how the processor sends numbers
	Latency     time.Duration // the simulator's mean latency
	Show        int           // enriched events to print
	LogLevel    string
}

// cmdDev is "twosell dev": an embedded Kafka broker (kfake), the juhe
// simulator, the processor and a generator of sample events, all in one
// process with no setup. Any Kafka client can produce to and consume from the
// broker. It runs until ctx ends and then exits 0.
func cmdDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o devOptions
	var mode string
	fs.StringVar(&o.KafkaAddr, "kafka-addr", "127.0.0.1:9092", "listen address of the embedded Kafka broker")
	fs.StringVar(&o.SimAddr, "sim-addr", "127.0.0.1:8088", "listen address of the juhe simulator")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "127.0.0.1:9464", "listen address of /metrics (Prometheus), /healthz and /readyz (empty: none)")
	fs.IntVar(&o.Partitions, "partitions", 3, "partitions of each topic")
	fs.IntVar(&o.Generate, "generate", 1000, "sample events to produce at start (0: none)")
	fs.StringVar(&mode, "juhe-mode", "plain", "how numbers are sent: plain, md5, sha256, aes, md5+aes, sha256+aes")
	fs.DurationVar(&o.Latency, "sim-latency", 20*time.Millisecond, "the simulator's mean reply latency")
	fs.IntVar(&o.Show, "show", 5, "enriched events to print")
	fs.StringVar(&o.LogLevel, "log-level", "warn", "log level: debug, info, warn, error")
	if err := config.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	switch {
	case o.Partitions < 1:
		return usageError{fmt.Sprintf("--partitions %d: want 1 or more", o.Partitions)}
	case o.Generate < 0:
		return usageError{fmt.Sprintf("--generate %d: want 0 (none) or more", o.Generate)}
	case o.Latency < 0:
		return usageError{fmt.Sprintf("--sim-latency %s: want 0 or more", o.Latency)}
	case o.Show < 0:
		return usageError{fmt.Sprintf("--show %d: want 0 or more", o.Show)}
	}
	// Checked here, not by the run's validation of the settings, which
	// names the config file and a variable dev does not read (found by
	// review).
	for _, a := range []struct{ flag, v string }{{"--kafka-addr", o.KafkaAddr}, {"--sim-addr", o.SimAddr}, {"--metrics-addr", o.MetricsAddr}} {
		if a.v == "" && a.flag == "--metrics-addr" {
			continue // none
		}
		if !config.ValidListenAddr(a.v) {
			return usageError{fmt.Sprintf("%s %q is not valid; valid: host:port or :port, such as 127.0.0.1:0", a.flag, a.v)}
		}
	}
	m, err := juhe.ParseMode(mode)
	if err != nil {
		return usageError{"--juhe-mode: " + err.Error()}
	}
	o.Mode = m
	log, err := newLogger(stderr, o.LogLevel, "text")
	if err != nil {
		return usageError{err.Error()}
	}

	// Spans are recorded (and exported if OTEL_* says so) as in "run", so
	// that outputs carry a traceparent of their own.
	tp, err := setupTracing(ctx, "twosell-dev", os.LookupEnv, log)
	if err != nil {
		return err
	}
	defer shutdownTracing(ctx, tp)
	env, err := startDev(o, tp, log)
	if err != nil {
		return err
	}
	defer env.Close()
	env.printBanner(stdout)
	return env.run(ctx, stdout)
}

// devEnv is a running "twosell dev": broker, simulator and processor.
type devEnv struct {
	o       devOptions
	log     *slog.Logger
	cluster *kfake.Cluster
	sim     *juhesim.Sim
	simSrv  *http.Server
	simURL  string
	cfg     *config.Config
	proc    *processor.Processor
	ops     *operations
	cost    *processor.CostControl
	client  *juhe.Client // closed after the processor and the cost controls
}

// inUse adds to an error of an address already taken which flag picks
// another: a second "twosell dev", or any program on a default port.
func inUse(err error, flag string) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	return fmt.Errorf("%w: another program listens there (another twosell?); stop it, or choose another address with %s (port 0: any free one)", err, flag)
}

// startDev starts the broker and the simulator and builds the processor.
func startDev(o devOptions, tp trace.TracerProvider, log *slog.Logger) (*devEnv, error) {
	env := &devEnv{o: o, log: log}
	var err error
	env.cluster, err = startBroker(o.KafkaAddr,
		kfake.SeedTopics(int32(o.Partitions), devInputTopic, devOutputTopic, devDLQTopic))
	if err != nil {
		return nil, inUse(err, "--kafka-addr")
	}

	env.sim, err = juhesim.New(juhesim.Config{
		Keys:   []string{devKey},
		OpenID: devOpenID,
		Seed:   1,
		// Index every sample number, so the digest modes know them all.
		Population: max(o.Generate, juhesim.DefaultPopulation),
		Faults:     juhesim.Faults{Latency: o.Latency / 2, Jitter: o.Latency},
	})
	if err != nil {
		env.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", o.SimAddr)
	if err != nil {
		env.Close()
		return nil, inUse(fmt.Errorf("juhe simulator on %s: %w", o.SimAddr, err), "--sim-addr")
	}
	env.simURL = "http://" + ln.Addr().String()
	env.simSrv = &http.Server{Handler: env.sim, ReadHeaderTimeout: 10 * time.Second}
	go env.simSrv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Close

	cfg := config.Default()
	cfg.Kafka.Brokers = env.cluster.ListenAddrs()
	cfg.Kafka.Group = "twosell-dev"
	cfg.Kafka.SessionTimeout = 10 * time.Second
	cfg.Juhe.URL = env.simURL
	cfg.Juhe.AllowInsecure = true // the embedded simulator, with its test key, on --sim-addr
	cfg.Juhe.Key = config.Secret(devKey)
	cfg.Juhe.OpenID = config.Secret(devOpenID)
	cfg.Juhe.Mode = o.Mode
	cfg.Juhe.Breaker.OpenFor = 5 * time.Second
	cfg.Cache.Secret = devCacheSecret // the ledger on the embedded broker lives as long as it
	cfg.Log.Level = o.LogLevel
	cfg.Telemetry.MetricsAddr = o.MetricsAddr
	if err := cfg.Validate("run"); err != nil {
		env.Close()
		return nil, err
	}
	env.cfg = &cfg
	if env.ops, err = newOperations(log); err != nil {
		env.Close()
		return nil, err
	}
	// Before anything connects: an address in use ends the start with its
	// error alone, not with the clients' warnings of a broker that closed.
	if err := env.ops.listen(env.cfg, "the metrics server (--metrics-addr)"); err != nil {
		env.Close()
		return nil, err
	}
	client, err := newJuheClient(env.cfg, tp, env.ops.meterProvider(), log)
	if err != nil {
		env.Close()
		return nil, err
	}
	env.client = client
	if env.cost, err = openCostControl(context.Background(), env.cfg, juheEnricher{client}, "dev", tp, log); err != nil {
		env.Close()
		return nil, err
	}
	env.proc, err = newProcessor(env.cfg, env.cost, tp, log, env.ops.kafkaOpts()...)
	if err != nil {
		env.Close()
		return nil, err
	}
	if err := env.ops.start(env.cfg, env.proc, client); err != nil {
		env.Close()
		return nil, err
	}
	return env, nil
}

// Close stops the operations server, the simulator and the broker.
func (env *devEnv) Close() {
	if env.ops != nil {
		env.ops.Close()
	}
	if env.cost != nil {
		closeCostControl(context.Background(), env.cost)
	}
	if env.client != nil {
		env.client.Close()
	}
	if env.simSrv != nil {
		env.simSrv.Close()
	}
	if env.cluster != nil {
		env.cluster.Close()
	}
}

func (env *devEnv) printBanner(w io.Writer) {
	broker := env.cluster.ListenAddrs()[0]
	sample := devSample()
	fmt.Fprintf(w, `twosell dev: everything on this machine, nothing to set up

  kafka broker    %[1]s  (embedded; any Kafka client can use it)
  juhe simulator  %[2]s  (mode %[3]s; answers derived from the number, see juhe/juhesim)
  topics          %[4]s -> %[5]s, dead letters %[6]s (%[7]d partitions each)
  metrics         %[8]s
  other commands  %[9]s
                  (the simulator's settings, and the secret of dev's ledger: fixed for dev, not secrets)

  query:    %[9]s twosell query %[10]s --date 20240102 --brokers %[1]s --juhe-url %[2]s
  produce:  echo '{"event_id":"e-1","mobile":"+86 %[11]s","registered_at":"2024-01-02T03:04:05+08:00"}' | kcat -b %[1]s -P -t %[4]s -k u-1
  load:     twosell gen --brokers %[1]s --input-topic %[4]s --events 100000 --rate 2000
  consume:  kcat -b %[1]s -C -t %[5]s -o beginning -f '%%k %%h %%s\n'
  stop:     Ctrl-C

`, broker, env.simURL, env.o.Mode, devInputTopic, devOutputTopic, devDLQTopic, env.o.Partitions, env.metricsURL(), devSettings(env.o.Mode),
		sample, sample[:3]+"-"+sample[3:7]+"-"+sample[7:])
}

// devSample is the number dev's query and produce lines use: one of the
// simulator's population, which the digest modes know (another is
// no_record in them: found by a walkthrough, the query line of dev
// --juhe-mode sha256+aes answered no_record), with an activation date.
func devSample() string {
	pop := juhesim.Population(juhesim.DefaultPopulation)
	for _, m := range pop {
		if _, ok := juhesim.ActivationDate(m); ok {
			return m
		}
	}
	return pop[0]
}

// devSettings are the environment variables by which the other commands
// reach dev: the simulator's key, the secret of dev's ledger and, in
// another mode than plain, the mode (and the openid the AES modes need).
// Found by a walkthrough: dev --juhe-mode sha256+aes printed no openid and
// no mode, and its query line asked in plain mode.
func devSettings(m juhe.Mode) string {
	s := "TWOSELL_JUHE_KEY=" + devKey + " TWOSELL_CACHE_SECRET=" + devCacheSecret
	if m != juhe.ModePlain {
		s += " TWOSELL_JUHE_MODE=" + string(m)
	}
	if m.UsesAES() {
		s += " TWOSELL_JUHE_OPENID=" + devOpenID
	}
	return s
}

// metricsURL says where /metrics, /healthz and /readyz are served.
func (env *devEnv) metricsURL() string {
	addr := env.ops.addr()
	if addr == "" {
		return "off (--metrics-addr)"
	}
	return fmt.Sprintf("http://%s%s  (Prometheus; health %s, readiness %s)", addr, pathMetrics, pathHealthz, pathReadyz)
}

// run produces the sample events, runs the processor, prints a few enriched
// events and the progress, until ctx ends.
func (env *devEnv) run(ctx context.Context, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out sync.Mutex // lines from several goroutines
	printf := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Fprintf(stdout, format, args...)
	}

	procErr := make(chan error, 1)
	go func() { procErr <- env.proc.Run(ctx) }()

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(env.cfg.Kafka.Brokers...),
		kgo.ConsumeTopics(devOutputTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	if env.o.Generate > 0 {
		recs := sampleEvents(env.o.Generate, 1, juhesim.Population(env.o.Generate))
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			cancel()
			// The processor stops first, before the caller closes the ledger,
			// the simulator and the broker under it (found by review).
			if perr := <-procErr; perr != nil && !errors.Is(perr, context.Canceled) {
				return perr
			}
			if ctx.Err() != nil { // Ctrl-C while the samples were produced: a stop like any other
				return nil
			}
			return fmt.Errorf("producing sample events: %w", err)
		}
		printf("produced %d sample events to %s (about 1 in 50 deliberately bad)\n\n", len(recs), devInputTopic)
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { env.showEvents(ctx, cl, printf) })
	wg.Go(func() { env.showProgress(ctx, printf) })

	select {
	case err := <-procErr:
		return err // fatal: the processor stopped on its own
	case <-ctx.Done():
	}
	if err := <-procErr; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	printf("\nstopped\n")
	return nil
}

// showEvents prints the first enriched events as they arrive.
func (env *devEnv) showEvents(ctx context.Context, cl *kgo.Client, printf func(string, ...any)) {
	shown := 0
	for shown < env.o.Show {
		fs := cl.PollRecords(ctx, env.o.Show-shown)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			printf("enriched  key=%s  %s\n", r.Key, r.Value)
			shown++
		})
	}
	printf("\n")
}

// showProgress prints the processor's counters every second while they
// change, and a summary once the sample events are all processed.
func (env *devEnv) showProgress(ctx context.Context, printf func(string, ...any)) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last processor.Stats
	summarized := env.o.Generate == 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := env.proc.Stats()
		if s.Consumed == last.Consumed && s.Produced == last.Produced && s.DeadLettered == last.DeadLettered {
			continue
		}
		last = s
		printf("progress  consumed %d · enriched %d · dead letters %d · held partitions %d · paid calls %d · cache answers %d\n",
			s.Consumed, s.Produced, s.DeadLettered, s.HeldPartitions, s.PaidCalls, sum(s.CacheAnswers))
		if !summarized && s.Produced+s.DeadLettered >= int64(env.o.Generate) {
			summarized = true
			printf("%s", devSummary(env.o.Generate, s))
		}
	}
}

// devSummary is what dev prints once its sample events are processed.
// Found by review: the counts were printed as Go maps, "map[recycled:5]".
func devSummary(events int, s processor.Stats) string {
	return fmt.Sprintf("\nall %d sample events processed\n  statuses:     %s\n  dead letters: %s\n  the broker keeps running: produce more with any Kafka client, Ctrl-C to stop\n\n",
		events, counts(s.ByStatus), counts(s.ByErrorClass))
}

// counts writes m as "a=1 b=2", sorted by key; "none" when empty.
func counts[K ~string](m map[K]int64) string {
	if len(m) == 0 {
		return "none"
	}
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(out, " ")
}
