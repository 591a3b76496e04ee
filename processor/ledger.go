package processor

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The ledger is a compacted Kafka topic where every paid answer is written,
// so that restarts, the other instances of the group and replays reuse what
// was paid for, the daily budget counts every instance's calls, and the
// provider's bill can be reconciled by order id.
//
// It holds two kinds of records:
//
//   - knowledge, key "k/<mobile key>": everything known about one mobile
//     (its bounds and short-lived fact, each with the order id, time and
//     mode of the answer that proved it), rewritten after each paid answer.
//     Compaction keeps the latest per mobile, so the ledger's knowledge is
//     bounded by the mobiles ever asked about.
//   - calls, key "c/<day>/<instance>/<order id or sequence>": one per paid
//     answer, res 3 and no record included. Their keys are unique, so
//     compaction never removes them: they are the audit trail (twosell
//     ledger export) and what the daily budget counts — a count of the
//     knowledge records would fall short once compaction merged two calls
//     about one mobile. The day in the key lets the budget count without
//     decoding, and the instance lets an instance skip its own records.
//
// Calls make the topic grow by about 250 bytes per paid call, which at
// 0.25–0.60 CNY a call is negligible next to what the calls cost. Loading
// and following read the facts of both: a knowledge record is rewritten
// whole after each paid answer, from what the writer's cache holds, and one
// written without an earlier fact (the mobile was evicted from the cache,
// or two instances paid for it at once) loses that fact when compaction
// keeps only the latest; the calls keep every one.
//
// Records are written outside any transaction: a call is paid whether or
// not the transaction of the record that asked for it commits.

// LedgerConfig configures the ledger of a CostControl.
type LedgerConfig struct {
	// ClientOpts say how to reach the cluster (seed brokers, TLS, SASL).
	ClientOpts []kgo.Opt
	// Topic is the ledger topic (required).
	Topic string
	// CreateTopic creates the topic, compacted, when it is missing.
	CreateTopic bool
	// Role names what writes (run, replay, query, dev) in the instance id of its
	// call records. ("twosell")
	Role string
	// WriteTimeout bounds the wait for a record to be acknowledged (30s).
	WriteTimeout time.Duration
}

// LedgerCall is one paid call as the ledger records it.
type LedgerCall struct {
	Key      string    `json:"key"`                // the mobile's key (hex HMAC), never the number
	Day      string    `json:"day"`                // the day the call counts for in the budget, yyyymmdd
	At       time.Time `json:"at"`                 // when the provider answered
	Date     string    `json:"date"`               // the day asked about, yyyymmdd
	Status   Status    `json:"status"`             // recycled, not_recycled, no_activation_date, no_record
	Res      int       `json:"res,omitempty"`      // the provider's res
	Code     int       `json:"code"`               // the provider's error_code (0, or 232703)
	OrderID  string    `json:"order_id,omitempty"` // the provider's order id, by which its bill is reconciled
	Mode     string    `json:"mode"`               // how the mobile was sent
	Instance string    `json:"instance"`           // who paid: role and a random id per process

	// Unreadable is set, by ReadLedgerCalls, for a call record whose value
	// it could not decode (written by hand, or by a later version): it says
	// where the record is and why, and the call holds only what the record's
	// key says (Day, Instance and OrderID). The budget counts such a record
	// by its key alone, so the export does not leave it out.
	Unreadable string `json:"-"`
}

// Ledger key prefixes.
const (
	ledgerKnowledgePrefix = "k/"
	ledgerCallPrefix      = "c/"
	ledgerVersion         = 1
)

// ledgerKnowledge is the value of a knowledge record.
type ledgerKnowledge struct {
	V        int         `json:"v"`
	Instance string      `json:"instance"`
	After    *ledgerFact `json:"after,omitempty"`     // A > after.date (res 1)
	NotAfter *ledgerFact `json:"not_after,omitempty"` // A ≤ not_after.date (res 2), as of at
	// Tighter: older res 2 at earlier dates (Knowledge.Tighter), the newest
	// first. A version that does not know them reads the record without.
	Tighter  []*ledgerFact `json:"older_not_after,omitempty"`
	Short    *ledgerFact   `json:"short,omitempty"` // res 3 or no record, as of at
	BoundsAt time.Time     `json:"bounds_at"`       // the newest res 1 or 2 answer (Knowledge.BoundsAt)
	// StaleBefore: no res 2 given at or before it holds (Knowledge.StaleBefore).
	StaleBefore time.Time `json:"stale_before,omitzero"`
}

type ledgerFact struct {
	Kind    string    `json:"kind"` // the status it answers with
	Date    string    `json:"date"`
	OrderID string    `json:"order_id,omitempty"`
	Mode    string    `json:"mode,omitempty"`
	At      time.Time `json:"at"`
}

func (lf *ledgerFact) fact() (Fact, bool) {
	if lf == nil {
		return Fact{}, false
	}
	k := parseFactKind(lf.Kind)
	if k == 0 || !isDay(lf.Date) {
		return Fact{}, false
	}
	return Fact{Kind: k, Date: lf.Date, OrderID: lf.OrderID, Mode: lf.Mode, At: lf.At}, true
}

// knowledge returns what the record says. A fact of the wrong kind for its
// place is dropped.
func (lk *ledgerKnowledge) knowledge() Knowledge {
	k := Knowledge{BoundsAt: lk.BoundsAt, StaleBefore: lk.StaleBefore}
	if f, ok := lk.After.fact(); ok && f.Kind == FactAfter {
		k.Lower = f
	}
	if f, ok := lk.NotAfter.fact(); ok && f.Kind == FactNotAfter {
		k.Upper = f
	}
	// Kept as they come (Merge sorts them out), at most as many as
	// Knowledge holds.
	n := 0
	for _, lf := range lk.Tighter {
		if f, ok := lf.fact(); ok && f.Kind == FactNotAfter && n < len(k.Tighter) {
			k.Tighter[n] = f
			n++
		}
	}
	if f, ok := lk.Short.fact(); ok && (f.Kind == FactNoActivationDate || f.Kind == FactNoRecord) {
		k.Short = f
	}
	return k
}

