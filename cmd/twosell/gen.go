package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe/juhesim"
)

// sampleEvents returns n registration events that look like production
// traffic: numbers written the ways people write them (+86, dashes, spaces,
// full-width digits), dates in every accepted format, extra fields the
// processor must carry through untouched (a number too big for a float64
// among them), keys by user, and a traceparent on half of them. About one in
// fifty is bad in a way a real producer gets wrong, so that the dead-letter
// topic shows what it is for. The same seed gives the same events.
func sampleEvents(n int, seed uint64, mobiles []string) []*kgo.Record {
	g := newSampleGen(seed, mobiles, max(n/2, 1))
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		recs = append(recs, g.event(i, devInputTopic))
	}
	return recs
}

// sampleGen makes sampleEvents' events one at a time, for "twosell gen".
type sampleGen struct {
	rng      *rand.Rand
	mobiles  []string
	users    int
	badEvery int // every badEvery-th event is bad; 0: none
	channels []string
	base     time.Time
}

func newSampleGen(seed uint64, mobiles []string, users int) *sampleGen {
	return &sampleGen{
		rng:      rand.New(rand.NewPCG(seed, seed^0x5eed)),
		mobiles:  mobiles,
		users:    users,
		badEvery: 50,
		channels: []string{"app", "web", "h5", "mini_program"},
		base:     time.Date(2015, 1, 1, 0, 0, 0, 0, time.FixedZone("CST", 8*3600)),
	}
}

// event returns the i-th event (i from 0, in order), for topic.
func (g *sampleGen) event(i int, topic string) *kgo.Record {
	rng := g.rng
	id := fmt.Sprintf("e-%06d", i+1)
	user := fmt.Sprintf("u-%05d", rng.IntN(g.users))
	mobile := formatMobile(rng, g.mobiles[i%len(g.mobiles)])
	at := g.base.Add(time.Duration(rng.Int64N(int64(11 * 365 * 24 * time.Hour))))
	date := formatDate(rng, at)
	referrer := fmt.Sprintf("9007199254%09d", rng.Int64N(1e9)) // > 2^53: would not survive a float64
	value := fmt.Sprintf(`{"event_id":%q,"user_id":%q,"mobile":%s,"registered_at":%s,"channel":%q,"referrer_id":%s,"device":{"os":%q,"app_version":"5.%d.%d"}}`,
		id, user, mobile, date, g.channels[rng.IntN(len(g.channels))], referrer,
		[]string{"ios", "android"}[rng.IntN(2)], rng.IntN(20), rng.IntN(10))
	if g.badEvery > 0 && i%g.badEvery == g.badEvery-1 {
		value = badEvent(rng, id, user)
	}
	r := &kgo.Record{
		Topic:   topic,
		Key:     []byte(user),
		Value:   []byte(value),
		Headers: []kgo.RecordHeader{{Key: "source", Value: []byte("twosell-dev")}},
	}
	if rng.IntN(2) == 0 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "traceparent", Value: []byte(randomTraceparent(rng))})
	}
	return r
}

// formatMobile writes a number as a JSON value, the ways producers do.
func formatMobile(rng *rand.Rand, m string) string {
	switch rng.IntN(20) {
	case 0:
		return fmt.Sprintf(`"+86 %s-%s-%s"`, m[:3], m[3:7], m[7:])
	case 1:
		return fmt.Sprintf(`"0086%s"`, m)
	case 2:
		return fmt.Sprintf(`"%s %s %s"`, m[:3], m[3:7], m[7:])
	case 3:
		var b strings.Builder
		for _, c := range m {
			b.WriteRune(c - '0' + '０') // full-width digits, as some input methods type them
		}
		return `"` + b.String() + `"`
	case 4:
		return m // a JSON number
	}
	return `"` + m + `"`
}

// formatDate writes a time as a JSON value in one of the accepted formats.
func formatDate(rng *rand.Rand, t time.Time) string {
	switch rng.IntN(10) {
	case 0:
		return `"` + t.UTC().Format(time.RFC3339) + `"`
	case 1:
		return `"` + t.Format("2006-01-02") + `"`
	case 2:
		return fmt.Sprint(t.UnixMilli())
	}
	return `"` + t.Format(time.RFC3339) + `"`
}

