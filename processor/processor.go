// Package processor is twosell's stream engine: it consumes registration
// events from a Kafka topic as a consumer group, decodes and validates them,
// asks an Enricher about each mobile number, produces the enriched event (or a
// dead letter) and commits input offsets only up to the lowest record whose
// output is not yet acknowledged.
//
// Every input record ends as exactly one output or one dead letter. Delivery
// is at-least-once: after a crash, the records that were in flight are
// delivered again; none is ever skipped.
//
// The package knows nothing of HTTP or configuration files: the caller gives
// it franz-go client options (brokers, TLS, SASL) and an Enricher.
package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/semaphore"
)

// Header names the processor writes.
const (
	HeaderStatus     = "twosell-status"      // outputs: the status, for routing without decoding
	HeaderError      = "twosell-error"       // dead letters: a sentence saying what is wrong
	HeaderErrorClass = "twosell-error-class" // dead letters: a stable class for routing and metrics
	HeaderSource     = "twosell-source"      // dead letters: topic/partition/offset of the input
)

// SchemaVersion is the version of the output field's schema.
const SchemaVersion = 1

// Config configures a Processor. The zero value of every optional field is
// replaced by its default (in parentheses) when the Processor is created.
type Config struct {
	// ClientOpts are the franz-go options that say how to reach the cluster:
	// seed brokers, TLS, SASL, client id. The processor adds its own group,
	// consuming and producing options.
	ClientOpts []kgo.Opt

	Group       string // consumer group (required)
	InputTopic  string // registrations (required)
	OutputTopic string // enriched events (required)
	DLQTopic    string // dead letters (required)

	// CreateTopics creates missing output and dead-letter topics with the
	// input topic's partition count. A missing input topic is always an error.
	CreateTopics bool

	Codec    CodecConfig // how input values are read and outputs written
	Enricher Enricher    // answers lookups (required)

	// ExactlyOnce writes outputs, dead letters and input offsets in Kafka
	// transactions (franz-go's GroupTransactSession) and reads
	// read_committed: each output and dead letter is visible once per
	// committed input. A batch is one transaction; an aborted transaction
	// (rebalance, held record, crash) re-runs its lookups, which costs
	// provider calls. Requires TransactionalID.
	ExactlyOnce bool
	// TransactionalID identifies this instance's transactions; it must be
	// unique per instance and stable across its restarts, so that a
	// restarted instance fences its predecessor's open transaction at once.
	TransactionalID string
	// TransactionTimeout bounds a transaction (60s); a batch holding a record
	// back for the provider, or still waiting for it, is aborted after half
	// of it (its calls canceled) and fetched again in smaller batches. One
	// Enricher call must take well under half of it: a record whose lookup
	// takes longer never commits.
	TransactionTimeout time.Duration

	// EmitUnavailable writes an event with status "unavailable" when the
	// provider is unavailable, instead of holding the record back (false:
	// hold back and pause fetching, so that nothing is emitted unchecked).
	EmitUnavailable bool

	SessionTimeout   time.Duration // group session timeout (45s)
	RebalanceTimeout time.Duration // group rebalance timeout (60s)
	CommitInterval   time.Duration // how often finished offsets are committed (1s)
	// ShutdownTimeout bounds how long a revoke or shutdown waits for the
	// records being processed to finish before abandoning them (30s).
	ShutdownTimeout time.Duration
	RetryBackoff    time.Duration // first wait before retrying a held-back record (500ms)
	MaxRetryBackoff time.Duration // longest wait between retries of a held-back record (30s)
	// MaxInFlight is how many records are processed at once across all
	// partitions (256): the provider's latency, not the CPU, bounds
	// throughput, so throughput is about MaxInFlight / latency.
	MaxInFlight int
	// MaxInFlightBytes caps the bytes of the records being processed
	// (64 MiB).
	MaxInFlightBytes int64
	// Ordering is what order outputs keep (OrderingKey).
	Ordering Ordering
	// MaxBufferedBytes is how many bytes of received records a partition may
	// hold before its fetching pauses, as MaxBufferedRecords (8 MiB).
	MaxBufferedBytes int
	// FetchMaxPartitionBytes is how much one fetch asks of a partition
	// (32 KiB); see fetchOpts.
	FetchMaxPartitionBytes int
	// FetchMaxWait is how long a broker may hold a fetch that finds no new
	// records (50ms); see fetchOpts.
	FetchMaxWait time.Duration
	// OnRecord, if set, is called with the timings of finished records
	// (at-least-once only): of one in OnRecordEvery records (1, or 0: every
	// one), timed from their start (RecordTiming.Sampled), and of every
	// record that waited for the Enricher. It must be quick. twosell bench
	// uses it to measure the latency twosell adds: timing every record
	// (two clock reads and the callback) cost a run of answers from
	// knowledge 12% of its throughput.
	OnRecord      func(RecordTiming)
	OnRecordEvery int

	// MaxPollRecords bounds one poll (1000). Exactly-once, it is the most
	// records one transaction holds, so it also bounds how long outputs wait
	// to become visible.
	MaxPollRecords int
	// MaxBufferedRecords is how many received records a partition may hold
	// before its fetching pauses; it resumes below half of it (1000).
	MaxBufferedRecords int

	// Cost, if set, reports the cost controls' counters (a CostControl,
	// usually the Enricher itself), which Stats includes.
	Cost CostReporter
	// OnAssigned, if set, is called after every rebalance with the number
	// of members the group has now that hold partitions of the input topic
	// (CostControl.SetMembers divides the provider's rate by it).
	OnAssigned func(members int)
	// Range, if set, makes Run a replay (replay.go): it processes these
	// offsets of the input topic's partitions, reading them directly with
	// no consumer group (Group is not needed) and committing nothing, and
	// returns once every record of them has its output or dead letter
	// acknowledged. At-least-once only.
	Range map[int32]OffsetRange
	// IgnoreRetention starts a replay whose outputs or dead letters the
	// output or dead-letter topic's time retention would delete at once:
	// without it, Run refuses with ErrOutputsWouldExpire (topics.go).
	// Missing topics a replay creates have no time retention.
	IgnoreRetention bool

	TracerProvider trace.TracerProvider          // (otel's global provider)
	Propagator     propagation.TextMapPropagator // (W3C trace context and baggage)
	Logger         *slog.Logger                  // (slog.Default())
	Now            func() time.Time              // clock for checked_at (time.Now)
}