// isDay reports whether s looks like yyyymmdd.
func isDay(s string) bool {
	if len(s) != 8 {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ledgerRecord is a decoded ledger record.
type ledgerRecord struct {
	key       MobileKey        // knowledge records, and call records with a fact
	knowledge *ledgerKnowledge // knowledge records
	call      *ledgerCallKey   // call records: the budget counts them by their key
	// fact is what a call record's answer proved (if hasFact: its value
	// could be read): knowledge records are rewritten whole, and one written
	// without an earlier fact (its mobile evicted from the cache, or paid
	// for by two instances at once) would lose it at compaction; the calls
	// keep every fact.
	fact    Fact
	hasFact bool
	own     bool // written by this instance
}

// ledgerCallKey is what a call record's key says.
type ledgerCallKey struct {
	Day, Instance, ID string
}

func parseCallKey(key string) (ledgerCallKey, bool) {
	parts := strings.SplitN(strings.TrimPrefix(key, ledgerCallPrefix), "/", 3)
	if !strings.HasPrefix(key, ledgerCallPrefix) || len(parts) != 3 || !isDay(parts[0]) {
		return ledgerCallKey{}, false
	}
	return ledgerCallKey{Day: parts[0], Instance: parts[1], ID: parts[2]}, true
}

// ledger writes to and reads from the ledger topic.
type ledger struct {
	cfg      LedgerConfig
	log      *slog.Logger
	seeds    []string // the cluster's seed brokers, for the command a warning gives
	instance string
	// instanceBytes is instance, for the header of every knowledge record;
	// shared by them all and never written.
	instanceBytes []byte
	apply         func(ledgerRecord)
	// failed, if set, hears of each paid call whose records the ledger
	// could not write.
	failed func(call LedgerCall, err error, callFailed, knowledgeFailed bool)
	// secretID identifies the cache secret this instance's mobile keys are
	// made with (see ledgerSecretHeader); nil reads every record as its own
	// secret's.
	secretID []byte
	seq      atomic.Int64
	read     atomic.Int64 // records read
	bad      atomic.Int64 // records that could not be read
	// Knowledge records written under another secret, skipped: read while
	// loading, and read while following (written by an instance running
	// now).
	foreignLoaded, foreignFollowed atomic.Int64
	// following is set once the ledger is loaded: a foreign record read
	// afterwards was written by an instance running now, and is warned of
	// at once (once); Open reports those read while loading.
	following     atomic.Bool
	warnedForeign atomic.Bool

	reading ledgerReading // what the polls say of the partitions
	// writing counts the writes in flight; lastAnswer is when the brokers
	// last answered one of their records (or when the first of a run of
	// them began), in Unix nanoseconds: Unwritable.
	writing    atomic.Int64
	lastAnswer atomic.Int64
	rewrites   ledgerRewrites // call records written again after a failed write
	lost       atomic.Int64   // call records given up unwritten when the ledger closed

	cl     *kgo.Client
	txns   txnFilter // load's, then follow's
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func newLedger(cfg LedgerConfig, log *slog.Logger, apply func(ledgerRecord)) *ledger {
	setDefault(&cfg.Role, "twosell")
	setDefault(&cfg.WriteTimeout, 30*time.Second)
	var b [6]byte
	_, _ = rand.Read(b[:])
	instance := cfg.Role + "." + hex.EncodeToString(b[:])
	return &ledger{cfg: cfg, log: log, instance: instance, instanceBytes: []byte(instance), apply: apply}
}

// open creates the topic if needed, loads every record written so far and
// follows the topic in the background.
func (l *ledger) open(ctx context.Context) error {
	base := append([]kgo.Opt{kgo.WithLogger(newKgoLogger(l.log, nil))}, l.cfg.ClientOpts...)
	// The topic is made sure of first, by a client of its own: a client
	// whose first metadata lacked the topic learned of it only at its next
	// refresh, about 100 ms later, and the first paid answers' ledger
	// records (and so their outputs) waited for it.
	adm, err := kgo.NewClient(base...)
	if err != nil {
		return fmt.Errorf("ledger: kafka client: %w", err)
	}
	l.seeds, _ = adm.OptValue(kgo.SeedBrokers).([]string)
	ends, err := l.prepare(ctx, kadm.NewClient(adm))
	adm.Close()
	if err != nil {
		return err
	}
	opts := append(base,
		kgo.ConsumeTopics(l.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		keepMarkers(),
		kgo.ProducerLinger(0), // a paid answer waits for its record: do not add to it
		// Uncompressed: an instance reads back every record it writes (it
		// follows the topic), and small batches of a few records gain little
		// from compression but cost it on both sides.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordDeliveryTimeout(l.cfg.WriteTimeout),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("ledger: kafka client: %w", err)
	}
	l.cl = cl
	warmProducer(ctx, cl)
	if err := l.load(ctx, ends); err != nil {
		cl.Close()
		l.cl = nil
		return err
	}
	fctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.following.Store(true)
	l.done.Go(func() { l.follow(fctx) })
	return nil
}

// prepare makes sure the topic exists and returns, by partition, the offset
// of the last record written before now (partitions with none are left
// out).
func (l *ledger) prepare(ctx context.Context, adm *kadm.Client) (map[int32]int64, error) {
	topics, err := adm.ListTopics(ctx, l.cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("ledger: listing topic %q: %w", l.cfg.Topic, err)
	}
	if !topics.Has(l.cfg.Topic) {
		if !l.cfg.CreateTopic {
			return nil, fmt.Errorf("ledger: %w: %q (create it compacted, cleanup.policy=compact, or allow creating topics)", ErrTopicMissing, l.cfg.Topic)
		}
		compact := "compact"
		resp, err := adm.CreateTopic(ctx, -1, -1, map[string]*string{"cleanup.policy": &compact}, l.cfg.Topic)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			if resp.ErrMessage != "" {
				err = fmt.Errorf("%w: %s", err, resp.ErrMessage)
			}
			return nil, fmt.Errorf("ledger: creating topic %q (%s): %w", l.cfg.Topic, createFix(err), err)
		}
		if err == nil {
			l.log.Info("created the ledger topic (compacted)", "topic", l.cfg.Topic)
		}
	} else {
		l.checkKept(ctx, adm)
	}
	// A topic just created may not be known to every broker yet, nor to
	// the client's metadata (newTopicRetry).
	var starts, ends kadm.ListedOffsets
	err = newTopicRetry(ctx, func() error {
		var err1, err2 error
		starts, err1 = adm.ListStartOffsets(ctx, l.cfg.Topic)
		ends, err2 = adm.ListEndOffsets(ctx, l.cfg.Topic)
		return errors.Join(err1, err2, starts.Error(), ends.Error())
	}, func(error) bool { return true })
	if err != nil {
		return nil, fmt.Errorf("ledger: listing the offsets of %q: %w", l.cfg.Topic, err)
	}
	last := make(map[int32]int64)
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok && o.Offset > s.Offset {
			last[o.Partition] = o.Offset - 1
		}
	})
	return last, nil
}

// createFix says what to do when the ledger topic could not be created.
func createFix(err error) string {
	if errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) {
		return "the user may not create it: grant it CREATE on the topic, or create the topic compacted beforehand, cleanup.policy=compact"
	}
	return "create it compacted beforehand, cleanup.policy=compact, if the cluster cannot"
}

