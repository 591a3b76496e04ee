package main

// Found by a review of replay and ledger export: each test failed before its
// fix, for the reason its comment gives.

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/juhe/juhesim"
)

// withoutJSON is args without --json: the text a user reads.
func withoutJSON(args []string) []string {
	return slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "--json" })
}

// README (Replay): the dry run "prints the records read"; the replay's own
// summary counts a range's offsets that held no record (transaction markers,
// records of aborted transactions or removed by compaction) apart from its
// records ("20 of 20 records done", and a "no record" line). The dry run's
// headline divides the records read by the range's offsets instead: a
// complete read of a transactional (or compacted) range says "20 of 33
// records read", as if 13 records had been left unread.
func TestDryRunCountsRecordsNotOffsets(t *testing.T) {
	k, _, cfg, _, _ := replayFixture(t)
	writeTransactions(t, k, cfg) // 20 records to replay in 33 offsets

	var stdout, stderr syncBuffer
	if code := Main(t.Context(), withoutJSON(replayArgs(cfg, k.Name("replay"), "--partitions", "0", "--dry-run")), &stdout, &stderr); code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, stderr.String())
	}
	headline, _, _ := strings.Cut(stdout.String(), "\n")
	var replayed syncBuffer
	Main(t.Context(), withoutJSON(replayArgs(cfg, k.Name("replay"), "--partitions", "0")), &replayed, &stderr)
	summary, _, _ := strings.Cut(replayed.String(), "\n")
	t.Logf("dry run: %s\nreplay:  %s", headline, summary)
	if !strings.Contains(headline, ": 20 of 20 records read") {
		t.Errorf("the dry run read every record of the range, and says %q; the replay of the same range says %q", headline, summary)
	}
}

// README (Replay): the summary gives "the cost estimate at --price
// (juhe.price_per_call; to the fen, or to the price's own decimals)", and
// --json prints the summary as one object. The text does (cny), but the
// JSON's cost_cny (and the dry run's min_cost_cny and max_cost_cny) is the
// raw float64 product: 3 calls at 0.10 CNY are "cost_cny":0.30000000000000004,
// which a script that reconciles or sums costs reads as it is.
func TestJSONCostIsToTheFen(t *testing.T) {
	k, _, cfg, _, _ := replayFixture(t)
	for i, m := range juhesim.Population(3) { // 3 numbers, once each: 3 paid calls
		k.Produce(&kgo.Record{Topic: cfg.Kafka.InputTopic, Key: []byte(m),
			Value: fmt.Appendf(nil, `{"event_id":"e-%d","mobile":%q,"registered_at":"2020-01-01"}`, i, m)})
	}
	var dry, dryErr syncBuffer
	if code := Main(t.Context(), replayArgs(cfg, k.Name("replay"), "--dry-run", "--price", "0.1"), &dry, &dryErr); code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, dryErr.String())
	}
	var stdout, stderr syncBuffer
	if code := Main(t.Context(), replayArgs(cfg, k.Name("replay"), "--price", "0.1"), &stdout, &stderr); code != 0 {
		t.Fatalf("replay: exit %d\n%s", code, stderr.String())
	}
	var s replaySummary
	if err := json.Unmarshal([]byte(stdout.String()), &s); err != nil || s.PaidCalls != 3 {
		t.Fatalf("summary %s (%v): want 3 paid calls", stdout.String(), err)
	}
	if !strings.Contains(stdout.String(), `"cost_cny":0.3,`) {
		t.Errorf("3 paid calls at 0.10 CNY, to the fen, are 0.30 CNY; the JSON summary says\n%s", stdout.String())
	}
	if !strings.Contains(dry.String(), `"min_cost_cny":0.3,`) {
		t.Errorf("the dry run's JSON estimate of 3 calls at 0.10 CNY:\n%s", dry.String())
	}
}

