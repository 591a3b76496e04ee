package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/processor"
)

// replayEstimate is what "replay --dry-run" prints: what the range holds and
// what enriching it would pay, judged by what the ledger knows now, without
// a call to the provider and without writing to Kafka.
//
// A paid answer during the replay may imply later events of the same mobile,
// so the calls are a range: at least one per mobile the ledger does not
// answer, at most one per distinct mobile and date among those events. The
// most holds while no answer expires or is evicted during the replay
// (cache.short_ttl and cache.not_recycled_ttl, cache.max_entries). Without
// the cache (cache.enabled: false) every event pays: both ends are the
// events.
type replayEstimate struct {
	Total           int64   `json:"total"`         // offsets in the range
	Events          int64   `json:"events"`        // records read
	EmptyOffsets    int64   `json:"empty_offsets"` // offsets that held no record (transaction markers, aborted or compacted away)
	Deleted         int64   `json:"deleted"`       // records the broker deleted before they were read (retention): a replay cannot replay them
	DeadLetters     int64   `json:"dead_letters"`  // records that do not decode: the replay dead-letters them
	Known           int64   `json:"known"`         // events what is known answers: no call
	Unknown         int64   `json:"unknown"`       // events it does not answer
	OutsideTimes    int64   `json:"outside_times"` // records of the range with timestamps outside [--from, --to): replayed all the same
	MinPaidCalls    int64   `json:"min_paid_calls"`
	MaxPaidCalls    int64   `json:"max_paid_calls"`
	PricePerCall    float64 `json:"price_per_call"`
	MinCostCNY      float64 `json:"min_cost_cny"`
	MaxCostCNY      float64 `json:"max_cost_cny"`
	BudgetRemaining *int64  `json:"budget_remaining"` // paid calls left today under juhe.daily_budget; null without one
	Ledger          bool    `json:"ledger"`           // false: no ledger was read, nothing is known
	Cache           bool    `json:"cache"`            // cache.enabled; false: nothing is known or shared, every event pays
	Seconds         float64 `json:"seconds"`
}

// noCalls is the dry run's provider: the estimate asks only what is known,
// so a call is a bug, and it says so rather than paying.
type noCalls struct{}

func (noCalls) Enrich(context.Context, processor.Lookup) (processor.Result, error) {
	return processor.Result{}, processor.Fatal(errors.New("replay --dry-run makes no call"))
}

// estimateReplay is "replay --dry-run": it loads the ledger, reads the range
// without a group and decodes every record as the replay would, and counts
// what the knowledge answers. It creates no topic and writes nothing.
func estimateReplay(ctx context.Context, cfg *config.Config, ranges map[int32]processor.OffsetRange, total int64, outside *outsideTimes, log *slog.Logger) (replayEstimate, error) {
	start := time.Now()
	est := replayEstimate{Total: total, PricePerCall: cfg.Juhe.PricePerCall, Ledger: cfg.Ledger.Enabled, Cache: cfg.Cache.Enabled}
	cfg.Kafka.CreateTopics = false // a dry run writes nothing, topics included
	tp := noop.NewTracerProvider() // nothing to trace: no call is made
	cost, err := openCostControl(ctx, cfg, noCalls{}, "replay", tp, log)
	if errors.Is(err, processor.ErrTopicMissing) && cfg.Ledger.Enabled {
		log.Warn("the ledger topic does not exist: nothing is known, every event is counted as unknown", "topic", cfg.Ledger.Topic)
		cfg.Ledger.Enabled, est.Ledger = false, false
		cost, err = openCostControl(ctx, cfg, noCalls{}, "replay", tp, log)
	}
	if err != nil {
		return est, err
	}
	defer closeCostControl(ctx, cost)
	pc, err := processorConfig(cfg, cost, tp, log)
	if err != nil {
		return est, err
	}
	codec, err := processor.NewCodec(pc.Codec)
	if err != nil {
		return est, err
	}

	type mobileDate struct {
		key  processor.MobileKey
		date string
	}
	mobiles := make(map[processor.MobileKey]struct{})
	pairs := make(map[mobileDate]struct{})
	est.EmptyOffsets, est.Deleted, err = readRange(ctx, cfg, ranges, log, func(r *kgo.Record) {
		est.Events++
		if outside != nil {
			outside.OnFetchRecordUnbuffered(r, true)
		}
		ev, err := codec.DecodeRecord(r)
		if err != nil {
			est.DeadLetters++
			return
		}
		l := ev.Lookup()
		key, known := cost.Implied(l)
		if known {
			est.Known++
			return
		}
		est.Unknown++
		mobiles[key] = struct{}{}
		pairs[mobileDate{key, l.Date}] = struct{}{}
	})
	if err != nil {
		return est, err
	}
	est.OutsideTimes = outside.count()
	est.MinPaidCalls, est.MaxPaidCalls = int64(len(mobiles)), int64(len(pairs))
	if !cfg.Cache.Enabled {
		// No knowledge kept and no lookup coalesced (README's
		// cache.enabled: every lookup is paid): every unknown event pays,
		// at least as at most. Found by review: the least was one per
		// mobile, which a replay without the cache never reaches.
		est.MinPaidCalls, est.MaxPaidCalls = est.Unknown, est.Unknown
	}
	est.MinCostCNY = roundCNY(float64(est.MinPaidCalls)*est.PricePerCall, est.PricePerCall)
	est.MaxCostCNY = roundCNY(float64(est.MaxPaidCalls)*est.PricePerCall, est.PricePerCall)
	if s := cost.CostStats(); s.BudgetRemaining >= 0 && cfg.Juhe.DailyBudget > 0 {
		est.BudgetRemaining = &s.BudgetRemaining
	}
	est.Seconds = time.Since(start).Seconds()
	return est, nil
}