func (c *Config) setDefaults() {
	setDefault(&c.SessionTimeout, 45*time.Second)
	setDefault(&c.RebalanceTimeout, 60*time.Second)
	setDefault(&c.CommitInterval, time.Second)
	setDefault(&c.ShutdownTimeout, 30*time.Second)
	setDefault(&c.RetryBackoff, 500*time.Millisecond)
	setDefault(&c.MaxRetryBackoff, 30*time.Second)
	setDefault(&c.MaxBufferedRecords, 1000)
	setDefault(&c.MaxPollRecords, 1000)
	setDefault(&c.MaxInFlight, 256)
	setDefault(&c.MaxInFlightBytes, 64<<20)
	setDefault(&c.Ordering, OrderingKey)
	setDefault(&c.MaxBufferedBytes, 8<<20)
	setDefault(&c.FetchMaxPartitionBytes, 32<<10)
	setDefault(&c.FetchMaxWait, 50*time.Millisecond)
	setDefault(&c.TransactionTimeout, 60*time.Second)
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.Propagator == nil {
		c.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func (c *Config) validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"Group", c.Group}, {"InputTopic", c.InputTopic}, {"OutputTopic", c.OutputTopic}, {"DLQTopic", c.DLQTopic},
	} {
		if f.v == "" && (f.name != "Group" || c.Range == nil) {
			errs = append(errs, fmt.Errorf("processor: %s is required", f.name))
		}
	}
	if c.Range != nil {
		errs = append(errs, c.validateRange()...)
	}
	if c.ExactlyOnce && c.TransactionalID == "" {
		errs = append(errs, errors.New("processor: TransactionalID is required with ExactlyOnce"))
	}
	switch c.Ordering {
	case OrderingKey, OrderingPartition, OrderingNone:
	default:
		errs = append(errs, fmt.Errorf("processor: Ordering %q is not key, partition or none", c.Ordering))
	}
	if c.Enricher == nil {
		errs = append(errs, errors.New("processor: Enricher is required"))
	}
	if c.InputTopic != "" && (c.InputTopic == c.OutputTopic || c.InputTopic == c.DLQTopic) {
		errs = append(errs, fmt.Errorf("processor: the input topic %q must differ from the output and dead-letter topics", c.InputTopic))
	}
	return errors.Join(errs...)
}