// badEvent is an event a real producer gets wrong.
func badEvent(rng *rand.Rand, id, user string) string {
	switch rng.IntN(5) {
	case 0:
		return fmt.Sprintf(`{"event_id":%q,"user_id":%q,"mobile":"1731234567","registered_at":"2024-01-02"}`, id, user)
	case 1:
		return fmt.Sprintf(`{"event_id":%q,"user_id":%q,"mobile":"+1 415 555 0100","registered_at":"2024-01-02"}`, id, user)
	case 2:
		return fmt.Sprintf(`{"event_id":%q,"user_id":%q,"mobile":"17312345678"}`, id, user)
	case 3:
		return fmt.Sprintf(`{"event_id":%q,"user_id":%q,"mobile":"17312345678","registered_at":"yesterday"}`, id, user)
	}
	return fmt.Sprintf(`{"event_id":%q,"user_id":%q,"mobile":"173123`, id, user) // truncated
}

func randomTraceparent(rng *rand.Rand) string {
	var tid [16]byte
	var sid [8]byte
	for i := range tid {
		tid[i] = byte(rng.IntN(256))
	}
	for i := range sid {
		sid[i] = byte(rng.IntN(256))
	}
	tid[0] |= 1 // never all zero
	sid[0] |= 1
	return "00-" + hex.EncodeToString(tid[:]) + "-" + hex.EncodeToString(sid[:]) + "-01"
}

// cmdGen is "twosell gen": the load generator. It writes sample events (as
// dev does) to the input topic of any cluster, at a given rate or as fast
// as the brokers take them, until --events are written or it is stopped,
// and says how many and how fast.
func cmdGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	events := fs.Int("events", 10000, "events to write; 0: until stopped (Ctrl-C)")
	perSecond := fs.Float64("rate", 0, "events a second; 0: as fast as the brokers take them")
	mobiles := fs.Int("mobiles", 10000, "distinct mobile numbers the events use (the simulator's sample population)")
	seed := fs.Uint64("seed", 1, "seed of the events: the same seed writes the same events")
	partitions := fs.Int("partitions", 3, "partitions of the topic, if gen creates it")
	badEvery := fs.Int("bad-every", 50, "every Nth event is one a real producer gets wrong (a dead letter); 0: none")
	cfg, rest, err := config.LoadWith("gen", fs, args, os.LookupEnv)
	if err != nil {
		return err
	}
	switch {
	case len(rest) > 0:
		return usageError{fmt.Sprintf("unexpected arguments %q", rest)}
	case *events < 0:
		return usageError{fmt.Sprintf("--events %d: want 0 (until stopped) or more", *events)}
	case !(*perSecond >= 0) || math.IsInf(*perSecond, 0):
		return usageError{fmt.Sprintf("--rate %v: want 0 (unlimited) or a positive number of events a second", *perSecond)}
	case *mobiles < 1 || *mobiles > 10_000_000:
		return usageError{fmt.Sprintf("--mobiles %d: want 1 to 10000000", *mobiles)}
	case *partitions < 1:
		return usageError{fmt.Sprintf("--partitions %d: want 1 or more", *partitions)}
	case *badEvery < 0:
		return usageError{fmt.Sprintf("--bad-every %d: want 0 (no bad events) or more", *badEvery)}
	}
	registerSecrets(cfg)
	opts, err := kafkaOpts(cfg)
	if err != nil {
		return err
	}
	res, err := generate(ctx, opts, cfg.Kafka.InputTopic, genOptions{
		Events: *events, Rate: *perSecond, Mobiles: *mobiles, Seed: *seed, Partitions: int32(*partitions), BadEvery: *badEvery,
	}, stderr)
	if err != nil {
		return explainKafka(cfg, err)
	}
	line := fmt.Sprintf("wrote %d events to %s in %.1fs (%.0f/s)", res.written, cfg.Kafka.InputTopic, res.seconds, float64(res.written)/max(res.seconds, 1e-9))
	if res.created {
		line += fmt.Sprintf("; created the topic with %d partitions", *partitions)
	}
	// Its result, as query's and replay's: a write that fails is the
	// command's failure (found by review: gen exited 0).
	_, err = fmt.Fprintln(stdout, line)
	return err
}

