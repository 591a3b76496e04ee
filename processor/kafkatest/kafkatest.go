// Package kafkatest gives tests a Kafka cluster: the embedded kfake broker
// by default, or the real cluster named by KAFKA_BROKERS, so that one suite
// runs against both (DESIGN.md's testing tiers 2 and 3).
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// Cluster is a broker set for one test.
type Cluster struct {
	Brokers []string
	Real    bool           // a real Kafka from KAFKA_BROKERS, not kfake
	Fake    *kfake.Cluster // the embedded broker; nil when Real
	t       testing.TB
	opts    []kgo.Opt // what Client adds: how to reach a secured cluster (NewFake)
}

// New returns a cluster for t: the brokers in KAFKA_BROKERS (comma
// separated) if set, else a fresh single-broker kfake cluster closed when the
// test ends.
func New(t testing.TB) *Cluster {
	t.Helper()
	if env := os.Getenv("KAFKA_BROKERS"); env != "" {
		return &Cluster{Brokers: strings.Split(env, ","), Real: true, t: t}
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &Cluster{Brokers: c.ListenAddrs(), Fake: c, t: t}
}

// NewFake returns a fresh single-broker kfake cluster started with opts,
// such as kfake.EnableSASL and kfake.TLS, whatever KAFKA_BROKERS says (a
// shared real cluster is not secured the way a test needs). The cluster's
// own clients (Client, Produce, Consume…) add clientOpts, the TLS and SASL
// options that reach it.
func NewFake(t testing.TB, clientOpts []kgo.Opt, opts ...kfake.Opt) *Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &Cluster{Brokers: c.ListenAddrs(), Fake: c, t: t, opts: clientOpts}
}

// NewDescribeOnly returns a fresh kfake cluster with SASL PLAIN and ACLs
// (as NewFake: whatever KAFKA_BROKERS says) on which user, password pass,
// may describe every topic and the cluster but read or write none: an ACL
// left out. The cluster's own clients are a superuser's.
func NewDescribeOnly(t testing.TB, user, pass string) *Cluster {
	t.Helper()
	describe := func(resource kmsg.ACLResourceType, name string) kfake.ACL {
		return kfake.ACL{Resource: resource, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true}
	}
	return NewFake(t, []kgo.Opt{kgo.SASL(plain.Auth{User: "admin", Pass: "admin-pw"}.AsMechanism())},
		kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin-pw"),
		kfake.User("PLAIN", user, pass, describe(kmsg.ACLResourceTypeTopic, "*"), describe(kmsg.ACLResourceTypeCluster, "kafka-cluster")))
}