// Ordering is the order outputs keep within a partition.
type Ordering string

// The orderings.
const (
	// OrderingKey processes and produces records with the same key in input
	// order; records with different keys overtake each other.
	OrderingKey Ordering = "key"
	// OrderingPartition produces a partition's outputs in input order, to
	// the output topic's partition of the same number (modulo its count),
	// dead letters likewise; lookups still overlap.
	OrderingPartition Ordering = "partition"
	// OrderingNone produces outputs as they are ready.
	OrderingNone Ordering = "none"
)

// Processor is the stream engine. Create one with New and call Run once.
type Processor struct {
	cfg    Config
	codec  *Codec
	log    *slog.Logger
	tracer *kotel.Tracer // nil when not tracing
	hooks  []kgo.Hook
	// started is closed once Run has checked its topics: Started.
	started     chan struct{}
	startedOnce sync.Once

	cl atomic.Pointer[kgo.Client] // the consuming and producing client; see client

	mu      sync.Mutex // guards workers
	workers map[topicPartition]*partitionWorker
	ticks   clockTicks // the dispatchers' clocks' (tickClock)

	// commitMu serializes commits with revokes, so that nothing of a revoked
	// partition is committed after its revoke completed.
	commitMu  sync.Mutex
	committed map[topicPartition]int64

	fatalMu   sync.Mutex
	fatalErr  error  // the first fatal error; nil while healthy
	onFail    func() // what fail calls too (onFatal)
	cancelRun context.CancelCauseFunc

	held atomic.Int32 // partitions holding a record back for the provider
	// behind: input partitions whose next records the broker deleted
	// before this instance fetched them (retention.go).
	behind retentionWatch
	// rangeComplete: Config.Range was processed to its end (RangeComplete).
	rangeComplete atomic.Bool
	// rangeRest: what of Config.Range is not finished (RangeRest).
	rangeRest atomic.Pointer[func() map[int32]OffsetRange]
	joined    atomic.Bool // a member of the group now (see Connected)
	// spoiled is the first produce error of the open transaction that
	// aborts it rather than stopping (see txnAbortable); nil when none.
	spoiled atomic.Pointer[error]
	// refused: exactly-once, the inputs whose records Kafka refused, to be
	// dead-lettered when their transaction is retried.
	refused refusals
	// replacing counts the dead letters emitFromPromise is handing to the
	// producer (at least once), which a revoke waits for (flushAll).
	replacing pending
	// lone produces again, alone, the outputs refused with their batch
	// as too large (at least once; produceAlone).
	lone  loneProducer
	stats counters

	tasks       chan func()         // the records in flight, run by a pool (Run)
	poolEnd     chan struct{}       // closed as Run returns: the pool takes no more tasks
	slots       chan struct{}       // one per record in flight: MaxInFlight
	pools       *fetchPools         // what fetched records are decoded into; see acknowledged
	copause     *copauser           // pauses caught-up partitions while another is full (copause.go)
	slotBytes   *semaphore.Weighted // bytes of the records in flight: MaxInFlightBytes
	keptOutputs keptOutputs         // bounds the output records the workers keep for reuse (outputFree)
	stopped     atomic.Bool         // a fatal error stopped consumption: nothing more is handed to the producer (hand)
	// membersEstimated: the group's members could not be counted once
	// (reportMembers warned).
	membersEstimated atomic.Bool
	fetchWarned      repeats // the fetch errors logged, to log each again at most every 30 s (logFetchErrors)
	// inputID is the input topic's ID at the start (ensureTopics), and
	// inputChecked when its existence was last checked (inputGone).
	inputID      kadm.TopicID
	inputChecked atomic.Int64
	// batchBytes, if set, bounds the producer's batches: the output and
	// dead-letter topics accept no larger (max.message.bytes; limitBatches).
	batchBytes int32
	// limitKnown: the output topics' max.message.bytes were read at the
	// start (a batch refused for its size means one was lowered since).
	limitKnown bool
}