// compactCommand is Kafka's command that compacts the ledger topic, ready
// to paste: this cluster's first seed broker and the topic's name.
func (l *ledger) compactCommand() string {
	server := "<broker>"
	if len(l.seeds) > 0 {
		server = l.seeds[0]
	}
	return fmt.Sprintf("kafka-configs --bootstrap-server %s --alter --entity-type topics --entity-name %s --add-config cleanup.policy=compact",
		server, l.cfg.Topic)
}

// checkKept warns when the ledger topic, created by someone else, lets the
// broker delete records: the broker's default cleanup.policy is delete,
// after retention.ms (7 days by default). Call records are the audit trail
// and what the daily budget counts, and knowledge records what spares paid
// calls: deleted, numbers are paid for again and the bill's order ids are
// gone from ledger export. A topic whose configuration cannot be read
// (no DESCRIBE_CONFIGS) is taken as it is, with a line at INFO.
func (l *ledger) checkKept(ctx context.Context, adm *kadm.Client) {
	configs, err := topicConfigs(ctx, adm, l.cfg.Topic)
	if err != nil {
		l.log.Info("could not read the ledger topic's configuration to check that it is compacted", "topic", l.cfg.Topic, "err", err)
		return
	}
	policy, retention, bytes := "delete", "", "" // Kafka's defaults for what the broker does not say
	for _, c := range configs {
		switch c.Key {
		case "cleanup.policy":
			policy = c.MaybeValue()
		case "retention.ms":
			retention = c.MaybeValue()
		case "retention.bytes":
			bytes = c.MaybeValue()
		}
	}
	policies := strings.Split(policy, ",")
	unlimited := func(v string) bool { n, err := strconv.ParseInt(v, 10, 64); return err == nil && n < 0 }
	switch {
	case !slices.Contains(policies, "delete"):
	case unlimited(retention) && (bytes == "" || unlimited(bytes)):
		if !slices.Contains(policies, "compact") {
			l.log.Warn("the ledger topic is not compacted: it keeps every record and grows without end; set cleanup.policy=compact "+
				"("+l.compactCommand()+")",
				"topic", l.cfg.Topic, "cleanup.policy", policy)
		}
	default:
		l.log.Warn("the ledger topic lets the broker delete records: knowledge deleted is paid for again, and deleted call records "+
			"leave the daily budget and ledger export (the bill's order ids) short; set cleanup.policy=compact "+
			"("+l.compactCommand()+")",
			"topic", l.cfg.Topic, "cleanup.policy", policy, "retention.ms", retention, "retention.bytes", bytes)
	}
}

