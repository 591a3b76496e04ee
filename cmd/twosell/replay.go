package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/processor"
)

// replayOptions are replay's own flags: the range and the progress display.
type replayOptions struct {
	From, To                 string // RFC 3339
	StartOffsets, EndOffsets string // partition:offset,...
	Partitions               string // comma-separated
	Progress                 string // auto, bar, lines, none
	ProgressInterval         time.Duration
	JSON                     bool
	IgnoreRetention          bool // start even if the output topic's retention would delete outputs at once
	DryRun                   bool // estimate what the range would pay, without a call or a write
}

// replaySummary is what a replay did, printed when it ends (--json: as one
// JSON object).
type replaySummary struct {
	Complete bool    `json:"complete"`
	Seconds  float64 `json:"seconds"`
	Total    int64   `json:"total"`   // offsets in the range
	Events   int64   `json:"events"`  // records read
	Deleted  int64   `json:"deleted"` // records of the range the broker deleted before they were read
	// EmptyOffsets: offsets of the range that held no record to replay
	// (transaction markers, records of aborted transactions, records
	// compaction removed).
	EmptyOffsets int64            `json:"empty_offsets"`
	Outputs      int64            `json:"outputs"`
	DeadLetters  int64            `json:"dead_letters"`
	ByStatus     map[string]int64 `json:"by_status"`
	PaidCalls    int64            `json:"paid_calls"`
	// UncertainCalls: of PaidCalls, the requests that gave no answer but
	// may have been billed (no reply, a reply cut off, an HTTP error).
	UncertainCalls int64 `json:"uncertain_calls"`
	CacheAnswers   int64 `json:"cache_answers"`
	Coalesced      int64 `json:"coalesced"`
	Skipped        int64 `json:"skipped"`
	// OutsideTimes: records replayed whose timestamps are outside
	// [--from, --to). The range is offsets once resolved (the first record
	// at or after --from up to the first at or after --to), so on a
	// partition whose timestamps are not in offset order it holds records
	// of other times, and misses some of its own.
	OutsideTimes int64   `json:"outside_times"`
	PricePerCall float64 `json:"price_per_call"`
	CostCNY      float64 `json:"cost_cny"`
	EventsPerSec float64 `json:"events_per_second"`
	OutputTopic  string  `json:"output_topic"`
	DLQTopic     string  `json:"dlq_topic"`
	// Rest: interrupted, what of the range is not finished, by partition
	// (processor.RangeRest), to replay instead of the whole range.
	Rest map[int32]restRange `json:"rest,omitempty"`
}

// restRange is a partition's offsets left to replay, end excluded.
type restRange struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// restFlags are the flags that replay rest: its partitions, and their
// start and end offsets.
func restFlags(rest map[int32]restRange) string {
	var parts, starts, ends []string
	for _, p := range slices.Sorted(maps.Keys(rest)) {
		parts = append(parts, fmt.Sprint(p))
		starts = append(starts, fmt.Sprintf("%d:%d", p, rest[p].Start))
		ends = append(ends, fmt.Sprintf("%d:%d", p, rest[p].End))
	}
	return fmt.Sprintf("--partitions %s --start-offsets %s --end-offsets %s",
		strings.Join(parts, ","), strings.Join(starts, ","), strings.Join(ends, ","))
}