type topicPartition struct {
	topic     string
	partition int32
}

// New validates cfg and returns a Processor.
func New(cfg Config) (*Processor, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	codec, err := NewCodec(cfg.Codec)
	if err != nil {
		return nil, err // NewCodec's errors say "processor:"
	}
	p := &Processor{
		started:   make(chan struct{}),
		pools:     new(fetchPools),
		copause:   newCopauser(),
		cfg:       cfg,
		codec:     codec,
		log:       cfg.Logger,
		workers:   make(map[topicPartition]*partitionWorker),
		committed: make(map[topicPartition]int64),
		behind:    newRetentionWatch(),
		stats:     newCounters(),
		slots:     make(chan struct{}, cfg.MaxInFlight),
		slotBytes: semaphore.NewWeighted(cfg.MaxInFlightBytes),
	}
	if tracing(cfg.TracerProvider) {
		p.tracer = kotel.NewTracer(
			kotel.TracerProvider(cfg.TracerProvider),
			kotel.TracerPropagator(cfg.Propagator),
			kotel.ConsumerGroup(cfg.Group),
			kotel.KeyFormatter(spanKey),
		)
		p.hooks = kotel.NewKotel(kotel.WithTracer(p.tracer)).Hooks()
	}
	return p, nil
}

// spanKey is a record's key as its spans carry it (messaging.kafka.message.key):
// as it is, unless it holds a mobile (events keyed by the phone number),
// which is masked as in a log, or, written otherwise, left out. (kotel put
// the key in every span as it was: a plain mobile in every trace, found by
// a security review.)
func spanKey(r *kgo.Record) (string, error) {
	v, ok := spanText(r.Key)
	if !ok {
		return "", errKeyHoldsMobile
	}
	return v, nil
}

var errKeyHoldsMobile = errors.New("the key holds a mobile number")

// spanText is text as a span may carry it: as it is, masked as in a log if
// it is a mobile, or, if it holds one written otherwise, not at all (false).
func spanText(text []byte) (string, bool) {
	switch {
	case looksLikeMobile(text):
		return MaskMobile(string(text)), true
	case holdsMobile(text):
		return "", false
	}
	return string(text), true
}

// tracing reports whether tp may record spans. A no-op provider records
// none, so the processor installs no tracing hooks and starts no spans:
// they would cost a few allocations per record for nothing. Outputs then
// carry the input's trace context unchanged, which is also what the hooks
// would have written under a no-op provider.
func tracing(tp trace.TracerProvider) bool {
	_, off := tp.(noop.TracerProvider)
	return !off
}

// processSpan starts the span of r's processing, a child of the trace
// context in r's headers (when tracing).
func (p *Processor) processSpan(r *kgo.Record) (context.Context, trace.Span) {
	if p.tracer == nil {
		ctx := context.Background()
		return ctx, trace.SpanFromContext(ctx)
	}
	return p.tracer.WithProcessSpan(r)
}

