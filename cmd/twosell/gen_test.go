package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor"
	"github.com/twosell/twosell/processor/kafkatest"
)

// "twosell gen" writes the events it says, decodable by the processor but
// for one in fifty, the same for the same seed.
func TestGen(t *testing.T) {
	k := kafkatest.New(t)
	codec, err := processor.NewCodec(processor.CodecConfig{Location: time.FixedZone("CST", 8*3600)})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var values [2][]string
	for i, topic := range []string{k.Name("gen-a"), k.Name("gen-b")} {
		var stdout, stderr bytes.Buffer
		args := []string{"gen", "--brokers", strings.Join(k.Brokers, ","), "--input-topic", topic, "--events", fmt.Sprint(n), "--mobiles", "100", "--partitions", "2"}
		if code := Main(t.Context(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("gen: exit %d: %s", code, stderr.String())
		}
		if want := fmt.Sprintf("wrote %d events to %s", n, topic); !strings.HasPrefix(stdout.String(), want) || !strings.Contains(stdout.String(), "created the topic with 2 partitions") {
			t.Errorf("gen said %q, want %q... and the topic created", stdout.String(), want)
		}
		recs := k.ConsumeAll(t.Context(), topic)
		if len(recs) != n {
			t.Fatalf("%s holds %d records, want %d", topic, len(recs), n)
		}
		bad := 0
		for _, r := range recs {
			if !bytes.HasPrefix(r.Key, []byte("u-")) {
				t.Errorf("key %q, want a user id", r.Key)
			}
			if _, err := codec.Decode(r.Value, r.Timestamp); err != nil {
				bad++
			}
			values[i] = append(values[i], string(r.Value))
		}
		if bad != n/50 {
			t.Errorf("%d events the processor cannot decode, want one in fifty (%d)", bad, n/50)
		}
	}

	// --bad-every 0: every event decodes. The topic exists: gen does not
	// try to create it (a producer may not be allowed to).
	topic := k.Name("gen-good")
	k.CreateTopics(1, topic)
	var stdout, stderr bytes.Buffer
	args := []string{"gen", "--brokers", strings.Join(k.Brokers, ","), "--input-topic", topic, "--events", "200", "--bad-every", "0"}
	if code := Main(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("gen --bad-every 0: exit %d: %s", code, stderr.String())
	}
	recs := k.ConsumeAll(t.Context(), topic)
	for _, r := range recs {
		if _, err := codec.Decode(r.Value, r.Timestamp); err != nil {
			t.Errorf("--bad-every 0 wrote a bad event: %v: %s", err, r.Value)
		}
	}
	if len(recs) != 200 || strings.Contains(stdout.String(), "created") {
		t.Errorf("%d events, want 200, in the topic that existed (gen said %q)", len(recs), stdout.String())
	}
	slices.Sort(values[0])
	slices.Sort(values[1])
	if !slices.Equal(values[0], values[1]) {
		t.Error("the same seed wrote other events")
	}
}

// Until stopped (--events 0), gen writes until its context ends, and what
// it says it wrote is what the topic holds: the events handed to the client
// are flushed after the stop.
func TestGenUntilStopped(t *testing.T) {
	k := kafkatest.New(t)
	topic := k.Name("gen")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}
	done := make(chan genResult, 1)
	errc := make(chan error, 1)
	go func() {
		res, err := generate(ctx, opts, topic, genOptions{Rate: 5000, Mobiles: 10, Seed: 1, Partitions: 1}, &bytes.Buffer{})
		done <- res
		errc <- err
	}()
	k.Consume(t.Context(), func(recs []*kgo.Record) bool { return len(recs) >= 50 }, topic)
	cancel()
	var res genResult
	select {
	case res = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("gen did not stop")
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := len(k.ConsumeAll(t.Context(), topic)); res.written < 50 || got != res.written {
		t.Errorf("gen said it wrote %d, the topic holds %d", res.written, got)
	}
}

// A stop while the brokers take nothing and the client's buffer is full
// ends gen, after its flush times out. (Found by review: the next event's
// Produce waited for room with a context the stop does not cancel, and
// Ctrl-C did nothing.)
func TestGenStopsWhileTheBrokersTakeNothing(t *testing.T) {
	k := kafkatest.NewFake(t, nil)
	topic := k.Name("gen")
	k.CreateTopics(1, topic)
	release := make(chan struct{})
	t.Cleanup(sync.OnceFunc(func() { close(release) }))
	k.Fake.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.Fake.KeepControl()
		k.Fake.SleepControl(func() { <-release }) // brokers that do not answer
		return nil, nil, false
	})
	full := make(chan struct{})
	var buffered atomic.Int64
	hook := bufferedHook(func() {
		if buffered.Add(1) == genMaxBuffered {
			close(full)
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := generate(ctx, []kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.WithHooks(hook)}, topic,
			genOptions{Mobiles: 10, Seed: 1, FlushTimeout: 50 * time.Millisecond}, &bytes.Buffer{})
		errc <- err
	}()
	<-full // the next event waits for room
	cancel()
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "flushing the events") {
		t.Errorf("generate = %v, want the flush's timeout", err)
	}
}

type bufferedHook func()

func (h bufferedHook) OnProduceRecordBuffered(*kgo.Record) { h() }