// cmdReplay is "twosell replay": enrich a bounded range of a topic (by time
// or offsets, all or some partitions) into a topic of its choice, as of each
// event's own date, with its own rate limit and the ledger loaded first, so
// that nothing already paid for is paid again. It reads the partitions
// directly (no consumer group: nothing is committed, a live group is not
// touched), shows progress on stderr and stops at the range's end with a
// summary on stdout.
func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o replayOptions
	fs.StringVar(&o.From, "from", "", "start at each partition's first record with a timestamp at or after this RFC 3339 time, as Kafka's own tools resolve a time to an offset; "+
		"every record from there up to --to's offset is replayed, whatever its timestamp (those outside [--from, --to) are counted and warned of) (default: each partition's start)")
	fs.StringVar(&o.To, "to", "", "stop before each partition's first record with a timestamp at or after this RFC 3339 time; "+
		"with out-of-order timestamps, records before --to that come after that record are not replayed (default: each partition's end at start)")
	fs.StringVar(&o.StartOffsets, "start-offsets", "", "first offsets, partition:offset,... (instead of --from; partitions not listed start at their start)")
	fs.StringVar(&o.EndOffsets, "end-offsets", "", "end offsets, excluded, partition:offset,... (instead of --to; partitions not listed end at their end)")
	fs.StringVar(&o.Partitions, "partitions", "", "partitions to replay, comma-separated (default: all)")
	fs.StringVar(&o.Progress, "progress", "auto", "progress on stderr: auto (a bar on a terminal, else lines), bar, lines or none")
	fs.DurationVar(&o.ProgressInterval, "progress-interval", 10*time.Second, "how often a progress line is printed when not a bar")
	fs.BoolVar(&o.JSON, "json", false, "print the summary as one JSON object")
	fs.BoolVar(&o.DryRun, "dry-run", false, "estimate what the replay would pay, from what the ledger knows, without a call or a write (no --output-topic needed)")
	fs.BoolVar(&o.IgnoreRetention, "ignore-retention", false, "start even if the output or dead-letter topic's time retention would delete outputs of the range at once (they keep their inputs' timestamps)")
	// Validated below, once the replay's own defaults are in (its
	// dead-letter topic: replaying the dead-letter topic itself is a use).
	cfg, rest, err := config.LoadUnvalidated("replay", fs, args, os.LookupEnv)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", rest)}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	// The replay's output and dead-letter topics come from its flags
	// alone: kafka.output_topic and kafka.dlq_topic (the file,
	// TWOSELL_KAFKA_*) are the live job's, and a replay that took them
	// from a shared config file would write into the live topics by
	// accident.
	if !given["output-topic"] && !o.DryRun {
		return usageError{"--output-topic is required: the topic the replay writes to, from the command line alone " +
			"(not kafka.output_topic of the config file or " + envOutputTopic + ", which are the live job's; name the live topic to write there)"}
	}
	liveDLQ := cfg.Kafka.DLQTopic // the file's or the environment's, if set
	if !given["dlq-topic"] {
		cfg.Kafka.DLQTopic = cfg.Kafka.OutputTopic + ".dlq"
	}
	switch {
	case o.From != "" && o.StartOffsets != "":
		return usageError{"--from and --start-offsets both say where to start: give one"}
	case o.To != "" && o.EndOffsets != "":
		return usageError{"--to and --end-offsets both say where to stop: give one"}
	}
	if !slices.Contains([]string{"auto", "bar", "lines", "none"}, o.Progress) {
		return usageError{fmt.Sprintf("--progress %q: want auto, bar, lines or none", o.Progress)}
	}
	if o.ProgressInterval <= 0 {
		return usageError{fmt.Sprintf("--progress-interval %s: want a positive duration such as 10s", o.ProgressInterval)}
	}
	if _, err := parseReplayRange(o); err != nil {
		return err
	}
	cfg.Processing.SkipOlderThan = 0 // history is old by definition
	validate := cfg.Validate
	if o.DryRun {
		validate = cfg.ValidateNoCalls // no call: no key or openid needed (the ledger's cache secret is checked where it is used)
	}
	if err := validate("replay"); err != nil {
		return config.FlagsBlamed("replay", fs, err)
	}
	registerSecrets(cfg)
	line := &barLine{w: stderr} // the log and the progress bar share stderr's line
	log, err := newLogger(line, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	// kafka.dlq_topic set (to other than its default: a value set to the
	// default cannot be told from one not set) is the live job's: say
	// that the replay's dead letters go elsewhere. Not in a dry run, which
	// writes nothing.
	if !o.DryRun && !given["dlq-topic"] && liveDLQ != config.Default().Kafka.DLQTopic && liveDLQ != cfg.Kafka.DLQTopic {
		log.Warn(`kafka.dlq_topic (the config file or `+envDLQTopic+`) is the live job's dead-letter topic: the replay does not write there; `+
			`its dead letters go to --dlq-topic, by default the output topic + ".dlq"`,
			"kafka_dlq_topic", liveDLQ, "dlq_topic", cfg.Kafka.DLQTopic)
	}
	return runReplay(ctx, cfg, o, stdout, line, log)
}

// The variables of the live job's output and dead-letter topics, which
// replay does not read.
const (
	envOutputTopic = config.EnvPrefix + "KAFKA_OUTPUT_TOPIC"
	envDLQTopic    = config.EnvPrefix + "KAFKA_DLQ_TOPIC"
)