// newTopicRetry calls try until it succeeds, or fails otherwise than again
// says, for up to 5 s, soon at first: a topic just created may not be known
// to every broker yet, nor to the client's metadata (kfake knows it at
// once, and the client at its next refresh). It returns try's last error.
func newTopicRetry(ctx context.Context, try func() error, again func(error) bool) error {
	wait, deadline := 5*time.Millisecond, time.Now().Add(5*time.Second)
	for {
		err := try()
		if err == nil || !again(err) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		_ = sleep(ctx, wait) // ctx's end is seen above
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// load reads until every partition's last record at start (last) is read.
// The last record of a partition is never removed by compaction (it is the
// latest of its key, and the ledger writes no tombstones), so it is always
// reached.
func (l *ledger) load(ctx context.Context, last map[int32]int64) error {
	var backoff errorBackoff
	for len(last) > 0 {
		fs := l.poll(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("ledger: loading %q: %w", l.cfg.Topic, err)
		}
		if fs.IsClientClosed() {
			return fmt.Errorf("ledger: loading %q: %w", l.cfg.Topic, kgo.ErrClientClosed)
		}
		if err := fetchRefused(l.cfg.Topic, fs); err != nil {
			return err
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := last[r.Partition]; ok && r.Offset >= end {
				delete(last, r.Partition)
			}
			l.txns.filter(r, l.handle)
		})
		if !l.polled(ctx, fs, &backoff) {
			return fmt.Errorf("ledger: loading %q: %w", l.cfg.Topic, ctx.Err())
		}
	}
	return nil
}

// txnFilter passes a ledger reader's records on, those of transactions
// once they commit. The readers read uncommitted, so that the marker that
// may be a partition's last offset comes (keepMarkers): a committed read
// drops an aborted transaction's records without a trace, and one whose
// marker lies past the last stable offset (another transaction open) left
// a start waiting. They hold each transactional record back until its
// transaction's marker: a commit passes them on, an abort drops them (a
// mirror's retried transaction: calls never made, nor to be counted).
// Records outside transactions, as twosell writes them, pass at once.
type txnFilter struct {
	open map[txnKey][]*kgo.Record
}

type txnKey struct {
	partition int32
	producer  int64
}

// filter passes r to pass, or holds it back, or passes the records its
// marker commits.
func (f *txnFilter) filter(r *kgo.Record, pass func(*kgo.Record)) {
	k := txnKey{r.Partition, r.ProducerID}
	switch {
	case r.Attrs.IsControl():
		held := f.open[k]
		delete(f.open, k)
		// A marker's key: version and type (0 abort, 1 commit), int16s.
		if len(r.Key) >= 4 && binary.BigEndian.Uint16(r.Key[2:4]) == 1 {
			for _, h := range held {
				pass(h)
			}
		}
	case r.Attrs.IsTransactional():
		if f.open == nil {
			f.open = make(map[txnKey][]*kgo.Record)
		}
		f.open[k] = append(f.open[k], r)
	default:
		pass(r)
	}
}

// keepMarkers has the ledger's readers receive transaction markers. They
// wait for each partition's last offset at start, and twosell writes the
// ledger outside transactions, but another writer may not (a mirror in
// exactly-once mode, a restore): then the last offset can be a marker,
// which franz-go otherwise never returns, and a start or an export waited
// for good. The readers take the transactions' outcomes from them
// (txnFilter).
func keepMarkers() kgo.Opt { return kgo.KeepControlRecords() }

// follow reads what other instances write, until ctx ends.
//
// Its polls' fetch errors (the topic deleted, a broker restarted without
// its data) are tracked per partition (reading); a poll with errors and no
// record is followed by a backoff of up to a second. (Found by an operator
// drill: with the topic deleted, polls came back at once, each with an
// error per partition, and each was logged: 38,000 lines a second.)
func (l *ledger) follow(ctx context.Context) {
	var backoff errorBackoff
	for {
		fs := l.poll(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachRecord(func(r *kgo.Record) { l.txns.filter(r, l.handle) })
		if !l.polled(ctx, fs, &backoff) {
			return
		}
	}
}

// readingQuiet is how long a ledger partition whose fetches failed must go
// without a fetch error to be taken as readable again, if no record of it
// comes (a quiet topic): franz-go retries a failing fetch well within it.
const readingQuiet = 5 * time.Second

// poll polls the ledger: while a partition cannot be read, for at most a
// second, so that one that can again is seen to (readingQuiet) though no
// record comes.
func (l *ledger) poll(ctx context.Context) kgo.Fetches {
	if l.reading.troubled() {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return l.cl.PollFetches(c)
	}
	return l.cl.PollFetches(ctx)
}

// polled takes a poll's outcome (reading); when it brought errors and no
// record, it waits out the next back-off; else it resets it. It returns
// false if ctx ended.
func (l *ledger) polled(ctx context.Context, fs kgo.Fetches, backoff *errorBackoff) bool {
	if errs, read := l.reading.took(fs, time.Now(), l.log, l.cfg.Topic); errs == 0 || read {
		backoff.reset()
		return true
	}
	return backoff.wait(ctx)
}

// errorBackoff spaces the polls that bring errors and no record, which
// come back at once: 10 ms, doubled up to a second, until a poll that does
// not resets it. (A ledger or replay whose topic was deleted spun a core
// and flooded the log.)
type errorBackoff struct{ d time.Duration }

func (b *errorBackoff) reset() { b.d = 0 }

// wait waits out the next back-off; false if ctx ended first.
func (b *errorBackoff) wait(ctx context.Context) bool {
	b.d = min(max(2*b.d, 10*time.Millisecond), time.Second)
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ledgerReading is what the ledger's polls say of its partitions: those
// whose fetches fail, and since when, for Unreadable and the log, which
// says so when the first fails, once a minute while any does
// (unreadableEvery), and when none does any more.
type ledgerReading struct {
	quiet       time.Duration // readingQuiet, unless set (tests)
	mu          sync.Mutex
	failing     map[int32]failedFetch
	failedPolls int64     // polls with a fetch error since the first failed
	warned      time.Time // when it was last logged
}

// failedFetch is a partition's last fetch error, and when it came.
type failedFetch struct {
	err error
	at  time.Time
}

// unreadableEvery is how often a ledger that cannot be read says so again.
const unreadableEvery = time.Minute

func (r *ledgerReading) troubled() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.failing) > 0
}

// took takes a poll at now: a partition with a fetch error fails (a poll
// cut short by its context says nothing); one with records, or without an
// error for readingQuiet, reads again. It returns the poll's errors and
// whether it brought a record.
func (r *ledgerReading) took(fs kgo.Fetches, now time.Time, log *slog.Logger, topic string) (errs int, read bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	before := len(r.failing)
	var first error
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		switch {
		case p.Err != nil && (errors.Is(p.Err, context.Canceled) || errors.Is(p.Err, context.DeadlineExceeded)):
		case p.Err != nil:
			if r.failing == nil {
				r.failing = make(map[int32]failedFetch)
			}
			r.failing[p.Partition] = failedFetch{p.Err, now}
			errs++
			first = cmp.Or(first, p.Err)
		case len(p.Records) > 0:
			read = true
			delete(r.failing, p.Partition)
		}
	})
	quiet := cmp.Or(r.quiet, readingQuiet)
	for p, f := range r.failing {
		if now.Sub(f.at) >= quiet {
			delete(r.failing, p)
		}
	}
	if errs > 0 {
		r.failedPolls++
	}
	switch {
	case before == 0 && len(r.failing) > 0:
		r.failedPolls, r.warned = 1, now
		log.Warn("ledger: cannot read the topic; the client retries (said again once a minute while it lasts): "+
			"other instances' answers are not learned, and this instance's paid answers may not be recorded",
			"topic", topic, "partitions", r.partitions(), "err", first)
	case before > 0 && len(r.failing) == 0:
		log.Info("ledger: the topic reads again", "topic", topic, "failed_polls", r.failedPolls)
	case len(r.failing) > 0 && now.Sub(r.warned) >= unreadableEvery:
		r.warned = now
		log.Warn("ledger: still cannot read the topic; the client retries", "topic", topic,
			"partitions", r.partitions(), "failed_polls", r.failedPolls, "err", r.anyErr())
	}
	return errs, read
}

// partitions are the failing partitions, in order.
func (r *ledgerReading) partitions() []int32 {
	return slices.Sorted(maps.Keys(r.failing))
}

// anyErr is the error of the lowest failing partition, or nil.
func (r *ledgerReading) anyErr() error {
	if ps := r.partitions(); len(ps) > 0 {
		return r.failing[ps[0]].err
	}
	return nil
}

// writeBegins counts a write in flight from now; the first of a run of
// them starts the clock of Unwritable.
func (l *ledger) writeBegins(now time.Time) {
	if l.writing.Add(1) == 1 {
		l.lastAnswer.Store(now.UnixNano())
	}
}

// unwritableAfter is how long the ledger's writes may go unanswered, while
// some are in flight, before Unwritable says so: the outputs of paid
// answers wait for them (up to LedgerConfig.WriteTimeout, 30 s by default).
const unwritableAfter = 10 * time.Second

// Unwritable returns, at now, why the ledger cannot be written, or nil: the
// brokers have answered none of its writes in flight for unwritableAfter
// (not enough in-sync replicas for acks=all, a full disk, the topic
// deleted), and the outputs of paid answers wait for them.
func (l *ledger) Unwritable(now time.Time) error {
	if n := l.rewrites.count(); n > 0 {
		return fmt.Errorf("ledger %s: %d call records of paid calls are not written yet (written again until the brokers take them)", l.cfg.Topic, n)
	}
	n := l.writing.Load()
	if n <= 0 {
		return nil
	}
	if quiet := now.Sub(time.Unix(0, l.lastAnswer.Load())); quiet >= unwritableAfter {
		return fmt.Errorf("ledger %s: %d writes in flight, none answered for %v", l.cfg.Topic, n, quiet.Round(time.Second))
	}
	return nil
}