// Run consumes until ctx is canceled (a graceful stop: in-flight records get
// up to ShutdownTimeout to finish, finished offsets are committed, the
// producer is flushed and the group is left) or until a fatal error, which it
// returns as a *FatalError after committing what was finished. It returns an
// error before consuming if the topics are not usable.
func (p *Processor) Run(ctx context.Context) error {
	if err := p.ensureTopics(ctx); err != nil {
		return err
	}
	p.startedOnce.Do(func() { close(p.started) })
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer p.joined.Store(false)
	p.cancelRun = cancel
	ticker := time.NewTicker(clockTick)
	defer ticker.Stop()
	go p.ticks.run(runCtx, ticker.C)
	group := slog.String("group", p.cfg.Group)
	if p.cfg.Group == "" {
		group = slog.String("group", "none (assigned partitions)") // replay
	}
	p.log.Info("consuming", group, "input_topic", p.cfg.InputTopic,
		"output_topic", p.cfg.OutputTopic, "dlq_topic", p.cfg.DLQTopic, "exactly_once", p.cfg.ExactlyOnce)
	// Records run on a fixed pool of goroutines, one per in-flight slot:
	// a goroutine per record would grow a fresh stack through the HTTP
	// client's depth for every one of them. Each grows its stack once,
	// before its first task, to what a call to the provider takes: grown
	// during the call, at its depth, the copies (each frame's pointers
	// adjusted) were 3.5% of the CPU of the cache-warm bench's 200,000
	// events, for its 215 calls, each on a goroutine of its own (a channel
	// hands a task to the goroutine that waited longest). A collection may
	// shrink an idle goroutine's stack again, and its next call grows it
	// once more: with every record a paid call (bench --latency 0), no stack
	// copy shows in the profile.
	p.tasks, p.poolEnd = make(chan func()), make(chan struct{})
	var pool sync.WaitGroup
	for range p.cfg.MaxInFlight {
		pool.Go(func() {
			grown := false
			for {
				select {
				case task := <-p.tasks:
					if !grown {
						growStack()
						grown = true
					}
					task()
				case <-p.poolEnd:
					return
				}
			}
		})
	}
	defer pool.Wait()
	defer p.lone.close()
	// Not p.tasks: a worker that a stop gave up waiting for may still send
	// one (it gives the record up on poolEnd instead).
	defer close(p.poolEnd)

	var err error
	if p.cfg.Range != nil {
		err = p.runReplay(runCtx) // a bounded range, no group: replay.go
	} else {
		var copausing sync.WaitGroup
		copauseCtx, stopCopause := context.WithCancel(runCtx)
		copausing.Go(func() { p.copause.run(copauseCtx, p) })
		if p.cfg.ExactlyOnce {
			err = p.runTransactional(runCtx)
		} else {
			err = p.runAtLeastOnce(runCtx)
		}
		stopCopause()
		copausing.Wait()
	}
	if err != nil {
		return err
	}
	if err := p.fatal(); err != nil {
		return &FatalError{Err: err}
	}
	// What was received and not finished says why the next start writes
	// outputs again: a walkthrough found 929 of 77,773 records unaccounted
	// for in this line after a stop that gave up records held back.
	consumed, produced, dead := p.stats.consumed.Load(), p.stats.produced.Load(), p.stats.deadLettered.Load()
	attrs := []any{"consumed", consumed, "produced", produced, "dead_lettered", dead}
	before := p.stats.writtenBefore.Load()
	if before > 0 {
		attrs = append(attrs, "written_before", before) // by the previous owner, above its commit: ahead.go
	}
	if left := consumed - produced - dead - before; left > 0 {
		then := "read again by the group from its committed offsets"
		if p.cfg.Range != nil {
			then = "written by a replay of the rest of the range"
		}
		attrs = append(attrs, "not_finished", left, "not_finished_are", then)
	}
	if ahead := p.stats.aheadOfCommit.Load(); ahead > 0 && p.cfg.Range == nil {
		attrs = append(attrs, "written_again", ahead, "written_again_are", writtenAgain)
	}
	p.log.Info("stopped", attrs...)
	return nil
}

// clientOpts are the options of the consuming and producing client.
func (p *Processor) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	// Ours first, so that ClientOpts override them.
	opts := append([]kgo.Opt{
		kgo.WithLogger(newKgoLogger(p.log, p.behind.note)),
		// An output waits at most this long for others to share its batch
		// (franz-go: 10ms). At 10 ms most of the latency twosell adds to
		// a record was the linger (bench p50 7.4-8.4 ms at 20 ms provider
		// latency; 2.5-2.9 ms at 1 ms), for no CPU the bench could tell
		// apart at 256 in flight: batches fill while a request is out.
		kgo.ProducerLinger(time.Millisecond),
	}, p.fetchOpts()...)
	opts = append(opts, p.producerOpts()...)
	// Fetched batches are decompressed into, and their records decoded
	// into, memory that comes back once every record of the batch is
	// finished (acknowledged): a run of answers from knowledge allocated
	// about 400 bytes a record there, as much as all the rest, and spent
	// 12% more CPU a record in all.
	opts = append(append(opts, kgo.WithPools(p.pools)), p.cfg.ClientOpts...)
	opts = append(opts,
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.cfg.InputTopic),
		// A new group starts at the beginning of the topic: a pipeline that
		// must never silently skip a registration cannot start at the end.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(p.assigned),
		kgo.OnPartitionsRevoked(p.revoked),
		kgo.OnPartitionsLost(p.lost),
		kgo.SessionTimeout(p.cfg.SessionTimeout),
		kgo.RebalanceTimeout(p.cfg.RebalanceTimeout),
		kgo.WithHooks(p.hooks...),
	)
	if !p.cfg.ExactlyOnce { // exactly-once: transact.go reads committed
		opts = append(opts,
			// Records of aborted transactions, and of transactions still
			// open, are no input: enriched, they were paid for and written
			// (found by a walkthrough: 30 aborted of 60 records, 60 paid
			// calls). Java's consumer reads uncommitted by default; a paid
			// lookup of data that never was is not a default to keep.
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			// The transactions' markers are seen go by (enqueue finishes
			// them at once), so that commits pass them: the offset after a
			// partition's last record is short of its end by its trailing
			// markers, and the lag never reached 0.
			kgo.KeepControlRecords(),
		)
	}
	return append(opts, extra...)
}