// runReplay resolves the range, loads the ledger and runs the processor over
// the range.
func runReplay(ctx context.Context, cfg *config.Config, o replayOptions, stdout, stderr io.Writer, log *slog.Logger) error {
	began := time.Now()
	var total int64
	// Interrupted before the processor runs (the range resolved, the
	// ledger loading: seconds on a large ledger), the replay has its summary
	// of nothing done, and the error is the interruption, not the cluster's
	// (found by review: "kafka (brokers …): listing topic …: context
	// canceled", and no summary).
	interrupted := func(err error) error {
		switch {
		case ctx.Err() == nil:
			return err
		case o.DryRun: // found by review: it blamed the cluster too
			return errors.New("replay --dry-run interrupted: nothing was estimated")
		}
		s := summarize(processor.Stats{}, cfg, total, time.Since(began), false)
		if err := printSummary(stdout, s, o.JSON); err != nil {
			return err
		}
		return errors.New("replay interrupted before it started: nothing was done")
	}
	ranges, err := resolveReplayRange(ctx, cfg, o, log)
	if err != nil {
		return interrupted(err)
	}
	for _, r := range ranges {
		total += r.End - r.Start
	}
	warnInsecure(cfg, log) // a dry run connects to Kafka too
	if o.DryRun {
		est, err := estimateReplay(ctx, cfg, ranges, total, newOutsideTimes(o, ranges, log), log)
		switch {
		case err != nil && ctx.Err() != nil:
			return interrupted(err)
		case err != nil:
			return explain(cfg, err)
		}
		return printEstimate(stdout, est, o.JSON)
	}
	tp, err := setupTracing(ctx, cfg.Telemetry.ServiceName, os.LookupEnv, log)
	if err != nil {
		return err
	}
	defer shutdownTracing(ctx, tp)
	client, err := newJuheClient(cfg, tp, nil, log)
	if err != nil {
		return err
	}
	defer client.Close() // the provider's connections
	cost, err := openCostControl(ctx, cfg, juheEnricher{client}, "replay", tp, log)
	if err != nil {
		return interrupted(err)
	}
	defer closeCostControl(ctx, cost)
	pc, err := processorConfig(cfg, cost, tp, log)
	if err != nil {
		return err
	}
	pc.Group, pc.OnAssigned, pc.Range = "", nil, ranges // --qps is the replay's own, not divided
	outside := newOutsideTimes(o, ranges, log)
	if outside != nil {
		pc.ClientOpts = append(pc.ClientOpts, kgo.WithHooks(outside))
	}
	pc.ExactlyOnce = false
	pc.IgnoreRetention = o.IgnoreRetention
	proc, err := processor.New(pc)
	if err != nil {
		return err
	}
	log.Info("replay", "topic", cfg.Kafka.InputTopic, "partitions", len(ranges), "offsets", total,
		"output_topic", cfg.Kafka.OutputTopic, "dlq_topic", cfg.Kafka.DLQTopic, "qps", cfg.Juhe.QPS)
	if total == 0 {
		log.Warn("the range holds no record: nothing to replay; check --from and --to (the broker's time index) or the offsets",
			"topic", cfg.Kafka.InputTopic)
	}

	start := time.Now()
	progress := newReplayProgress(stderr, o, total)
	progCtx, stopProgress := context.WithCancel(ctx)
	var shown sync.WaitGroup
	shown.Go(func() {
		// Nothing is shown of a replay refused at its checks (found by
		// review: "0/3 offsets" above the refusal, when the checks took
		// longer than the interval).
		select {
		case <-proc.Started():
			progress.run(progCtx, proc.Stats)
		case <-progCtx.Done():
		}
	})
	runErr := proc.Run(ctx)
	stopProgress()
	shown.Wait()
	complete := runErr == nil && proc.RangeComplete() // interrupted, it may have finished all the same
	s := summarize(proc.Stats(), cfg, total, time.Since(start), complete)
	s.OutsideTimes = outside.count()
	if !complete {
		for part, r := range proc.RangeRest() {
			if s.Rest == nil {
				s.Rest = make(map[int32]restRange)
			}
			s.Rest[part] = restRange{r.Start, r.End}
		}
	}
	if runErr != nil && !isClosed(proc.Started()) {
		// Refused to start (a topic, the retention): no summary of nothing,
		// and no progress (found by review: "0/3 offsets" above the refusal).
		// A replay that started and ended on an error (its input topic
		// deleted) has its summary, of nothing done if so.
		progress.abandon()
		return interrupted(explain(cfg, runErr))
	}
	progress.finish(s)
	if err := printSummary(stdout, s, o.JSON); err != nil {
		return err
	}
	if runErr != nil {
		return explain(cfg, runErr)
	}
	if !complete && len(s.Rest) > 0 {
		return fmt.Errorf("replay interrupted with %d of %d offsets done; to finish it, replay the rest: %s "+
			"(the other flags as they were, without --from and --to); the whole range again would write again every output already written. "+
			"Either way, what is paid for is in the ledger and is not paid again",
			passed(s.Outputs+s.DeadLetters, s.EmptyOffsets, s.Deleted), total, restFlags(s.Rest))
	}
	if !complete {
		return fmt.Errorf("replay interrupted with %d of %d offsets done; run it again to finish (what is paid for is in the ledger)",
			passed(s.Outputs+s.DeadLetters, s.EmptyOffsets, s.Deleted), total)
	}
	return nil
}

// replayRange is the range's flags, parsed.
type replayRange struct {
	from, to     time.Time       // zero: not given
	starts, ends map[int32]int64 // --start-offsets, --end-offsets
	partitions   []int32         // --partitions; nil: all
}

// parseReplayRange parses the range's flags: what the command line alone
// can get wrong, a usage error before any setting is checked or the
// cluster asked (found by review: with a setting missing, a bad --from was
// not mentioned).
func parseReplayRange(o replayOptions) (r replayRange, err error) {
	if o.From != "" {
		if r.from, err = time.Parse(time.RFC3339Nano, o.From); err != nil {
			return r, usageError{fmt.Sprintf("--from %q: want an RFC 3339 time such as 2024-01-02T00:00:00+08:00", o.From)}
		}
	}
	if o.To != "" {
		if r.to, err = time.Parse(time.RFC3339Nano, o.To); err != nil {
			return r, usageError{fmt.Sprintf("--to %q: want an RFC 3339 time such as 2024-01-03T00:00:00+08:00", o.To)}
		}
	}
	if !r.from.IsZero() && !r.to.IsZero() && !r.to.After(r.from) {
		return r, usageError{"--to must be after --from"}
	}
	if r.starts, err = parsePartitionOffsets("--start-offsets", o.StartOffsets); err != nil {
		return r, err
	}
	if r.ends, err = parsePartitionOffsets("--end-offsets", o.EndOffsets); err != nil {
		return r, err
	}
	r.partitions, err = parsePartitions(o.Partitions)
	return r, err
}