// Unreadable returns why partitions of the ledger cannot be read now, or
// nil when all can.
func (l *ledger) Unreadable() error {
	r := &l.reading
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.anyErr(); err != nil {
		return fmt.Errorf("ledger %s: partitions %v cannot be read: %w", l.cfg.Topic, r.partitions(), err)
	}
	return nil
}

// fetchRefused returns a fetch error of fs that retrying cannot end: the
// cluster refuses this user the topic (its ACLs), which franz-go retries
// for ever. A reader that stops at the ledger's end (the load at start,
// the export) would wait for ever, saying nothing.
func fetchRefused(topic string, fs kgo.Fetches) error {
	var refused error
	fs.EachError(func(_ string, _ int32, err error) {
		if refused == nil && (errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed)) {
			refused = fmt.Errorf("ledger: reading %q: %w (the user needs READ on the topic)", topic, err)
		}
	})
	return refused
}

// ledgerInstanceHeader names the instance that wrote a record: it lets the
// instance skip its own records when following the topic, without decoding
// them (its cache has its knowledge; its calls were counted when paid).
// Each run of twosell is an instance of its own.
const ledgerInstanceHeader = "twosell-instance"

// ledgerSecretHeader carries, on every record, the id of the cache secret
// its mobile key was made with (secretID). Knowledge written under another
// secret is about keys no lookup here can have: it is skipped, counted and
// warned of, since it means that what the ledger knows will be paid for
// again (a changed juhe.key, from which the secret is derived unless
// cache.secret is set, or instances configured apart). Records written
// before the header existed are read as this instance's secret's.
const ledgerSecretHeader = "twosell-secret-id"

// secretIDLabel is what a secret's id is the hash of, under the secret.
const secretIDLabel = "twosell ledger secret id v1"

// secretID identifies the secret of h without revealing it: the first 8
// bytes of the label's key (HMAC-SHA256 under the secret, as a mobile's),
// in hex.
func secretID(h *mobileHasher) []byte {
	k := h.key(secretIDLabel)
	return hex.AppendEncode(nil, k[:8])
}