type genOptions struct {
	Events     int     // 0: until ctx ends
	Rate       float64 // events a second; 0: unlimited
	Mobiles    int
	Seed       uint64
	Partitions int32 // of the topic, if created
	BadEvery   int   // every BadEvery-th event is bad; 0: none
	// FlushTimeout bounds the flush at the end, after a stop too (30s).
	FlushTimeout time.Duration
}

type genResult struct {
	written int
	seconds float64
	created bool
}

// generate writes o.Events sample events to topic (creating it if missing),
// reporting progress to progress every genProgressEvery, and returns once
// they are all acknowledged, or when ctx ends (then with those written so
// far, and no error).
func generate(ctx context.Context, opts []kgo.Opt, topic string, o genOptions, progress io.Writer) (genResult, error) {
	var res genResult
	cl, err := kgo.NewClient(append(opts, kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(genMaxBuffered))...)
	if err != nil {
		return res, err
	}
	defer cl.Close()
	// Created only when missing: a producer allowed to write a topic may
	// not be allowed to create one, and Kafka checks that before it says
	// the topic exists.
	adm := kadm.NewClient(cl)
	listed, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return res, fmt.Errorf("looking up topic %q: %w", topic, err)
	}
	if !listed.Has(topic) {
		created, err := adm.CreateTopic(ctx, o.Partitions, -1, nil, topic)
		switch {
		case err == nil:
			res.created = true
		case errors.Is(err, kerr.TopicAlreadyExists):
		case created.ErrMessage != "":
			return res, fmt.Errorf("creating topic %q: %w: %s", topic, err, created.ErrMessage)
		default:
			return res, fmt.Errorf("creating topic %q: %w", topic, err)
		}
	}

	var lim *rate.Limiter
	if o.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(o.Rate), max(1, int(o.Rate/100))) // a burst of 10 ms
	}
	g := newSampleGen(o.Seed, juhesim.Population(o.Mobiles), max(o.Mobiles/2, 1))
	g.badEvery = o.BadEvery
	var acked, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	start := time.Now()
	next := start.Add(genProgressEvery)
	written := 0
	// Room in the client's buffer, taken before each Produce and given back
	// by its promise: Produce itself would wait for room with a context
	// that a stop must not cancel (below), and with the brokers gone a
	// Ctrl-C waited for good.
	room := make(chan struct{}, genMaxBuffered)
	for o.Events == 0 || written < o.Events {
		if lim != nil {
			if lim.Wait(ctx) != nil {
				break
			}
		} else if ctx.Err() != nil {
			break
		}
		if failed.Load() > 0 {
			break
		}
		select {
		case room <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		// Not canceled by a stop: an event handed to the client is
		// written, and counted when acknowledged.
		cl.Produce(context.WithoutCancel(ctx), g.event(written, topic), func(_ *kgo.Record, err error) {
			<-room
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			acked.Add(1)
		})
		written++
		if now := time.Now(); now.After(next) {
			fmt.Fprintf(progress, "gen: %d events written, %d acknowledged (%.0f/s)\n", written, acked.Load(), float64(acked.Load())/now.Sub(start).Seconds())
			next = now.Add(genProgressEvery)
		}
	}
	// What was handed to the client is flushed even after Ctrl-C: the
	// summary counts only what the brokers acknowledged.
	flushTimeout := o.FlushTimeout
	if flushTimeout == 0 {
		flushTimeout = 30 * time.Second
	}
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancel()
	if err := cl.Flush(flushCtx); err != nil {
		return res, fmt.Errorf("flushing the events: %w", err)
	}
	res.written, res.seconds = int(acked.Load()), time.Since(start).Seconds()
	if p := firstErr.Load(); p != nil {
		return res, fmt.Errorf("writing events to %q: %d of %d failed, the first: %w", topic, failed.Load(), written, *p)
	}
	return res, nil
}

// genMaxBuffered is how many events gen has the client buffer at most
// (franz-go's default).
const genMaxBuffered = 10_000

// genProgressEvery is how often gen reports its progress.
const genProgressEvery = 5 * time.Second