// parsePartitions parses --partitions: partition numbers, comma-separated,
// none twice; nil for all. Whether the topic has them is for
// resolveReplayRange, which asks Kafka. (Found by review: parsed only once
// Kafka answered, a mistake here was reported after any setting's.)
func parsePartitions(s string) ([]int32, error) {
	if s == "" {
		return nil, nil
	}
	var parts []int32
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		switch {
		case err != nil || n < 0:
			return nil, usageError{fmt.Sprintf("--partitions: %q is not a partition number", f)}
		case slices.Contains(parts, int32(n)):
			return nil, usageError{fmt.Sprintf("--partitions: partition %d is given twice", n)}
		}
		parts = append(parts, int32(n))
	}
	return parts, nil
}

// resolveReplayRange turns the flags into offsets per partition: --from and
// --to through the broker's time index (the first record at or after the
// time), --start-offsets and --end-offsets as given, clamped to what the
// partitions hold now (from their log start to their last stable offset),
// with a warning for what of a given range is not there.
func resolveReplayRange(ctx context.Context, cfg *config.Config, o replayOptions, log *slog.Logger) (map[int32]processor.OffsetRange, error) {
	r, err := parseReplayRange(o)
	if err != nil {
		return nil, err
	}
	from, to, starts, ends := r.from, r.to, r.starts, r.ends

	opts, err := kafkaOpts(cfg)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := cfg.Kafka.InputTopic
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return nil, explainKafka(cfg, fmt.Errorf("listing topic %q: %w", topic, err))
	}
	td, ok := details[topic]
	if !ok || td.Err != nil {
		return nil, fmt.Errorf("%w: %q on %v: check kafka.input_topic (--input-topic, TWOSELL_KAFKA_INPUT_TOPIC): a replay reads a topic that holds the events",
			processor.ErrInputTopicMissing, topic, cfg.Kafka.Brokers)
	}
	all := slices.Sorted(maps.Keys(td.Partitions))
	parts := all
	if r.partitions != nil {
		parts = r.partitions
		for _, n := range parts {
			if !slices.Contains(all, n) {
				return nil, usageError{fmt.Sprintf("--partitions: %d is not a partition of %s (it has %d)", n, topic, len(all))}
			}
		}
	}
	named := func(flag string, p int32) error {
		switch {
		case !slices.Contains(all, p):
			return usageError{fmt.Sprintf("%s names partition %d: %s has no such partition (it has %d)", flag, p, topic, len(all))}
		case !slices.Contains(parts, p):
			return usageError{fmt.Sprintf("%s names partition %d, which --partitions leaves out", flag, p)}
		}
		return nil
	}
	for p := range starts {
		if err := named("--start-offsets", p); err != nil {
			return nil, err
		}
	}
	for p, e := range ends {
		if err := named("--end-offsets", p); err != nil {
			return nil, err
		}
		if s, ok := starts[p]; ok && s > e {
			return nil, usageError{fmt.Sprintf("partition %d: --start-offsets %d is after --end-offsets %d (the end is excluded)", p, s, e)}
		}
	}

	listed := func(what string, list func(context.Context, ...string) (kadm.ListedOffsets, error)) (kadm.ListedOffsets, error) {
		l, err := list(ctx, topic)
		if err == nil {
			err = l.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("listing the %s offsets of %q: %w", what, topic, err)
		}
		return l, nil
	}
	logStart, err := listed("start", adm.ListStartOffsets)
	if err != nil {
		return nil, err
	}
	stable, err := listed("end", adm.ListCommittedOffsets)
	if err != nil {
		return nil, err
	}
	var afterFrom, afterTo kadm.ListedOffsets
	if !from.IsZero() {
		if afterFrom, err = listed("--from", afterMilli(adm, from)); err != nil {
			return nil, err
		}
	}
	if !to.IsZero() {
		if afterTo, err = listed("--to", afterMilli(adm, to)); err != nil {
			return nil, err
		}
	}
	offsetOf := func(l kadm.ListedOffsets, p int32) int64 {
		o, _ := l.Lookup(topic, p)
		return o.Offset
	}
	firstFrom, err := firstRecordsAt(ctx, cfg, log, parts, afterFrom, stable, from)
	if err != nil {
		return nil, err
	}
	firstTo, err := firstRecordsAt(ctx, cfg, log, parts, afterTo, stable, to)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]processor.OffsetRange, len(parts))
	for _, p := range parts {
		lo, hi := offsetOf(logStart, p), offsetOf(stable, p)
		r := processor.OffsetRange{Start: lo, End: hi}
		if afterFrom != nil {
			r.Start = firstFrom[p]
		}
		if s, ok := starts[p]; ok {
			r.Start = s
		}
		if afterTo != nil {
			r.End = firstTo[p]
		}
		e, endGiven := ends[p]
		if endGiven {
			r.End = e
		}
		endGiven = endGiven || afterTo != nil
		var notes []string
		// A start and an end given by different flags (--from and
		// --end-offsets, say). An end not given is the partition's: a
		// start past it is clampRange's to report (found by review: both
		// were, and this one blamed an end never given).
		switch startGiven := afterFrom != nil || hasKey(starts, p); {
		case r.End < r.Start && endGiven && !startGiven:
			// The start is the log's: what the range asks for was deleted
			// (found by review: this blamed a start never given).
			notes = append(notes, fmt.Sprintf("partition %d: the range ends at offset %d, before the log starts (%d): its offsets were deleted (retention?): nothing of it to replay", p, r.End, lo))
		case r.End < r.Start && endGiven:
			notes = append(notes, fmt.Sprintf("partition %d: the range ends at offset %d, before it starts (%d): nothing of it to replay", p, r.End, r.Start))
		}
		var clamped []string
		r, clamped = clampRange(p, r, lo, hi)
		notes = append(notes, clamped...)
		for _, n := range notes {
			log.Warn(n, "topic", topic)
		}
		out[p] = r
	}
	return out, nil
}

