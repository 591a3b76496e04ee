package processor

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// franz-go's warnings that repeat are logged once, then once per
// repeatEvery with how many were not; each message on its own; and a
// partition that fell behind is heard of every time, logged or not. (Found
// by an operator drill: a broker down for 15 s gave 54 "unable to open
// connection to broker" lines.)
func TestKgoLoggerThrottlesRepeats(t *testing.T) {
	var logs strings.Builder
	var behind int
	k := newKgoLogger(slog.New(slog.NewTextHandler(&logs, nil)), func(outOfRange, string, int32, int64) { behind++ })
	for range 5 {
		k.Log(kgo.LogLevelWarn, "unable to open connection to broker", "addr", "127.0.0.1:9092", "err", "connection refused")
		k.Log(kgo.LogLevelWarn, kgoOutOfRange[whileConsuming], "topic", "t", "partition", int32(1), "prior_offset", int64(7))
	}
	if got := strings.Count(logs.String(), "unable to open connection"); got != 1 {
		t.Errorf("%d lines for 5 warnings in a moment, want 1:\n%s", got, logs.String())
	}
	if got := strings.Count(logs.String(), kgoOutOfRange[whileConsuming]); got != 1 {
		t.Errorf("%d out-of-range lines, want 1:\n%s", got, logs.String())
	}
	if behind != 5 {
		t.Errorf("fellBehind heard %d times, want 5", behind)
	}

	r := &repeats{m: make(map[string]repeat)}
	t0 := time.Now()
	for i, tc := range []struct {
		at     time.Duration
		n      int
		logged bool
	}{
		{0, 0, true}, {time.Second, 0, false}, {10 * time.Second, 0, false},
		{repeatEvery, 2, true}, {repeatEvery + time.Second, 0, false}, {3 * repeatEvery, 1, true},
	} {
		if n, ok := r.allow("m", t0.Add(tc.at)); n != tc.n || ok != tc.logged {
			t.Errorf("%d: at %v allow = %d, %v; want %d, %v", i, tc.at, n, ok, tc.n, tc.logged)
		}
	}
}
