package processor_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// README (Observability): logs are "one line per state change (breaker,
// held partitions, rebalance), not per record", and the Kafka client's
// repeated warnings and errors are logged the first time, then at most once
// every 30 s per message, with how many were not (repeated); replay logs
// its fetch errors "once per partition and error, then at most every 30 s".
// run's poll loop (processor.go logFetchErrors) logs a WARN for every
// fetch error of every poll: a user whose READ ACL on the input topic is
// revoked (TOPIC_AUTHORIZATION_FAILED, which franz-go hands to the poll and
// fetches again at once) floods the log at the fetch rate.
func TestRunFetchErrorsAreThrottled(t *testing.T) {
	h := newHarness(t, 1)
	if h.kafka.Fake == nil {
		t.Skip("fails fetches with kfake's control functions")
	}
	var failing atomic.Bool
	var refused atomic.Int64 // fetches of the input topic answered with the error
	h.kafka.Fake.ControlKey(int16(kmsg.Fetch), func(r kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		if !failing.Load() {
			return nil, nil, false
		}
		req := r.(*kmsg.FetchRequest)
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		resp.Version = req.Version
		input := false
		for _, rt := range req.Topics {
			st := kmsg.NewFetchResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewFetchResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
				input = true
			}
			resp.Topics = append(resp.Topics, st)
		}
		if input {
			refused.Add(1)
		}
		return resp, nil, true
	})
	logs := &safeBuffer{}
	cfg := h.config(processor.EnricherFunc(func(_ context.Context, l processor.Lookup) (processor.Result, error) {
		return fakeAnswer(l), nil
	}))
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p, _ := h.start(cfg)
	kafkatest.WaitFor(t, p.Connected)

	began := time.Now()
	failing.Store(true)
	kafkatest.WaitFor(t, func() bool { return refused.Load() >= 6 }) // a few: the polls of errors alone back off, 10 ms doubled
	if time.Since(began) >= 30*time.Second {
		t.Skip("slower than the 30 s throttling window: proves nothing")
	}
	n := strings.Count(logs.String(), `"msg":"fetch error; the client retries"`)
	if n > 1 {
		t.Errorf("%d WARN lines \"fetch error; the client retries\" for one partition and one error within %v (%d refused fetches); "+
			"want the first, then at most one every 30 s with how many repeated", n, time.Since(began).Round(time.Millisecond), refused.Load())
	}
}