// clampRange clamps partition p's range r to what it holds now, [lo, hi),
// and says what of the range it asked for is not there: offsets before the
// log start were deleted (retention, or a deleteRecords), offsets past the
// last stable offset were not written yet. Offsets from --from and --to are
// within the partition already; given ones need not be.
func clampRange(p int32, r processor.OffsetRange, lo, hi int64) (processor.OffsetRange, []string) {
	var notes []string
	switch {
	case r.Start < lo && r.Start < r.End:
		notes = append(notes, fmt.Sprintf("partition %d: offsets %d to %d of the range were deleted (the log starts at %d; retention?): they cannot be replayed",
			p, r.Start, min(r.End, lo)-1, lo))
	case r.Start > hi:
		notes = append(notes, fmt.Sprintf("partition %d: the range starts at %d, past the partition's end (%d): nothing of it to replay", p, r.Start, hi))
	}
	if r.End > hi && r.Start < hi {
		notes = append(notes, fmt.Sprintf("partition %d: the range ends at %d, past the partition's end (%d): replaying up to %d", p, r.End, hi, hi))
	}
	r.Start = min(max(r.Start, lo), hi)
	r.End = min(max(r.End, r.Start), hi)
	return r, notes
}

// firstRecordsAt returns, for each of parts, the offset of the first
// record at or after t: at or after the offset the broker's time index gave
// for t (listed), the first data record whose timestamp is at or after t,
// or the partition's end (stable) if none is. The broker answers the first
// offset whose timestamp is at or after t, which a transaction marker's
// can be: the broker stamps it when it writes it, while the records of a
// transactional input often carry their events' times (a Kafka Streams or
// Flink exactly-once job, a backfill). Answered the marker, a range by
// time of such a topic was empty, or reached far before --from. An aborted
// transaction's records count for the broker too, not here (read_committed).
// The record at the broker's offset is read first, so that a topic without
// transactions costs one short read; past it, the partition is read in
// growing steps until the record is found.
func firstRecordsAt(ctx context.Context, cfg *config.Config, log *slog.Logger, parts []int32, listed, stable kadm.ListedOffsets, t time.Time) (map[int32]int64, error) {
	if listed == nil {
		return nil, nil
	}
	topic := cfg.Kafka.InputTopic
	ms := ceilMilli(t)
	first := make(map[int32]int64, len(parts))
	end := make(map[int32]int64, len(parts))
	next := make(map[int32]int64) // the partitions still read, and where from
	for _, p := range parts {
		o, _ := listed.Lookup(topic, p)
		e, _ := stable.Lookup(topic, p)
		// With no record at or after t, the broker answers the end
		// offset, past the last stable one while a transaction is open
		// (found by review: a warning about a range end the user never
		// gave): nothing after the last stable offset is read.
		first[p], end[p] = min(o.Offset, e.Offset), e.Offset
		if o.Offset >= 0 && o.Offset < e.Offset {
			next[p] = o.Offset
		}
	}
	for step := int64(1); len(next) > 0; step *= 64 {
		ranges := make(map[int32]processor.OffsetRange, len(next))
		for p, o := range next {
			ranges[p] = processor.OffsetRange{Start: o, End: min(o+step, end[p])}
		}
		found := make(map[int32]int64)
		if _, _, err := readRange(ctx, cfg, ranges, log, func(r *kgo.Record) {
			if _, ok := found[r.Partition]; !ok && r.Timestamp.UnixMilli() >= ms {
				found[r.Partition] = r.Offset
			}
		}); err != nil {
			return nil, fmt.Errorf("finding the first record at or after %s in %q: %w", t.Format(time.RFC3339Nano), topic, err)
		}
		for p, r := range ranges {
			switch o, ok := found[p]; {
			case ok:
				first[p] = o
				delete(next, p)
			case r.End >= end[p]:
				first[p] = end[p]
				delete(next, p)
			default:
				next[p] = r.End
			}
		}
	}
	return first, nil
}

