package main

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor/kafkatest"
)

// The fault tests run "twosell run" as a child process against a real
// broker and break things: SIGKILL at random points, the broker stopped and
// restarted. They take minutes, so they run only when TWOSELLTEST_FAULT=1
// and KAFKA_BROKERS names a broker (.ci/run does both, on the broker of
// deploy/kafka-local). They check counts, never times.
func faultCluster(t *testing.T) *kafkatest.Cluster {
	t.Helper()
	if os.Getenv("TWOSELLTEST_FAULT") != "1" || os.Getenv("KAFKA_BROKERS") == "" {
		t.Skip("fault tests run with TWOSELLTEST_FAULT=1 and KAFKA_BROKERS set (see .ci/run)")
	}
	return kafkatest.New(t)
}

// SIGKILL "twosell run" 5 times at random points of a 20,000-event stream,
// restarting it each time. At-least-once nothing is lost (duplicates are
// reported); exactly-once a read_committed reader sees every event once.
func TestFaultKillRestart(t *testing.T) {
	for _, delivery := range []string{config.DeliveryAtLeastOnce, config.DeliveryExactlyOnce} {
		t.Run(delivery, func(t *testing.T) {
			k := faultCluster(t)
			const n, kills = 20000, 5
			sim, url := newSim(t, juhesim.Faults{})
			cfg := testConfig(t, k, url, juhe.ModePlain)
			evs := pipelineEvents(cfg.Kafka.InputTopic, n)
			k.Produce(records(evs)...)

			seed := uint64(time.Now().UnixNano())
			rng := rand.New(rand.NewPCG(seed, 0))
			points := make([]int64, kills) // kill when the provider has seen this many requests
			for i := range points {
				points[i] = int64(n/20 + rng.IntN(n*8/10))
			}
			slices.Sort(points)
			t.Logf("seed %d: kill points (provider requests) %v", seed, points)

			env := []string{"TWOSELL_KAFKA_DELIVERY=" + delivery, "TWOSELL_KAFKA_TRANSACTIONAL_ID=" + k.Name("txn")}
			c := startChild(t, cfg, env...)
			for i, at := range points {
				kafkatest.WaitFor(t, func() bool { return sim.Stats().Requests >= at })
				if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				c.wait(t)
				t.Logf("kill %d at %d provider requests", i+1, sim.Stats().Requests)
				c = startChild(t, cfg, env...)
			}
			exactlyOnce := delivery == config.DeliveryExactlyOnce
			dups := checkOutcomes(t, cfg, evs, drainAndStop(t, k, cfg, c, n), !exactlyOnce)
			t.Logf("%s: %d events, %d kills: none lost, %d duplicates; %d provider requests", delivery, n, kills, dups, sim.Stats().Requests)
		})
	}
}

// Stop the broker mid-stream and start it again on the same data: twosell
// recovers by itself and nothing is lost.
func TestFaultBrokerRestart(t *testing.T) {
	k := faultCluster(t)
	scripts, err := filepath.Abs("../../deploy/kafka-local")
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("KAFKA_LOCAL_DIR") == "" && os.Getenv("TWOSELLTEST_BROKER_CONTROL") != "1" {
		t.Skip("needs the broker of deploy/kafka-local (TWOSELLTEST_BROKER_CONTROL=1)")
	}
	const n = 10000
	sim, url := newSim(t, juhesim.Faults{})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	evs := pipelineEvents(cfg.Kafka.InputTopic, n)
	k.Produce(records(evs)...)
	c := startChild(t, cfg)
	kafkatest.WaitFor(t, func() bool { return sim.Stats().Requests >= n/4 })

	port := k.Brokers[0][len("127.0.0.1:"):]
	broker := func(script string) {
		cmd := exec.Command(filepath.Join(scripts, script), port)
		cmd.Env = append(os.Environ(), "KAFKA_KEEP_DATA=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	broker("stop.sh")
	stoppedAt := sim.Stats().Requests
	broker("start.sh")
	t.Logf("broker stopped at %d provider requests and started again", stoppedAt)

	dups := checkOutcomes(t, cfg, evs, drainAndStop(t, k, cfg, c, n), true)
	t.Logf("broker restarted mid-stream: none of %d lost, %d duplicates", n, dups)
}

// drainAndStop waits until all n events have an output or a dead letter,
// stops the child with SIGTERM (it must exit 0), and returns everything
// written, duplicates included.
func drainAndStop(t *testing.T, k *kafkatest.Cluster, cfg *config.Config, c *child, n int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	k.Consume(ctx, func(recs []*kgo.Record) bool { return distinctEvents(t, recs) >= n }, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic)
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.wait(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	return k.ConsumeAll(ctx, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic)
}