// readRange hands each data record of ranges, in each partition's order, to
// each, reading the input directly (no group, read_committed). A partition
// is done at the first record or transaction marker at or past its range's
// last offset, or once the broker deleted the rest of its range (then
// logged). It returns how many offsets of the ranges it passed held no
// record to hand on (transaction markers, records of aborted transactions,
// records removed by compaction), and how many records the broker deleted
// before they were read (retention; logged), as the replay's summary counts
// them.
func readRange(ctx context.Context, cfg *config.Config, ranges map[int32]processor.OffsetRange, log *slog.Logger, each func(*kgo.Record)) (empty, deleted int64, err error) {
	topic := cfg.Kafka.InputTopic
	offsets := make(map[int32]kgo.Offset)
	for part, r := range ranges {
		if r.Start < r.End {
			offsets[part] = kgo.NewOffset().At(r.Start)
		}
	}
	if len(offsets) == 0 {
		return 0, 0, nil
	}
	opts, err := kafkaOpts(cfg)
	if err != nil {
		return 0, 0, err
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.WithLogger(processor.KafkaLogger(log.With("client", "estimate"))),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // a range may end in transaction markers
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	left := len(offsets)
	done := make(map[int32]bool)
	at := make(map[int32]int64) // where each partition stands: after its last record or marker read
	for part, r := range ranges {
		at[part] = r.Start
	}
	var handed int64             // data records handed on
	gone := make(map[int32]bool) // partitions whose rest the broker deleted
	// The offsets skipped between two records read: transaction markers
	// are read (KeepControlRecords), so these held records of aborted
	// transactions or removed by compaction, or records the broker deleted
	// while the range was read (franz-go goes on at the log start then).
	gaps := make(map[int32][][2]int64)
	defer func() {
		if err != nil {
			return
		}
		var deletedIn int64
		if deletedIn, err = deletedGaps(ctx, cl, topic, gaps, log); err != nil {
			return
		}
		for part := range offsets {
			r := ranges[part]
			passed := r.End
			if gone[part] {
				passed = min(at[part], r.End) // the rest was deleted, not passed
				deleted += r.End - passed
			}
			empty += passed - r.Start
		}
		empty -= handed + deletedIn
		deleted += deletedIn
	}()
	finish := func(part int32) {
		if !done[part] {
			done[part] = true
			left--
		}
	}
	for left > 0 {
		pollCtx, cancel := context.WithTimeout(ctx, time.Second) // then see whether the rest is gone
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		got := 0
		fetches.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				log.Warn("fetch error; the client retries", "topic", t, "partition", part, "err", err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			got++
			if a := at[r.Partition]; r.Offset > a && !done[r.Partition] {
				gaps[r.Partition] = append(gaps[r.Partition], [2]int64{a, min(r.Offset, ranges[r.Partition].End)})
			}
			at[r.Partition] = r.Offset + 1
			rng := ranges[r.Partition]
			if done[r.Partition] || r.Offset >= rng.End {
				finish(r.Partition)
				return
			}
			if r.Offset == rng.End-1 {
				finish(r.Partition)
			}
			if !r.Attrs.IsControl() {
				handed++
				each(r)
			}
		})
		if got == 0 { // nothing for a while: has the broker deleted the rest?
			finishDeleted := func(part int32) { gone[part] = true; finish(part) }
			if err := deletedRest(ctx, cl, topic, ranges, done, finishDeleted, log); err != nil {
				return 0, 0, err
			}
			// A range can end in records of an aborted transaction whose
			// marker lies past the last stable offset: never returned.
			for part := range offsets {
				if r := ranges[part]; !done[part] {
					if n, _ := processor.RangeRest(ctx, cl, topic, part, at[part], r.End); n >= r.End {
						finish(part)
					}
				}
			}
		}
	}
	return 0, 0, nil
}