// ceilMilli is t in Unix milliseconds, rounded up: a record in the
// millisecond below t is before t.
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// afterMilli lists the first offsets at or after t.
func afterMilli(adm *kadm.Client, t time.Time) func(context.Context, ...string) (kadm.ListedOffsets, error) {
	return func(ctx context.Context, topics ...string) (kadm.ListedOffsets, error) {
		return adm.ListOffsetsAfterMilli(ctx, max(ceilMilli(t), 0), topics...) // -1 to -5 are LATEST, EARLIEST, MAX_TIMESTAMP...
	}
}

// parsePartitionOffsets reads "partition:offset,...".
func parsePartitionOffsets(flagName, s string) (map[int32]int64, error) {
	out := make(map[int32]int64)
	if s == "" {
		return out, nil
	}
	for item := range strings.SplitSeq(s, ",") {
		ps, os, ok := strings.Cut(strings.TrimSpace(item), ":")
		p, err1 := strconv.ParseInt(ps, 10, 32)
		o, err2 := strconv.ParseInt(os, 10, 64)
		if !ok || err1 != nil || err2 != nil || p < 0 || o < 0 {
			return nil, usageError{fmt.Sprintf("%s: %q is not partition:offset (such as 0:1200)", flagName, item)}
		}
		if _, dup := out[int32(p)]; dup {
			return nil, usageError{fmt.Sprintf("%s: partition %d is given twice", flagName, p)}
		}
		out[int32(p)] = o
	}
	return out, nil
}

// summarize builds the summary from the processor's counters.
func summarize(s processor.Stats, cfg *config.Config, total int64, took time.Duration, complete bool) replaySummary {
	out := replaySummary{
		Complete: complete, Seconds: took.Seconds(), Total: total,
		Events: s.Consumed, Deleted: s.Deleted, EmptyOffsets: s.EmptyOffsets, Outputs: s.Produced, DeadLetters: s.DeadLettered,
		ByStatus:  make(map[string]int64, len(s.ByStatus)),
		PaidCalls: s.PaidCalls, UncertainCalls: s.UncertainCalls, CacheAnswers: sum(s.CacheAnswers), Coalesced: s.Coalesced, Skipped: s.Skipped,
		PricePerCall: cfg.Juhe.PricePerCall, CostCNY: roundCNY(s.SpendCNY, cfg.Juhe.PricePerCall),
		OutputTopic: cfg.Kafka.OutputTopic, DLQTopic: cfg.Kafka.DLQTopic,
	}
	for k, v := range s.ByStatus {
		out.ByStatus[string(k)] = v
	}
	if took > 0 {
		out.EventsPerSec = float64(out.Outputs+out.DeadLetters) / took.Seconds()
	}
	return out
}

func printSummary(w io.Writer, s replaySummary, asJSON bool) error {
	if asJSON {
		return printJSONLine(w, s)
	}
	state := "complete"
	if !s.Complete {
		state = "INTERRUPTED"
	}
	var byStatus []string
	for _, k := range slices.Sorted(maps.Keys(s.ByStatus)) {
		byStatus = append(byStatus, fmt.Sprintf("%s %d", k, s.ByStatus[k]))
	}
	statuses := "" // none: no empty parentheses
	if len(byStatus) > 0 {
		statuses = "  (" + strings.Join(byStatus, ", ") + ")"
	}
	// The range's offsets that held no record are not records to do: a
	// transactional input has a marker after every transaction.
	done := fmt.Sprintf("%d of %d records done", s.Outputs+s.DeadLetters, s.Total-s.EmptyOffsets)
	if s.Events != s.Outputs+s.DeadLetters {
		done += fmt.Sprintf(", %d read", s.Events) // interrupted: read, not finished
	}

	// A request with no answer read counts as paid (the provider may have
	// billed it): said apart, or a summary of 64 answers in an outage
	// showed 128 paid calls unexplained (a walkthrough).
	paid := fmt.Sprint(s.PaidCalls)
	if s.UncertainCalls > 0 {
		paid += fmt.Sprintf("  (%d answered; %d with no answer read: no reply, a reply cut off or an HTTP error, which the provider may have billed)",
			s.PaidCalls-s.UncertainCalls, s.UncertainCalls)
	}
	_, err := fmt.Fprintf(w, `replay %s in %s: %s (%.0f/s)
  outputs        %d%s -> %s
  dead letters   %d -> %s
  paid calls     %s
  cache answers  %d
  shared calls   %d  (lookups that waited for another lookup's call of the same number)
  skipped        %d
  cost estimate  %s CNY  (%d paid calls at %s CNY)
`, state, time.Duration(s.Seconds*float64(time.Second)).Round(time.Millisecond), done, s.EventsPerSec,
		s.Outputs, statuses, s.OutputTopic, s.DeadLetters, s.DLQTopic,
		paid, s.CacheAnswers, s.Coalesced, s.Skipped, cny(s.CostCNY, s.PricePerCall), s.PaidCalls, cny(s.PricePerCall, s.PricePerCall))
	if err == nil && s.EmptyOffsets > 0 {
		_, err = fmt.Fprintf(w, "  no record      %d offsets  (transaction markers, records of aborted transactions or removed by compaction)\n", s.EmptyOffsets)
	}
	if err == nil && s.Deleted > 0 {
		_, err = fmt.Fprintf(w, "  NOT REPLAYED   %d  (deleted by the broker before they were read: the input's retention; see the WARN lines)\n", s.Deleted)
	}
	if err == nil && s.OutsideTimes > 0 {
		_, err = fmt.Fprintf(w, "  outside times  %d  (replayed with timestamps outside [--from, --to): the range is the offsets from the first record at or after --from to the first at or after --to)\n", s.OutsideTimes)
	}
	return err
}