// handle decodes one record and applies it; it counts the record read once
// handled, warnings logged included.
func (l *ledger) handle(r *kgo.Record) {
	defer l.read.Add(1)
	if r.Value == nil {
		return // a tombstone: nothing to learn
	}
	var writer, secret []byte
	for _, h := range r.Headers {
		switch h.Key {
		case ledgerInstanceHeader:
			writer = h.Value
		case ledgerSecretHeader:
			secret = h.Value
		}
	}
	if string(writer) == l.instance {
		return // this instance's own record
	}
	rec, ok := l.decode(r.Key, r.Value)
	if !ok {
		if l.bad.Add(1) == 1 {
			l.log.Warn("ignoring ledger records twosell cannot read, another tool's or another twosell version's (logged once; "+
				"counted as unreadable in the \"ledger loaded\" line)", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
		}
		return
	}
	// Calls are counted whatever their secret: the budget is the account's.
	// Their facts, as knowledge, are about keys of another secret.
	foreign := secret != nil && l.secretID != nil && !bytes.Equal(secret, l.secretID)
	if foreign {
		rec.hasFact = false
	}
	if foreign && rec.knowledge != nil {
		if !l.following.Load() {
			l.foreignLoaded.Add(1)
			return
		}
		l.foreignFollowed.Add(1)
		if l.warnedForeign.CompareAndSwap(false, true) {
			l.log.Warn("another instance writes to the ledger under a different cache.secret: neither can reuse what the other pays for, "+
				"so numbers are paid for twice; give every instance the same cache.secret (or, when it is not set, the same juhe.key) (logged once)",
				"topic", r.Topic, "instance", string(writer))
		}
		return
	}
	l.apply(rec)
}

func (l *ledger) decode(key, value []byte) (ledgerRecord, bool) {
	k := string(key)
	switch {
	case strings.HasPrefix(k, ledgerCallPrefix):
		ck, ok := parseCallKey(k)
		rec := ledgerRecord{call: &ck, own: ck.Instance == l.instance}
		if ok && !rec.own {
			rec.key, rec.fact, rec.hasFact = callFact(value)
		}
		return rec, ok
	case strings.HasPrefix(k, ledgerKnowledgePrefix):
		mk, ok := parseMobileKey(k[len(ledgerKnowledgePrefix):])
		if !ok {
			return ledgerRecord{}, false
		}
		var lk ledgerKnowledge
		if err := decodeLedgerKnowledge(value, &lk); err != nil || lk.V != ledgerVersion {
			return ledgerRecord{}, false
		}
		return ledgerRecord{key: mk, knowledge: &lk, own: lk.Instance == l.instance}, true
	}
	return ledgerRecord{}, false
}

// callFact reads what a call record's value says its answer proved, about
// which mobile; false if it cannot be read.
func callFact(value []byte) (MobileKey, Fact, bool) {
	var c LedgerCall
	if decodeLedgerCall(value, &c) != nil || !isDay(c.Date) {
		return MobileKey{}, Fact{}, false
	}
	key, ok := parseMobileKey(c.Key)
	if !ok {
		return MobileKey{}, Fact{}, false
	}
	f, ok := FactOf(Result{Status: c.Status, OrderID: c.OrderID, Mode: c.Mode}, c.Date, c.At)
	return key, f, ok
}

// write records a paid call and what is now known about its mobile. It
// returns at once; the write is durable when both records are
// acknowledged. An output is never written before the ledger holds the call
// it paid for (see durable), so a crash loses no call from the audit trail
// or the budget.
func (l *ledger) write(call LedgerCall, k Knowledge) *durable { return l.writeRecords(call, &k) }

// writeCall writes a call record alone: a request whose outcome is unknown,
// which taught nothing.
func (l *ledger) writeCall(call LedgerCall) *durable { return l.writeRecords(call, nil) }

// writeRecords writes call's record, and, with k, the knowledge record of
// its mobile.
func (l *ledger) writeRecords(call LedgerCall, k *Knowledge) *durable {
	call.Instance = l.instance
	id := call.OrderID
	if id == "" || strings.Contains(id, "/") {
		id = "n" + strconv.FormatInt(l.seq.Add(1), 10)
	}
	// One allocation holds both records' keys and values, encoded first in a
	// pooled scratch buffer: sized guesses per part wasted half of the
	// 1.4 KB allocated per paid call, the largest allocation of the bench.
	scratch := ledgerScratch.Get().(*[]byte)
	b := append((*scratch)[:0], ledgerCallPrefix...)
	b = append(append(append(append(b, call.Day...), '/'), l.instance...), '/')
	b = append(b, id...)
	callKey := len(b)
	b = call.appendJSON(b)
	callValue := len(b)
	knowKey := len(b)
	if k != nil {
		b = append(append(b, ledgerKnowledgePrefix...), call.Key...)
		knowKey = len(b)
		b = appendLedgerKnowledge(b, l.instance, *k)
	}
	all := bytes.Clone(b)
	*scratch = b
	ledgerScratch.Put(scratch)

	// The records, their headers and the durable: one allocation.
	n := 1
	if k != nil {
		n = 2
	}
	l.writeBegins(time.Now())
	w := &ledgerWrite{durable: durable{pending: n}, l: l, call: LedgerCall{Day: call.Day, Status: call.Status, OrderID: call.OrderID}}
	for i := 0; i < len(w.headers); i += 2 {
		w.headers[i] = kgo.RecordHeader{Key: ledgerInstanceHeader, Value: l.instanceBytes}
		w.headers[i+1] = kgo.RecordHeader{Key: ledgerSecretHeader, Value: l.secretID}
	}
	w.recs[0] = kgo.Record{
		Topic: l.cfg.Topic, Key: all[:callKey:callKey], Value: all[callKey:callValue:callValue],
		Headers: w.headers[0:2:2],
	}
	w.recs[1] = kgo.Record{
		Topic: l.cfg.Topic, Key: all[callValue:knowKey:knowKey], Value: all[knowKey:],
		Headers: w.headers[2:4:4],
	}
	promise := w.promise
	for i := range n {
		// TryProduce: with the brokers not answering and the client's
		// buffer full, a write fails at once (ErrMaxBuffered) rather than
		// block the task, and the call record is written again later
		// (rewrite). Blocked, the tasks held a stop for ever: Run waits for
		// them, and only the ledger's Close, after Run, would free them
		// (found by review).
		l.cl.TryProduce(context.Background(), &w.recs[i], promise)
	}
	return &w.durable
}

// ledgerWrite is what one paid call produces to the ledger.
type ledgerWrite struct {
	durable
	l    *ledger
	call LedgerCall // its day, status and order id, for failed
	// Which writes failed: the call record's (it is written again), the
	// knowledge record's (it is not).
	callFailed, knowledgeFailed bool
	recs                        [2]kgo.Record
	headers                     [4]kgo.RecordHeader // the instance and the secret id, per record
}

// promise takes each record's acknowledgement. A failed write is reported
// to the ledger's failed before anyone waiting on it hears of it.
func (w *ledgerWrite) promise(r *kgo.Record, err error) {
	w.l.lastAnswer.Store(time.Now().UnixNano())
	switch {
	case err == nil:
	case r == &w.recs[0]: // promises are called one at a time, in order
		w.callFailed = true
		w.l.rewrite(r, w.call)
	default:
		w.knowledgeFailed = true
	}
	then, err, done := w.settle(err)
	if !done {
		return
	}
	w.l.writing.Add(-1)
	if err != nil && w.l.failed != nil {
		w.l.failed(w.call, err, w.callFailed, w.knowledgeFailed)
	}
	for _, f := range then {
		f(err)
	}
}

// ledgerScratch holds the buffers ledger records are encoded in.
var ledgerScratch = sync.Pool{New: func() any { return new([]byte) }}

// durable is a paid answer's ledger write, done once its records are
// acknowledged (or refused: err). The processor hands the answer's output
// to the producer from then callbacks, so that the in-flight slot of the
// lookup is not held while the ledger's records travel.
type durable struct {
	mu      sync.Mutex
	pending int
	err     error
	then    []func(error)
	then1   [1]func(error) // then's first element
	done    chan struct{}  // made by wait, when it has to wait
}

// settle counts one record's outcome; the last one returns done, with the
// write's error and the callbacks to call with it.
func (d *durable) settle(err error) (then []func(error), _ error, done bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.err = errors.Join(d.err, err)
	d.pending--
	if d.pending > 0 {
		return nil, nil, false
	}
	then, d.then = d.then, nil
	if d.done != nil {
		close(d.done)
	}
	return then, d.err, true
}

// resolve settles a durable of one pending outcome with err, and calls its
// callbacks (a durable that stands for another: pay's, for the cache).
func (d *durable) resolve(err error) {
	then, err, done := d.settle(err)
	if done {
		for _, f := range then {
			f(err)
		}
	}
}

// isDone reports whether the write is done.
func (d *durable) isDone() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pending == 0
}