// Name returns a topic or group name unique to this run, so that tests on a
// shared real cluster never see each other's data.
func (c *Cluster) Name(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// Client returns a franz-go client for the cluster, closed when the test ends.
func (c *Cluster) Client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	base := append([]kgo.Opt{kgo.SeedBrokers(c.Brokers...)}, c.opts...)
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		c.t.Fatalf("kafka client: %v", err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// CreateTopics creates topics with the given partition count.
func (c *Cluster) CreateTopics(partitions int32, topics ...string) {
	c.t.Helper()
	c.CreateTopicsWith(partitions, nil, topics...)
}

// CreateTopicsWith creates topics with the given partition count and topic
// configs (retention.ms, ...).
func (c *Cluster) CreateTopicsWith(partitions int32, configs map[string]*string, topics ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(c.Client())
	resp, err := adm.CreateTopics(ctx, partitions, 1, configs, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		c.t.Fatalf("creating topics %v: %v", topics, err)
	}
	// A real broker answers CreateTopics before its metadata lists the
	// topics: a test that runs a processor at once (no produce first, which
	// retries) would find its input missing.
	WaitFor(c.t, func() bool {
		listed, err := adm.ListTopics(ctx, topics...)
		if err != nil {
			return false
		}
		for _, t := range topics {
			if d, ok := listed[t]; !ok || d.Err != nil || len(d.Partitions) != int(partitions) {
				return false
			}
		}
		return true
	})
}

// Produce writes records synchronously.
func (c *Cluster) Produce(recs ...*kgo.Record) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Client().ProduceSync(ctx, recs...).FirstErr(); err != nil {
		c.t.Fatalf("producing: %v", err)
	}
}

// Consume reads records from topics from the start until stop returns true
// for all records read so far, or ctx ends (a test failure). It reads with
// read_committed isolation so it never sees aborted transactions, and skips
// ConsumeAll's end markers.
func (c *Cluster) Consume(ctx context.Context, stop func([]*kgo.Record) bool, topics ...string) []*kgo.Record {
	c.t.Helper()
	return c.consume(ctx, func(r *kgo.Record) bool { return string(r.Key) != endMarker }, stop, topics...)
}

func (c *Cluster) consume(ctx context.Context, keep func(*kgo.Record) bool, stop func([]*kgo.Record) bool, topics ...string) []*kgo.Record {
	c.t.Helper()
	cl := c.Client(
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	var recs []*kgo.Record
	for !stop(recs) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			c.t.Fatalf("consuming %v: %v after %d records", topics, ctx.Err(), len(recs))
		}
		fs.EachError(func(t string, p int32, err error) { c.t.Logf("fetch %s/%d: %v", t, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if keep(r) {
				recs = append(recs, r)
			}
		})
	}
	return recs
}

// ConsumeAll reads topics from the start up to the moment of the call:
// everything written so far, duplicates included, as a read_committed reader
// sees it. It writes an end marker to every partition and reads until it has
// seen them all (offsets cannot tell: transaction markers and aborted records
// take offsets too); the markers are not returned. Call it when the writers
// have stopped.
func (c *Cluster) ConsumeAll(ctx context.Context, topics ...string) []*kgo.Record {
	c.t.Helper()
	details, err := kadm.NewClient(c.Client()).ListTopics(ctx, topics...)
	if err != nil {
		c.t.Fatalf("listing %v: %v", topics, err)
	}
	nonce := c.Name("end") // this call's markers, not an earlier call's
	var markers []*kgo.Record
	details.EachPartition(func(d kadm.PartitionDetail) {
		markers = append(markers, &kgo.Record{Topic: d.Topic, Partition: d.Partition, Key: []byte(endMarker), Value: []byte(nonce)})
	})
	cl := c.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := cl.ProduceSync(ctx, markers...).FirstErr(); err != nil {
		c.t.Fatalf("writing end markers: %v", err)
	}
	// Keep this call's markers, to count them; drop everything else's.
	isMine := func(r *kgo.Record) bool { return string(r.Key) == endMarker && string(r.Value) == nonce }
	var recs []*kgo.Record
	seen, read := 0, 0
	c.consume(ctx, func(r *kgo.Record) bool { return string(r.Key) != endMarker || isMine(r) }, func(got []*kgo.Record) bool {
		for _, r := range got[read:] {
			read++
			if isMine(r) {
				seen++
				continue
			}
			recs = append(recs, r)
		}
		return seen == len(markers)
	}, topics...)
	return recs
}

// endMarker keys the records ConsumeAll writes to find the end of a topic.
const endMarker = "kafkatest-end-of-topic"

// CommittedOffsets returns the group's committed offsets for topic, by
// partition.
func (c *Cluster) CommittedOffsets(group, topic string) map[int32]int64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(c.Client()).FetchOffsets(ctx, group)
	if err != nil {
		c.t.Fatalf("fetching offsets of %s: %v", group, err)
	}
	out := make(map[int32]int64)
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}

// WaitFor polls cond every 5 ms until it holds. The 60-second limit only
// keeps a broken test from hanging; it is no assertion of speed.
func WaitFor(t testing.TB, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("condition not reached in 60s")
		}
	}
}

// WritesTopic reports whether a produce request writes to topic (by name,
// or by id from v13).
func WritesTopic(pr *kmsg.ProduceRequest, topic string, id [16]byte) bool {
	for _, tp := range pr.Topics {
		if tp.Topic == topic || tp.TopicID == id {
			return true
		}
	}
	return false
}

// Refusal answers every partition of a produce request with err.
func Refusal(pr *kmsg.ProduceRequest, err *kerr.Error) *kmsg.ProduceResponse {
	resp := pr.ResponseKind().(*kmsg.ProduceResponse)
	for _, tp := range pr.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic, rt.TopicID = tp.Topic, tp.TopicID
		for _, part := range tp.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = part.Partition
			rp.ErrorCode = err.Code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