// fetchOpts say how the processor fetches, live or replaying: fetch sizes
// far below franz-go's defaults (50 MiB a fetch, 1 MiB a partition, before
// decompression), and the fetch wait. Records wait in the partitions'
// buffers and pin the batches they were decoded from; with a slow
// provider, big fetches would be memory that only becomes lag.
//
// A partition's fetch (FetchMaxPartitionBytes) is kept to about what its
// buffer takes between a pause and the resume (half of MaxBufferedRecords):
// a poll drops what franz-go fetched ahead for a paused partition, and
// fetches it again after the resume. At 256 KiB the bench decoded every
// record 3.7 to 6.2 times; at 32 KiB, 1.02 to 1.07 times, for 7-25% less
// CPU per event.
func (p *Processor) fetchOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.FetchMaxBytes(4 << 20),
		kgo.FetchMaxPartitionBytes(int32(min(p.cfg.FetchMaxPartitionBytes, math.MaxInt32))),
		// A fetch waits up to this long for data (franz-go: 5s).
		// Partitions pause and resume as their buffers fill and drain; a
		// resumed partition is fetched only when the fetch in flight
		// returns, and if that fetch holds only partitions at their end
		// (or, replaying, past it), it waits out the whole wait: the bench
		// saw 3.5 s stalls with nothing in flight at 5 s, and a replay of
		// 20,000 answers from knowledge took 5.6 s instead of 0.6 in one
		// run of four; the cache-heavy bench ran 20-30% slower at 250 ms
		// than at 50 ms. At 50 ms an idle consumer sends 20 fetches a
		// second to each broker. The last partitions of a draining
		// backlog no longer wait it out after each resume: the caught-up
		// ones pause with them (copause.go).
		kgo.FetchMaxWait(p.cfg.FetchMaxWait),
	}
}

// runAtLeastOnce polls and hands records to the partition workers, which
// produce; the commit loop commits what Kafka acknowledged.
func (p *Processor) runAtLeastOnce(ctx context.Context) error {
	cl, err := kgo.NewClient(p.clientOpts()...)
	if err != nil {
		return fmt.Errorf("processor: kafka client: %w", err)
	}
	p.setClient(cl)
	warmProducer(ctx, cl)

	var commitDone sync.WaitGroup
	commitDone.Go(func() { p.commitLoop(ctx) })
	defer p.startRetentionWatch(ctx)()
	var backoff errorBackoff
	for ctx.Err() == nil {
		fetches := cl.PollRecords(ctx, p.cfg.MaxPollRecords)
		if fetches.IsClientClosed() {
			break
		}
		p.logFetchErrors(fetches)
		fetches.EachPartition(p.dispatch)
		cl.AllowRebalance()
		// A poll that brings errors alone comes back at once: spaced, it
		// does not spin a core while they last (after AllowRebalance: a
		// rebalance does not wait for it).
		if fetches.NumRecords() == 0 && len(fetches.Errors()) > 0 {
			backoff.wait(ctx)
		} else {
			backoff.reset()
		}
	}

	// Leaving the group revokes every partition through p.revoked, which
	// finishes or abandons in-flight records, flushes and commits: the same
	// path as a rebalance.
	commitDone.Wait()
	p.leaveAndClose(cl, cl.Close)
	return nil
}

