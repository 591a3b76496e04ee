package main

// Defects of "twosell replay" found by a review (twenty-fourth session):
// each test failed before its fix, for the reason its comment gives.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor/kafkatest"
)

// parseReplayRange: "what the command line alone can get wrong, a usage
// error before any setting is checked or the cluster asked" (and
// TestUsageErrorsComeBeforeConfigurationErrors for --from). --partitions is
// parsed only once the configuration is valid and the cluster answered: with
// a setting missing, "--partitions x" exits 1 with the setting's error and
// the mistake is not mentioned. And a partition named twice is accepted
// silently, where --start-offsets and --end-offsets refuse one given twice.
func TestReplayPartitionsAreParsedWithTheCommandLine(t *testing.T) {
	t.Setenv("TWOSELL_JUHE_KEY", "") // a setting missing
	for _, tt := range []struct {
		partitions, want string
	}{
		{"x", `--partitions: "x" is not a partition number`},
		{"0,-1", `--partitions: "-1" is not a partition number`},
		{"0,0", "--partitions: partition 0 is given twice"},
	} {
		code, stdout, stderr := reviewRun(t, t.Context(), "replay", "--output-topic", "backfill", "--partitions", tt.partitions)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("--partitions %s: exit %d, want 2 saying %q; stderr: %s", tt.partitions, code, tt.want, strings.TrimSpace(stderr))
		}
	}
}

// README (Replay): "Given offsets outside [log start to last stable offset]
// are clamped to it, with a WARN"; offsets found by --from and --to are
// within the partition already (clampRange). Not on a partition with a
// transaction open (a transactional input nearly always has one): when no
// record is at or after the time, kadm's ListOffsetsAfterMilli answers the
// high watermark (read_uncommitted), past the last stable offset, and
// firstRecordsAt returns it as it is. A --to after the last record then
// warns "the range ends at 11, past the partition's end (10): replaying up
// to 10", and a --from after it "the range starts at 11, past the
// partition's end", offsets the user never gave (TestReplayRanges: a range
// within the partitions must not warn).
func TestReplayTimeAfterTheLastRecordWithATransactionOpen(t *testing.T) {
	k, _, cfg, _, _ := replayFixture(t)
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	mobiles := juhesim.Population(11)
	cl := k.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 10 { // offsets 0-9, one a minute
		r := &kgo.Record{Topic: cfg.Kafka.InputTopic, Partition: 0, Timestamp: base.Add(time.Duration(i) * time.Minute),
			Value: fmt.Appendf(nil, `{"event_id":"e-%d","mobile":%q,"registered_at":"2020-01-01"}`, i, mobiles[i])}
		if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Offset 10: a transaction left open; the last stable offset is 10.
	txn := k.Client(kgo.TransactionalID(k.Name("open")), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	open := &kgo.Record{Topic: cfg.Kafka.InputTopic, Partition: 0, Timestamp: base.Add(time.Hour),
		Value: fmt.Appendf(nil, `{"event_id":"e-open","mobile":%q,"registered_at":"2020-01-01"}`, mobiles[10])}
	if err := txn.ProduceSync(t.Context(), open).FirstErr(); err != nil {
		t.Fatal(err)
	}
	later := base.Add(2 * time.Hour).Format(time.RFC3339) // after every record, the open one too
	for _, tt := range []struct {
		args   []string
		events int64
	}{
		{[]string{"--from", base.Add(5 * time.Minute).Format(time.RFC3339), "--to", later}, 5},
		{[]string{"--from", later}, 0},
	} {
		code, s, _, stderr := replayRun(t, t.Context(), replayArgs(cfg, k.Name("out"), append([]string{"--partitions", "0"}, tt.args...)...))
		if code != 0 || s.Events != tt.events {
			t.Fatalf("%v: exit %d, %d events; want 0 and %d\n%s", tt.args, code, s.Events, tt.events, stderr)
		}
		if strings.Contains(stderr, "past the partition's end") {
			t.Errorf("%v: times after the last record, a transaction open: the range is clamped with a WARN about offsets never given:\n%s", tt.args, stderr)
		}
	}
}

// README (Replay): "a bar on a terminal (offsets done/total, rate, paid
// calls, cache answers, ETA)", redrawn in place ("\r\033[K", no newline).
// The log shares stderr and knows nothing of it: a line logged while a bar
// is drawn is written after the bar, on its line (at the default level,
// "replay complete" at the end of every replay that lasts longer than a
// redraw; a WARN of a stalled partition or of deleted records mid-replay),
// and the next redraw clears the line below instead. Here the provider
// holds the one call until a bar is drawn.
func TestReplayBarAndLogLinesDoNotShareALine(t *testing.T) {
	k, _, cfg, _, _ := replayFixture(t)
	sim, err := juhesim.New(juhesim.Config{Keys: []string{testKey}, OpenID: testOpenID, Population: -1})
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { once.Do(func() { close(gate) }) }) // first: a handler still held would block Close
	m := juhesim.Population(1)[0]
	k.Produce(&kgo.Record{Topic: cfg.Kafka.InputTopic, Key: []byte(m),
		Value: fmt.Appendf(nil, `{"event_id":"e-0","mobile":%q,"registered_at":"2020-01-01"}`, m)})
	args := replayArgs(cfg, k.Name("out"))
	for i, a := range args {
		switch a {
		case "--juhe-url":
			args[i+1] = srv.URL
		case "--progress":
			args[i+1] = "bar"
		case "--log-level":
			args[i+1] = "info" // the default
		}
	}
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- Main(t.Context(), args, &stdout, &stderr) }()
	kafkatest.WaitFor(t, func() bool { return strings.Contains(stderr.String(), "\r\033[K[") })
	once.Do(func() { close(gate) })
	if code := <-done; code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	for _, line := range renderTerminal(stderr.String()) {
		if strings.Contains(line, "] 0/1") || strings.Contains(line, "] 1/1") {
			if strings.Contains(line, `"msg":`) {
				t.Errorf("a log line written on the bar's line, as a terminal shows it:\n%q", line)
			}
		}
	}
}

// renderTerminal is what a terminal shows of out, line by line: a carriage
// return goes back to the line's start, ESC [K clears the line from there,
// anything else is written over what is there.
func renderTerminal(out string) []string {
	var lines []string
	var cur []rune
	col := 0
	for i := 0; i < len(out); {
		switch {
		case out[i] == '\n':
			lines, cur, col = append(lines, string(cur)), nil, 0
			i++
		case out[i] == '\r':
			col = 0
			i++
		case strings.HasPrefix(out[i:], "\033[K"):
			cur = cur[:col]
			i += len("\033[K")
		default:
			r := []rune(out[i:])[0]
			if col < len(cur) {
				cur[col] = r
			} else {
				cur = append(cur, r)
			}
			col++
			i += len(string(r))
		}
	}
	return append(lines, string(cur))
}

// --progress-interval 0 (or negative) was taken as 10 s without a word.
func TestReplayProgressIntervalMustBePositive(t *testing.T) {
	for _, v := range []string{"0s", "-1s"} {
		code, _, stderr := reviewRun(t, t.Context(), "replay", "--output-topic", "backfill", "--progress-interval", v)
		if code != 2 || !strings.Contains(stderr, "--progress-interval") {
			t.Errorf("--progress-interval %s: exit %d, want 2 naming the flag; stderr: %s", v, code, strings.TrimSpace(stderr))
		}
	}
}