// deletedGaps returns how many offsets of gaps, per partition the offsets
// skipped between two records read, lie below the partition's log start
// now: records the broker deleted (retention) while the range was read,
// which franz-go skips, going on at the log start with a warning of its own;
// they are logged. The rest of a gap held no record to read.
func deletedGaps(ctx context.Context, cl *kgo.Client, topic string, gaps map[int32][][2]int64, log *slog.Logger) (int64, error) {
	if len(gaps) == 0 {
		return 0, nil
	}
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, fmt.Errorf("listing the log start of %q: %w", topic, err)
	}
	var total int64
	for part, gs := range gaps {
		start, ok := starts.Lookup(topic, part)
		if !ok {
			continue
		}
		var n int64
		for _, g := range gs {
			n += max(min(g[1], start.Offset)-g[0], 0)
		}
		if n > 0 {
			log.Warn("the broker deleted records of a partition's range before they were read (retention?): not counted",
				"topic", topic, "partition", part, "records", n, "log_start", start.Offset)
		}
		total += n
	}
	return total, nil
}

// deletedRest ends the partitions not done whose log start is now at or
// past their range's end: the broker deleted the rest of their range
// (retention) while it was being read.
func deletedRest(ctx context.Context, cl *kgo.Client, topic string, ranges map[int32]processor.OffsetRange, done map[int32]bool, finish func(int32), log *slog.Logger) error {
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("listing the log start of %q: %w", topic, err)
	}
	for part, r := range ranges {
		if o, ok := starts.Lookup(topic, part); ok && !done[part] && o.Offset >= r.End {
			log.Warn("the broker deleted the rest of a partition's range before it was read (retention?): not counted",
				"topic", topic, "partition", part, "log_start", o.Offset, "range_end", r.End)
			finish(part)
		}
	}
	return nil
}

// printEstimate writes e on w: a few aligned lines, or one JSON object.
func printEstimate(w io.Writer, e replayEstimate, asJSON bool) error {
	if asJSON {
		return printJSONLine(w, e)
	}
	known, calls := "answered by what the ledger holds: no call", "at least one per mobile, at most one per mobile and date"
	switch {
	case !e.Cache:
		known, calls = "cache.enabled is false: nothing is answered without a call", "one per event: cache.enabled is false, nothing is known or shared"
	case !e.Ledger:
		known = "no ledger was read: nothing is known"
	}
	_, err := fmt.Fprintf(w, `replay estimate (--dry-run: no call made, nothing written): %d of %d records read in %s%s
  dead letters     %d  (they do not decode)
  known            %d  (%s)
  need a call      %d events
  paid calls       %d to %d  (%s)
  cost estimate    %s to %s CNY  (at %s CNY a call)
`, e.Events, e.Total-e.EmptyOffsets, time.Duration(e.Seconds*float64(time.Second)).Round(time.Millisecond), emptyNote(e.EmptyOffsets),
		e.DeadLetters, e.Known, known, e.Unknown, e.MinPaidCalls, e.MaxPaidCalls, calls,
		cny(e.MinCostCNY, e.PricePerCall), cny(e.MaxCostCNY, e.PricePerCall), cny(e.PricePerCall, e.PricePerCall))
	if err == nil && e.Deleted > 0 {
		_, err = fmt.Fprintf(w, "  deleted          %d  (deleted by the broker before they were read: the input's retention; see the WARN lines)\n", e.Deleted)
	}
	if err == nil && e.OutsideTimes > 0 {
		_, err = fmt.Fprintf(w, "  outside times    %d  (replayed all the same, their timestamps outside [--from, --to): the range is the offsets from the first record at or after --from to the first at or after --to)\n", e.OutsideTimes)
	}
	if err == nil && e.BudgetRemaining != nil {
		note := ""
		if e.MaxPaidCalls > *e.BudgetRemaining {
			note = "  (may not be enough today: processing.on_budget decides what happens then)"
		}
		_, err = fmt.Fprintf(w, "  budget left      %d paid calls today%s\n", *e.BudgetRemaining, note)
	}
	return err
}

// cny formats an amount in yuan, to the fen, or to as many decimals as the
// price per call has (a cost is a whole number of calls at that price): at
// a price of 0.015, "%.2f" wrote 1,000 calls as "15.00 CNY at 0.01 CNY".
func cny(amount, price float64) string {
	decimals := 2
	if p := strconv.FormatFloat(price, 'f', -1, 64); strings.Contains(p, ".") {
		decimals = max(decimals, min(len(p)-strings.IndexByte(p, '.')-1, 8))
	}
	return strconv.FormatFloat(amount, 'f', decimals, 64)
}

// roundCNY rounds an amount at price to cny's decimals, for the JSON
// summaries: 3 calls at 0.1 are 0.3, not 0.30000000000000004.
func roundCNY(amount, price float64) float64 {
	v, _ := strconv.ParseFloat(cny(amount, price), 64)
	return v
}

// emptyNote says how many offsets of a range held no record, if any did.
func emptyNote(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d more offsets held no record: transaction markers, records of aborted transactions or removed by compaction)", n)
}