// logFetchErrors logs the errors of a poll. franz-go retries what it can;
// a loss of records by Kafka it has already stepped past.
func (p *Processor) logFetchErrors(fetches kgo.Fetches) {
	fetches.EachError(func(topic string, partition int32, err error) {
		if loss, ok := errors.AsType[*kgo.ErrDataLoss](err); ok {
			// Not a fault of twosell's: records it had consumed are gone
			// from Kafka (an unclean leader election, a truncated log).
			// franz-go goes back to where the log diverged or, when it
			// cannot tell, to the log start (ConsumeResetOffset); the
			// records from there are consumed and committed as any
			// (tracker.addLocked).
			p.log.Error("Kafka lost records of an input partition; consuming it again from reset_to",
				"topic", topic, "partition", partition, "consumed_to", loss.ConsumedTo, "reset_to", loss.ResetTo, "err", err)
			return
		}
		if errors.Is(err, context.Canceled) {
			return
		}
		if topic == p.cfg.InputTopic && (errors.Is(err, kerr.UnknownTopicID) || errors.Is(err, kerr.UnknownTopicOrPartition)) {
			p.inputGone()
		}
		// Once per partition and error, then at most every 30 s, as the
		// replay does (found by review: a revoked READ ACL, which franz-go
		// hands to every poll, logged a line per fetch, a thousand a second).
		if n, ok := p.fetchWarned.allow(fmt.Sprintf("%s/%d: %v", topic, partition, err), time.Now()); ok {
			p.log.Warn("fetch error; the client retries", "topic", topic, "partition", partition, "err", err, "repeated", n)
		}
	})
}

// dispatch hands one partition's polled records to its worker.
func (p *Processor) dispatch(ftp kgo.FetchTopicPartition) {
	if len(ftp.Records) == 0 {
		return // an error-only fetch, already logged
	}
	p.mu.Lock()
	w := p.workers[topicPartition{ftp.Topic, ftp.Partition}]
	p.mu.Unlock()
	if w == nil {
		// Cannot happen with BlockRebalanceOnPoll: a partition is assigned
		// before its records are polled and revoked only between polls.
		// Not tracking the records means they are never committed, so
		// whoever owns the partition reads them again.
		p.log.Warn("records for a partition without a worker; leaving them uncommitted",
			"topic", ftp.Topic, "partition", ftp.Partition, "records", len(ftp.Records))
		return
	}
	w.fetched(&ftp)
	w.enqueue(ftp.Records)
}

// fail stops consumption for good: a fatal provider fault or an output that
// cannot be written. Records not finished stay uncommitted.
func (p *Processor) fail(err error) {
	p.fatalMu.Lock()
	first := p.fatalErr == nil
	var then func()
	if first {
		p.fatalErr = err
		p.stopped.Store(true)
		then = p.onFail
	}
	p.fatalMu.Unlock()
	if then != nil {
		then()
	}
	if first {
		msg := "FATAL: stopping consumption; nothing further will be committed"
		if p.cfg.Range != nil { // a replay commits nothing and has no group (found by review)
			msg = "FATAL: stopping the replay; records not finished are not written: running the replay again writes them (what is paid for is in the ledger)"
		}
		p.log.Error(msg, "err", err)
		p.cancelRun(err)
	}
}

// onFatal has f called once a fatal error stops consumption, at once if one
// has, until the function it returns is called. One f at a time: exactly
// once, the open batch's (processBatch).
func (p *Processor) onFatal(f func()) (remove func()) {
	p.fatalMu.Lock()
	failed := p.fatalErr != nil
	if !failed {
		p.onFail = f
	}
	p.fatalMu.Unlock()
	if failed {
		f()
	}
	return func() {
		p.fatalMu.Lock()
		p.onFail = nil
		p.fatalMu.Unlock()
	}
}

// unlessFailed calls log unless consumption has stopped on a fatal error,
// under the lock fail takes first: a line it logs never comes after the
// FATAL one (a record held by a breaker that the fatal answer opened, which
// said records waited for the provider while the run was stopping).
func (p *Processor) unlessFailed(log func()) {
	p.fatalMu.Lock()
	defer p.fatalMu.Unlock()
	if p.fatalErr == nil {
		log()
	}
}

// fatal returns the error that stopped consumption, or nil.
func (p *Processor) fatal() error {
	p.fatalMu.Lock()
	defer p.fatalMu.Unlock()
	return p.fatalErr
}