// README (Ledger): "Call records have unique keys, so compaction never
// removes them: they are the audit trail, and what the daily budget
// counts"; "twosell ledger export" lists the paid calls to reconcile the
// provider's bill by order id. A call record written twice (a retried write
// without idempotence, an at-least-once mirror of the ledger such as
// MirrorMaker, a restore) is one call under one key, yet until the cleaner
// runs the export lists it twice, with the same order id, and the daily
// budget counts it twice; after compaction the same ledger exports it once.
// What the export and the budget say then depends on when the cleaner ran.
func TestRepeatedCallRecordIsOneCall(t *testing.T) {
	k, sim, cfg, _, recs := replayFixture(t)
	if k.Fake == nil {
		t.Skip("needs kfake's Compact")
	}
	k.Produce(recs[:40]...) // 40 numbers once each: 40 paid calls
	if s, _ := runReplayCmd(t, replayArgs(cfg, k.Name("replay"))); s.PaidCalls != 40 {
		t.Fatalf("replay paid %d calls, want 40", s.PaidCalls)
	}
	// One call record of the ledger, written again as it was.
	var call *kgo.Record
	for _, r := range k.ConsumeAll(t.Context(), cfg.Ledger.Topic) {
		if strings.HasPrefix(string(r.Key), "c/") && strings.Contains(string(r.Value), `"order_id"`) && call == nil {
			call = r
		}
	}
	if call == nil {
		t.Fatal("no call record in the ledger")
	}
	manual := k.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, r := range []*kgo.Record{
		{Topic: cfg.Ledger.Topic, Partition: call.Partition, Key: call.Key, Value: call.Value, Headers: call.Headers},
		// A later record of the partition, so that the repeated one is not
		// in the active (never cleaned) batch when the cleaner runs below.
		{Topic: cfg.Ledger.Topic, Partition: call.Partition, Key: []byte("x/not-a-call"), Value: []byte("{}")},
	} {
		if err := manual.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	export := func() map[string]int {
		t.Helper()
		var stdout, stderr syncBuffer
		if code := Main(t.Context(), []string{"ledger", "export", "--brokers", strings.Join(cfg.Kafka.Brokers, ","),
			"--ledger-topic", cfg.Ledger.Topic}, &stdout, &stderr); code != 0 {
			t.Fatalf("export: exit %d\n%s", code, stderr.String())
		}
		rows, err := csv.NewReader(strings.NewReader(stdout.String())).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		byOrder := map[string]int{}
		for _, row := range rows[1:] {
			byOrder[row[2]]++
		}
		return byOrder
	}
	budgetLeft := func() int64 {
		t.Helper()
		var stdout, stderr syncBuffer
		if code := Main(t.Context(), replayArgs(cfg, k.Name("replay"), "--dry-run", "--daily-budget", "1000"), &stdout, &stderr); code != 0 {
			t.Fatalf("dry run: exit %d\n%s", code, stderr.String())
		}
		var e replayEstimate
		if err := json.Unmarshal([]byte(stdout.String()), &e); err != nil || e.BudgetRemaining == nil {
			t.Fatalf("estimate %s: %v", stdout.String(), err)
		}
		return *e.BudgetRemaining
	}

	before, left := export(), budgetLeft()
	k.Fake.Compact()
	after := export()
	calls := sim.Stats().Requests
	for id, n := range before {
		if id != "" && n != 1 { // calls without an order id are keyed by a sequence number
			t.Errorf("order %s: %d rows in the export (after compaction: %d); the provider answered %d calls in all", id, n, after[id], calls)
		}
	}
	if want := 1000 - calls; left != want {
		t.Errorf("budget left %d after %d paid calls, want %d: the repeated call record is counted twice", left, calls, want)
	}
}

// "twosell ledger export --from-day D1 --to-day D2" with D2 before D1 (a
// typo: 20240630 and 20240601 swapped) exports nothing, exits 0 and, with
// --output, replaces the file there (say, last month's reconciliation) with
// a header-only CSV: "wrote 0 paid calls". "twosell replay" refuses the
// same mistake ("--to must be after --from"); the export's own comment says
// a failed export leaves the file as it was.
func TestExportRefusesAnInvertedDayRange(t *testing.T) {
	k, _, cfg, _, recs := replayFixture(t)
	k.Produce(recs[:40]...)
	runReplayCmd(t, replayArgs(cfg, k.Name("replay")))
	path := t.TempDir() + "/june.csv"
	const previous = "last month's reconciliation\n"
	if err := os.WriteFile(path, []byte(previous), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	code := Main(t.Context(), []string{"ledger", "export", "--brokers", strings.Join(cfg.Kafka.Brokers, ","),
		"--ledger-topic", cfg.Ledger.Topic, "--from-day", "20240630", "--to-day", "20240601", "--output", path}, &stdout, &stderr)
	got, _ := os.ReadFile(path)
	if code != 2 || string(got) != previous {
		t.Errorf("--from-day 20240630 --to-day 20240601: exit %d, stderr %q, file now %q; want a usage error (exit 2) and the file untouched",
			code, stderr.String(), got)
	}
}

// README (Ledger): call records "grow the topic by about 250 bytes per paid
// call". A call record twosell writes is about 400 bytes before Kafka's own
// framing: a 54-byte key, a 270-280-byte value (the 64-hex-digit key, the
// instance twice, the time with nanoseconds and zone) and 68 bytes of
// headers (twosell-instance, twosell-secret-id).
func TestCallRecordSize(t *testing.T) {
	k, _, cfg, _, recs := replayFixture(t)
	k.Produce(recs[:40]...)
	runReplayCmd(t, replayArgs(cfg, k.Name("replay")))
	n, total := 0, 0
	for _, r := range k.ConsumeAll(t.Context(), cfg.Ledger.Topic) {
		if !strings.HasPrefix(string(r.Key), "c/") {
			continue
		}
		size := len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			size += len(h.Key) + len(h.Value)
		}
		n, total = n+1, total+size
	}
	if n == 0 {
		t.Fatal("no call records")
	}
	if avg := total / n; avg < 300 || avg > 500 {
		t.Errorf("a call record is %d bytes on average (key, value and headers, %d records), not about 400 (README)", avg, n)
	}
}