// whenDone calls f with the write's error once it is done: at once if it is
// already.
func (d *durable) whenDone(f func(error)) {
	d.mu.Lock()
	if d.pending > 0 {
		if d.then == nil {
			d.then = d.then1[:0] // the usual one callback, without an allocation of its own
		}
		d.then = append(d.then, f)
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	f(d.err)
}

// joinDurable returns a durable done once d and each of more (those not
// nil) are, with their errors joined; the one itself, if only one is not
// nil (a lookup's usual case: nothing allocated).
func joinDurable(d *durable, more ...*durable) *durable {
	n, one := 0, d
	if d != nil {
		n++
	}
	for _, m := range more {
		if m != nil {
			n, one = n+1, m
		}
	}
	if n <= 1 {
		return one
	}
	j := &durable{pending: n}
	part := func(err error) {
		if then, err, done := j.settle(err); done {
			for _, f := range then {
				f(err)
			}
		}
	}
	if d != nil {
		d.whenDone(part)
	}
	for _, m := range more {
		if m != nil {
			m.whenDone(part)
		}
	}
	return j
}

// wait waits until the write is done or ctx ends.
func (d *durable) wait(ctx context.Context) error {
	d.mu.Lock()
	if d.pending == 0 {
		d.mu.Unlock()
		return d.err
	}
	if d.done == nil {
		d.done = make(chan struct{})
	}
	done := d.done
	d.mu.Unlock()
	select {
	case <-done:
		return d.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// appendJSON appends call as a JSON object, as encoding/json would write it
// (minus HTML escaping): the ledger writes one per paid call.
func (c *LedgerCall) appendJSON(b []byte) []byte {
	b = append(b, `{"key":`...)
	b = appendJSONString(b, c.Key)
	b = append(b, `,"day":`...)
	b = appendJSONString(b, c.Day)
	b = append(b, `,"at":`...)
	b = appendJSONTime(b, c.At)
	b = append(b, `,"date":`...)
	b = appendJSONString(b, c.Date)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, string(c.Status))
	if c.Res != 0 {
		b = append(b, `,"res":`...)
		b = strconv.AppendInt(b, int64(c.Res), 10)
	}
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(c.Code), 10)
	if c.OrderID != "" {
		b = append(b, `,"order_id":`...)
		b = appendJSONString(b, c.OrderID)
	}
	b = append(b, `,"mode":`...)
	b = appendJSONString(b, c.Mode)
	b = append(b, `,"instance":`...)
	b = appendJSONString(b, c.Instance)
	return append(b, '}')
}

// appendLedgerKnowledge appends the value of a knowledge record: a
// ledgerKnowledge as encoding/json would write it (minus HTML escaping).
func appendLedgerKnowledge(b []byte, instance string, k Knowledge) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, ledgerVersion, 10)
	b = append(b, `,"instance":`...)
	b = appendJSONString(b, instance)
	b = appendLedgerFact(b, `,"after":`, k.Lower)
	b = appendLedgerFact(b, `,"not_after":`, k.Upper)
	if k.Tighter[0].Kind != 0 {
		b = append(b, `,"older_not_after":[`...)
		for i, f := range k.Tighter {
			if f.Kind == 0 {
				break
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = appendLedgerFact(b, "", f)
		}
		b = append(b, ']')
	}
	b = appendLedgerFact(b, `,"short":`, k.Short)
	b = append(b, `,"bounds_at":`...)
	b = appendJSONTime(b, k.BoundsAt.UTC())
	if !k.StaleBefore.IsZero() {
		b = append(b, `,"stale_before":`...)
		b = appendJSONTime(b, k.StaleBefore.UTC())
	}
	return append(b, '}')
}

// appendLedgerFact appends name and f as a ledgerFact, or nothing for no
// fact (omitempty).
func appendLedgerFact(b []byte, name string, f Fact) []byte {
	if f.Kind == 0 {
		return b
	}
	b = append(b, name...)
	b = append(b, `{"kind":`...)
	b = appendJSONString(b, f.Kind.String())
	b = append(b, `,"date":`...)
	b = appendJSONString(b, f.Date)
	if f.OrderID != "" {
		b = append(b, `,"order_id":`...)
		b = appendJSONString(b, f.OrderID)
	}
	if f.Mode != "" {
		b = append(b, `,"mode":`...)
		b = appendJSONString(b, f.Mode)
	}
	b = append(b, `,"at":`...)
	b = appendJSONTime(b, f.At.UTC())
	return append(b, '}')
}

// appendJSONTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, quoted).
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// close stops following and waits, up to ctx, for the records being
// written.
func (l *ledger) close(ctx context.Context) {
	if l.cl == nil {
		return
	}
	l.rewriteNow() // the call records waiting to be written again: a last try
	if err := l.cl.Flush(ctx); err != nil {
		l.log.Warn("ledger: not every record was acknowledged before closing", "err", err)
	}
	l.cancel()
	l.done.Wait()
	l.cl.Close()
	l.rewritesLost()
}

// keyOrderID is the order id a call record's key names: none when the
// call had none (or one with a '/'), and the key holds a sequence number,
// "n" and digits, instead (see write).
func keyOrderID(id string) string {
	if n, ok := strings.CutPrefix(id, "n"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		return ""
	}
	return id
}

// ReadLedgerCalls reads the ledger topic from its start to its end at the
// time of the call and calls fn with every paid call recorded in it, in the
// order of each partition. It stops at fn's first error.
func ReadLedgerCalls(ctx context.Context, clientOpts []kgo.Opt, topic string, fn func(LedgerCall) error) error {
	l := newLedger(LedgerConfig{ClientOpts: clientOpts, Topic: topic}, slog.New(slog.DiscardHandler), nil)
	var ferr error
	opts := append([]kgo.Opt{}, clientOpts...)
	opts = append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), keepMarkers())
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("ledger: kafka client: %w", err)
	}
	defer cl.Close()
	l.cl = cl
	last, err := l.prepare(ctx, kadm.NewClient(cl))
	if err != nil {
		return err
	}
	var txns txnFilter
	// A call record's key is unique; one written twice (another writer on
	// the topic, a mirror, a restore), until compaction removes it, is one
	// call. The keys seen are kept as 64-bit hashes, a fraction of the keys'
	// size (the chance that two of ten million calls collide, and one is
	// left out, is about 3 in a million).
	seen := make(map[uint64]struct{})
	seed := maphash.MakeSeed()
	for len(last) > 0 && ferr == nil {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fetchRefused(topic, fs); err != nil {
			return err
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := last[r.Partition]; ok && r.Offset >= end {
				delete(last, r.Partition)
			}
			txns.filter(r, func(r *kgo.Record) {
				if ferr != nil || r.Value == nil || !strings.HasPrefix(string(r.Key), ledgerCallPrefix) {
					return
				}
				h := maphash.Bytes(seed, r.Key)
				if _, dup := seen[h]; dup {
					return
				}
				seen[h] = struct{}{}
				ferr = exportCall(r, fn)
			})
		})
	}
	return ferr
}

// exportCall calls fn with r, a call record, and returns fn's error.
//
// The day and the instance are the key's, as the budget counts them (and
// the order id, if the value has none): a value that decodes but is not
// this version's call (a later version's layout, another writer's) left
// the row without a day, and an export of that day without the call.
func exportCall(r *kgo.Record, fn func(LedgerCall) error) error {
	ck, keyed := parseCallKey(string(r.Key))
	var c LedgerCall
	err := decodeLedgerCall(r.Value, &c)
	if err == nil && (!isDay(c.Day) || !slices.Contains(callStatuses, string(c.Status))) {
		err = errors.New("the value holds no call's day and status (written by another version or by hand?)")
	}
	if err != nil {
		c = LedgerCall{Day: ck.Day, Instance: ck.Instance, OrderID: keyOrderID(ck.ID),
			Unreadable: fmt.Sprintf("partition %d, offset %d: %v", r.Partition, r.Offset, err)}
		return fn(c)
	}
	if keyed {
		c.Day, c.Instance = ck.Day, ck.Instance
		if c.OrderID == "" {
			c.OrderID = keyOrderID(ck.ID)
		}
	}
	return fn(c)
}