// acquire takes an in-flight slot for a record of size bytes, waiting while
// MaxInFlight records or MaxInFlightBytes bytes are in flight. It gives up
// (false) when stop or abandon ends.
func (p *Processor) acquire(stop, abandon context.Context, size int64) bool {
	select {
	case p.slots <- struct{}{}:
		// A select with a slot free and the stop begun takes either: the
		// stop wins, so that no record starts once it has begun (a record
		// given up is delivered again; one started during a stop was
		// written and committed, found by review once under -race).
		if stop.Err() != nil || abandon.Err() != nil {
			<-p.slots
			return false
		}
	case <-stop.Done():
		return false
	case <-abandon.Done():
		return false
	}
	n := min(size, p.cfg.MaxInFlightBytes)
	if p.slotBytes.TryAcquire(n) {
		return true // the usual case: no contexts to build
	}
	ctx, cancel := context.WithCancel(abandon)
	defer cancel()
	defer context.AfterFunc(stop, cancel)()
	if err := p.slotBytes.Acquire(ctx, n); err != nil {
		<-p.slots
		return false
	}
	return true
}

// release returns the slot of a record of size bytes.
func (p *Processor) release(size int64) {
	p.slotBytes.Release(min(size, p.cfg.MaxInFlightBytes))
	<-p.slots
}

// client is the consuming and producing client. franz-go calls the group
// callbacks from its own goroutines as soon as the client exists, possibly
// before NewClient's caller has stored it: assigned stores it first too,
// so that the workers it starts always see it.
func (p *Processor) client() *kgo.Client { return p.cl.Load() }

func (p *Processor) setClient(cl *kgo.Client) { p.cl.Store(cl) }

// growStack grows the calling goroutine's stack to 32 KiB, what a call to
// the provider takes (at 16 KiB, calls still grew theirs), while the stack
// is one frame deep: a copy of nearly nothing.
//
//go:noinline
func growStack() byte {
	var pad [28 << 10]byte // with the frames below it, more than 16 KiB
	return touchStack(pad[:])
}

//go:noinline
func touchStack(b []byte) byte { return b[len(b)-1] }

// warmProducer has cl load its producer ID and open its produce
// connections in the background, while the first records are fetched and
// their first lookups made: the first output (and the first paid answer's
// ledger record) no longer waits for two round trips made one after the
// other on a machine busy with those lookups' answers. In the cache-warm
// bench, the first output's acknowledgement came 4 to 27 ms after its
// produce, most of it these steps. A failure here is not kept: the first
// produce loads the ID again (franz-go keeps only a loaded one).
func warmProducer(ctx context.Context, cl *kgo.Client) {
	go func() {
		if _, _, err := cl.ProducerID(ctx); err != nil {
			return
		}
		_ = cl.EnsureProduceConnectionIsOpen(ctx)
	}()
}

// leaveAndClose leaves the group (the revoke of every partition: the
// records in flight, the flush and the commit, each bounded by
// ShutdownTimeout; then the LeaveGroup request) and closes the client with
// closeClient, waiting for it at most leaveBound. franz-go's Close waits for
// the group to be left without a limit: with the brokers not answering, a
// stop took 72 s at a shutdown_timeout of 2 s, and one during the group's
// join never ended (found by review), past any pod's grace period. Past
// the bound, the client is left to finish on its own.
func (p *Processor) leaveAndClose(cl *kgo.Client, closeClient func()) {
	bound := p.leaveBound()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		cl.AllowRebalance()
		_ = cl.LeaveGroupContext(ctx)
		closeClient()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		p.log.Warn("the consumer group was not left within the stop's bound: stopping without the brokers' answer; "+
			"the group's other members take the partitions once this member's session times out",
			"bound", bound, "group", p.cfg.Group)
	}
}

// leaveBound is how long leaving the group may take: the revoke's steps
// (the records in flight, the abandoned ones, the flush, the commit) and
// leaveGrace for the LeaveGroup request.
func (p *Processor) leaveBound() time.Duration {
	st := p.cfg.ShutdownTimeout
	return 3*st + min(st, maxAbandonWait) + leaveGrace
}

// leaveGrace bounds the LeaveGroup request after the revoke.
const leaveGrace = 3 * time.Second