// outsideTimes counts the records of a replay by time whose timestamps are
// outside [--from, --to). --from and --to are resolved to offsets as
// Kafka's own tools resolve times (kafka-consumer-groups --to-datetime,
// ListOffsets): each partition's first record at or after the time. The
// range is then those offsets, and every record in it is replayed; on a
// partition whose timestamps are not in offset order (producer-set event
// times: a backfill, a mirror, producers with skewed clocks) it holds
// records of other times, which would otherwise go unnoticed. They are
// counted for the summary, and the first is logged at WARN. A kgo hook on
// the replay's client: it sees each record as the replay polls it.
type outsideTimes struct {
	fromMs, toMs int64 // ceilMilli of --from and --to, as the range was resolved; 0: not given
	from, to     string
	ranges       map[int32]processor.OffsetRange
	log          *slog.Logger

	mu     sync.Mutex
	next   map[int32]int64 // per partition, the offset after the last record counted: a record fetched again is counted once
	n      int64
	warned bool
}

// newOutsideTimes returns the counter of a replay given --from or --to, or
// nil.
func newOutsideTimes(o replayOptions, ranges map[int32]processor.OffsetRange, log *slog.Logger) *outsideTimes {
	r, err := parseReplayRange(o)
	if err != nil || (r.from.IsZero() && r.to.IsZero()) {
		return nil
	}
	c := &outsideTimes{from: o.From, to: o.To, ranges: ranges, log: log, next: make(map[int32]int64)}
	if !r.from.IsZero() {
		c.fromMs = max(ceilMilli(r.from), 0)
	}
	if !r.to.IsZero() {
		c.toMs = max(ceilMilli(r.to), 0)
	}
	return c
}

// outside reports whether r's timestamp is outside [--from, --to), to the
// millisecond, as the range was resolved (firstRecordsAt).
func (c *outsideTimes) outside(r *kgo.Record) bool {
	ms := r.Timestamp.UnixMilli()
	return (c.from != "" && ms < c.fromMs) || (c.to != "" && ms >= c.toMs)
}

// OnFetchRecordUnbuffered is kgo.HookFetchRecordUnbuffered: each record of
// the range polled is looked at once.
func (c *outsideTimes) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	if !polled || r.Attrs.IsControl() {
		return
	}
	rng, ok := c.ranges[r.Partition]
	if !ok || r.Offset < rng.Start || r.Offset >= rng.End {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if next, seen := c.next[r.Partition]; seen && r.Offset < next {
		return
	}
	c.next[r.Partition] = r.Offset + 1
	if !c.outside(r) {
		return
	}
	c.n++
	if !c.warned {
		c.warned = true
		c.log.Warn("replay: the range holds records with timestamps outside [--from, --to): it is the offsets from each partition's first record "+
			"at or after --from to its first at or after --to (the broker's time index, as Kafka's tools resolve times), and a replay replays them "+
			"all the same; records within the times that lie past that end are not. The summary counts them (outside_times)",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "timestamp", r.Timestamp.UTC().Format(time.RFC3339Nano),
			"from", c.from, "to", c.to)
	}
}

// count is how many records replayed were outside the times; 0 for nil.
func (c *outsideTimes) count() int64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// replayProgress shows a replay's progress on stderr: a bar redrawn in place
// on a terminal (done/total, rate, paid calls, ETA), plain lines every
// interval otherwise.
type replayProgress struct {
	w        *barLine // shared with the log (runReplay's stderr)
	bar      bool
	off      bool
	interval time.Duration
	total    int64
	start    time.Time
	drawn    bool       // a bar is on the terminal's line: end it
	samples  []paceMark // the last updates, over paceWindow at least (pace)
}

// paceMark is an update: when, and the offsets done then.
type paceMark struct {
	at   time.Time
	done int64
}

// paceWindow is how far back the rate and the ETA look. Counted from the
// start, the fast answers from knowledge made the paid calls left look
// quick: "ETA 0s" at 89.8% with 169 calls to make at 50 a second (a
// walkthrough).
const paceWindow = 10 * time.Second

