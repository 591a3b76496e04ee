package processor

import (
	"context"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoLogger sends franz-go's own log lines to slog. franz-go logs at info
// about every rebalance and connection; we keep its warnings and errors, and
// its info lines only when slog's debug level is on.
type kgoLogger struct {
	l *slog.Logger
	// fellBehind, if set, hears of a partition the client consumed whose
	// next offset the broker no longer has: franz-go resumes it at the log
	// start, or per ConsumeResetOffset if the broker lost data, and says so
	// only in the warning below.
	fellBehind func(topic string, partition int32, prior int64)
}

// kgoOutOfRangeWhileConsuming begins franz-go's warning for a partition it
// was consuming whose next offset is out of range. TestRunCountsRecordsDeletedWhileRunning
// fails if a franz-go upgrade rewords it.
const kgoOutOfRangeWhileConsuming = "received OFFSET_OUT_OF_RANGE while consuming"

func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
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
	k.l.Log(context.Background(), l, "kafka: "+msg, keyvals...)
	if k.fellBehind != nil && strings.HasPrefix(msg, kgoOutOfRangeWhileConsuming) {
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
			k.fellBehind(topic, part, prior)
		}
	}
}