// A call record whose write failed (the brokers refused it, or did not
// answer within LedgerConfig.WriteTimeout) is written again, after a back-off,
// until the brokers take it: the provider billed the call, the export
// reconciles the bill by its record, and the day's budget counts it from
// the ledger at every start and in every instance. Its key is unique, so a
// record written twice is one call. (Found by review: a call whose write
// failed for longer than the timeout was never written, and a restart let
// a budget of N make N+1 calls.) The knowledge record is not written again:
// compaction keeps a key's latest record, and an old one written late could
// hide a newer one. Nor need it be: the call record carries the answer's
// fact, which loading and following read as well, so the other instances
// and the next start learn it once the call record is written
// (TestFactOfAFailedKnowledgeRecordIsLearnedFromItsCallRecord).
type ledgerRewrites struct {
	mu      sync.Mutex
	pending map[string]*ledgerRewrite // by the call record's key
	closing bool                      // close has begun: no more back-offs
	n       atomic.Int64              // len(pending), for Unwritable
	sending atomic.Int64              // rewrites produced and not answered yet
}

// ledgerRewrite is a call record waiting to be written again.
type ledgerRewrite struct {
	rec      kgo.Record // its topic, key, value and headers
	call     LedgerCall // for the log
	attempts int
	timer    *time.Timer // the back-off before the next attempt; nil while one is in flight
}

// maxLedgerRewrites bounds the call records kept to be written again (a
// few hundred bytes each): past it, a failed write is given up, and logged
// with its order id.
const maxLedgerRewrites = 100_000

// rewriteBackoff is the wait before the n-th attempt to write a call record
// again: 1 s, doubled up to a minute. franz-go has retried each attempt for
// the write timeout already; the back-off keeps a refusal that comes at
// once (an ACL) from spinning.
func rewriteBackoff(n int) time.Duration {
	return min(time.Second<<min(n-1, 6), time.Minute) // 1, 2, 4 ... 32 s, then a minute
}

func (rs *ledgerRewrites) count() int64 { return rs.n.Load() }

// rewrite schedules r, the call record of call, to be written again.
func (l *ledger) rewrite(r *kgo.Record, call LedgerCall) {
	rs := &l.rewrites
	key := string(r.Key)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	w := rs.pending[key]
	if w == nil {
		if len(rs.pending) >= maxLedgerRewrites {
			l.log.Error("ledger: a call record could not be written, and too many wait to be written again: it is given up; "+
				"reconcile this call from the provider's bill; the next start's budget counts it short",
				"topic", l.cfg.Topic, "day", call.Day, "order_id", call.OrderID, "waiting", len(rs.pending))
			return
		}
		if rs.pending == nil {
			rs.pending = map[string]*ledgerRewrite{}
		}
		w = &ledgerRewrite{rec: kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers}, call: call}
		rs.pending[key] = w
		rs.n.Store(int64(len(rs.pending)))
	}
	if rs.closing || w.timer != nil {
		return // rewritesLost reports it; or a try is due already
	}
	w.attempts++
	w.timer = time.AfterFunc(rewriteBackoff(w.attempts), func() { l.produceRewrite(key) })
}

// produceRewrite writes the call record of key again, when its back-off
// ends (also once close has begun: its timer could not be stopped, and
// this is its last try). TryProduce: a full buffer fails the try, which
// backs off again, rather than block a timer or close.
func (l *ledger) produceRewrite(key string) {
	rs := &l.rewrites
	rs.mu.Lock()
	w := rs.pending[key]
	if w == nil {
		rs.mu.Unlock()
		return
	}
	w.timer = nil
	rec := w.rec // a record of its own: franz-go sets its partition and offset
	rs.sending.Add(1)
	rs.mu.Unlock()
	l.cl.TryProduce(context.Background(), &rec, l.rewritten)
}

// rewritten takes the outcome of a call record written again.
func (l *ledger) rewritten(r *kgo.Record, err error) {
	defer l.rewrites.sending.Add(-1)
	if err != nil {
		l.rewrite(r, LedgerCall{}) // pending holds it: its call is kept
		return
	}
	rs := &l.rewrites
	rs.mu.Lock()
	w := rs.pending[string(r.Key)]
	delete(rs.pending, string(r.Key))
	rs.n.Store(int64(len(rs.pending)))
	rs.mu.Unlock()
	if w != nil {
		l.log.Info("ledger: a call record that could not be written is written now", "topic", l.cfg.Topic,
			"day", w.call.Day, "order_id", w.call.OrderID, "attempts", w.attempts+1)
	}
}

// rewriteNow, as close begins, writes at once the call records waiting for
// their back-off; close's flush waits for them.
func (l *ledger) rewriteNow() {
	rs := &l.rewrites
	rs.mu.Lock()
	rs.closing = true
	var now []kgo.Record
	for _, w := range rs.pending {
		if w.timer != nil && w.timer.Stop() {
			w.timer = nil
			now = append(now, w.rec)
		}
	}
	rs.sending.Add(int64(len(now)))
	rs.mu.Unlock()
	for i := range now {
		l.cl.TryProduce(context.Background(), &now[i], l.rewritten)
	}
}

// rewritesLost, once the client is closed, reports the call records that
// were never written: their order ids, to reconcile the bill with.
func (l *ledger) rewritesLost() {
	rs := &l.rewrites
	// The closed client fails the records it still held, and franz-go
	// calls their promises on a goroutine of its own: wait for them, a
	// moment at most.
	for i := 0; i < 500 && (l.writing.Load() > 0 || rs.sending.Load() > 0); i++ {
		time.Sleep(2 * time.Millisecond)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if len(rs.pending) == 0 {
		return
	}
	ids := make([]string, 0, len(rs.pending))
	for _, w := range rs.pending {
		id := w.call.OrderID
		switch {
		case id != "":
		case w.call.Status == StatusUnavailable:
			id = "(no order id: a request of " + w.call.Day + " whose outcome is unknown)"
		default:
			id = "(no order id: a " + string(w.call.Status) + " answer of " + w.call.Day + ")"
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	l.lost.Store(int64(len(ids)))
	l.log.Error("ledger: call records of paid calls could not be written before closing: reconcile these calls from the provider's bill; "+
		"the next start's budget counts them short", "topic", l.cfg.Topic, "calls", len(ids), "order_ids", ids)
}