// pace is the rate of the offsets done over the last paceWindow (from the
// start, until then).
func (p *replayProgress) pace(now time.Time, done int64) float64 {
	p.samples = append(p.samples, paceMark{now, done})
	i := 0 // keep the newest update at least paceWindow old, and those after it
	for i+1 < len(p.samples)-1 && now.Sub(p.samples[i+1].at) >= paceWindow {
		i++
	}
	p.samples = p.samples[i:]
	from := paceMark{p.start, 0}
	if first := p.samples[0]; now.Sub(first.at) >= paceWindow {
		from = first
	}
	return float64(done-from.done) / max(now.Sub(from.at).Seconds(), 1e-9)
}

func newReplayProgress(w io.Writer, o replayOptions, total int64) *replayProgress {
	line, ok := w.(*barLine)
	if !ok {
		line = &barLine{w: w}
	}
	p := &replayProgress{w: line, interval: o.ProgressInterval, total: total, start: time.Now()}
	switch o.Progress {
	case "bar":
		p.bar = true
	case "none":
		p.off = true
	case "auto":
		p.bar = isTerminal(w)
	}
	if p.bar {
		p.interval = 200 * time.Millisecond
	}
	return p
}

// run shows the progress until ctx ends.
func (p *replayProgress) run(ctx context.Context, stats func() processor.Stats) {
	if p.off {
		return
	}
	// The rate and the ETA count from here, the processor started: not
	// the topic checks and the retention scan before (found by review: the
	// first rates were too low, the ETAs too long).
	p.start = time.Now()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := stats()
		held := heldNot
		switch {
		case s.HeldPartitions > 0 && s.BudgetRemaining == 0:
			held = heldForBudget
		case s.HeldPartitions > 0:
			held = heldForProvider
		}
		p.show(passed(s.Produced+s.DeadLettered, s.EmptyOffsets, s.Deleted), s.PaidCalls, sum(s.CacheAnswers), held)
	}
}

// passed is how many offsets of the range a replay is done with: records
// done, offsets that held none, records deleted before they were read.
// Progress counts offsets, of which the range's total is made: counted in
// records, a transactional input, with a marker after every transaction,
// never reached its total.
func passed(done, empty, deleted int64) int64 { return done + empty + deleted }

// heldFor is why records are held back, if they are: then no ETA holds.
type heldFor uint8

const (
	heldNot         heldFor = iota
	heldForBudget           // the daily budget is spent
	heldForProvider         // the provider is unavailable (the breaker, refusals)
)

// show writes one update.
func (p *replayProgress) show(done, paid, cached int64, held heldFor) {
	rate := p.pace(time.Now(), done)
	eta := "?"
	switch {
	case held == heldForBudget:
		eta = "- (daily budget spent: held until it renews)"
	case held == heldForProvider:
		eta = "- (held back: the provider is unavailable)"
	case rate > 0 && done <= p.total:
		eta = time.Duration(float64(p.total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(done) / float64(p.total)
	}
	if p.bar {
		p.drawn = true
		const width = 30
		filled := min(width, int(pct/100*width))
		bar := fmt.Sprintf("[%s%s] %d/%d %5.1f%%  %.0f/s  paid %d  cache %d  ETA %s",
			strings.Repeat("=", filled), strings.Repeat(" ", width-filled), done, p.total, pct, rate, paid, cached, eta)
		p.w.draw(bar)
		return
	}
	fmt.Fprintf(p.w, "replay: %d/%d offsets (%.1f%%) · %.0f/s · paid calls %d · cache answers %d · ETA %s\n",
		done, p.total, pct, rate, paid, cached, eta)
}

// abandon ends the bar's line, if one was drawn, and shows nothing more.
func (p *replayProgress) abandon() {
	if p.drawn {
		p.w.end()
	}
}

// barLine is stderr as the replay's log and its progress bar share it: the
// bar is redrawn in place, and a log line written while it is shown clears
// the bar's line first and has the bar drawn again below it. (Found by
// review: "replay complete", and a warning mid-replay, were written onto the
// bar's line, after it.) slog's handlers write a record in one Write.
type barLine struct {
	mu  sync.Mutex
	w   io.Writer
	bar string // the bar shown on the line now; "" when none
}

func (b *barLine) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar == "" {
		return b.w.Write(p)
	}
	if _, err := io.WriteString(b.w, "\r\033[K"); err != nil {
		return 0, err
	}
	n, err := b.w.Write(p)
	if err == nil {
		_, err = io.WriteString(b.w, "\r\033[K"+b.bar)
	}
	return n, err
}

// draw shows bar in place of the one shown.
func (b *barLine) draw(bar string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bar = bar
	io.WriteString(b.w, "\r\033[K"+bar)
}

// end ends the bar's line, as it is, and shows no bar from now on.
func (b *barLine) end() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bar = ""
	io.WriteString(b.w, "\n")
}

// Unwrap is the writer the line is on (isTerminal).
func (b *barLine) Unwrap() io.Writer { return b.w }

// finish ends the bar's line.
func (p *replayProgress) finish(s replaySummary) {
	if p.off {
		return
	}
	p.show(passed(s.Outputs+s.DeadLetters, s.EmptyOffsets, s.Deleted), s.PaidCalls, s.CacheAnswers, heldNot)
	if p.bar {
		p.w.end()
	}
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}

// isClosed reports whether c is closed now.
func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
