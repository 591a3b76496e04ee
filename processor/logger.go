package processor

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoLogger sends franz-go's own log lines to slog. franz-go logs at info
// about every rebalance and connection; we keep its warnings and errors, and
// its info lines only when slog's debug level is on.
type kgoLogger struct {
	l *slog.Logger
	// repeats, if set, throttles the warnings and errors that repeat.
	repeats *repeats
	// fellBehind, if set, hears of a partition the client fetched whose
	// next offset the broker no longer has: franz-go resumes it at the log
	// start (or, if the broker lost data, per ConsumeResetOffset), and says
	// so only in the log lines below.
	fellBehind func(cause outOfRange, topic string, partition int32, prior int64)
}

// franz-go's log lines for a partition whose next offset is out of range:
// a warning when it was consuming it, an info line when it had not consumed
// it yet (its first fetch from a committed offset). TestRunCountsRecordsDeletedWhileRunning
// and TestRunCountsRecordsDeletedBeforeATakeover fail if a franz-go upgrade
// rewords them.
var kgoOutOfRange = [outOfRangeCauses]string{
	whileConsuming: "received OFFSET_OUT_OF_RANGE while consuming",
	onFirstFetch:   "received OFFSET_OUT_OF_RANGE on the first fetch",
}

func (k kgoLogger) Level() kgo.LogLevel {
	if k.fellBehind != nil || k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo // fellBehind needs the first-fetch line; Log drops it below debug
	}
	return kgo.LogLevelWarn
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var l slog.Level
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	default:
		l = slog.LevelDebug
	}
	log := true
	if l >= slog.LevelWarn && k.repeats != nil {
		var n int
		if n, log = k.repeats.allow(msg, time.Now()); n > 0 {
			keyvals = append(keyvals[:len(keyvals):len(keyvals)], "repeated", n)
		}
	}
	if log {
		k.l.Log(context.Background(), l, "kafka: "+msg, keyvals...)
	}
	if k.fellBehind == nil {
		return
	}
	for cause, prefix := range kgoOutOfRange {
		if !strings.HasPrefix(msg, prefix) {
			continue
		}
		var topic string
		part, prior := int32(-1), int64(-1)
		for i := 0; i+1 < len(keyvals); i += 2 {
			switch keyvals[i] {
			case "topic":
				topic, _ = keyvals[i+1].(string)
			case "partition":
				part, _ = keyvals[i+1].(int32)
			case "prior_offset":
				prior, _ = keyvals[i+1].(int64)
			}
		}
		if topic != "" && part >= 0 && prior >= 0 {
			k.fellBehind(outOfRange(cause), topic, part, prior)
		}
	}
}

// KafkaLogger is the logger of a franz-go client of twosell's outside the
// processor (the consumer-lag reader, replay's estimate): as the
// processor's, its lines are prefixed "kafka:" and a repeated warning or
// error is logged at most every 30 s (found by review: the lag reader's
// logged every one, with the brokers down each of its polls').
func KafkaLogger(l *slog.Logger) kgo.Logger { return newKgoLogger(l, nil) }

// newKgoLogger is a franz-go client's logger, its repeated warnings and
// errors throttled (repeats).
func newKgoLogger(l *slog.Logger, fellBehind func(outOfRange, string, int32, int64)) kgoLogger {
	return kgoLogger{l: l, repeats: &repeats{m: make(map[string]repeat)}, fellBehind: fellBehind}
}

// repeatEvery is how often a franz-go warning or error that repeats is
// logged: its first occurrence, then at most once in this time, with how
// many were not logged (repeated). A broker down for a minute made the
// client log "unable to open connection to broker" and "group manage loop
// errored" four or five times a second (found by an operator drill).
const repeatEvery = 30 * time.Second

// repeats counts a client's warnings and errors by message (franz-go's are
// fixed strings, their details in the key-values: a bounded set).
type repeats struct {
	mu sync.Mutex
	m  map[string]repeat
}

// repeat is when a message was last logged, and how many of it were not
// logged since.
type repeat struct {
	last    time.Time
	skipped int
}

// allow reports whether msg is to be logged at now, and how many of it were
// not logged since it last was.
func (r *repeats) allow(msg string, now time.Time) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[string]repeat)
	}
	p, seen := r.m[msg]
	if seen && now.Sub(p.last) < repeatEvery {
		p.skipped++
		r.m[msg] = p
		return 0, false
	}
	r.m[msg] = repeat{last: now}
	return p.skipped, true
}
