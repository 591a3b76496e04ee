package processor_test

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/twosell/twosell/processor"
)

// A member that cannot count the group (DescribeGroups refused) divides
// juhe.qps by its share of the input topic's partitions. Before, it kept
// its previous count, 1 for a member that never counted, and took the whole
// group's rate: two such members of a group limited to 10/s called at 20/s
// (found by review). Not parallel: it shortens the count's timeout.
func TestUncountedMemberTakesItsShareOfThePartitions(t *testing.T) {
	defer processor.SetMembersTimeout(200 * time.Millisecond)()
	h := newHarness(t, 2)
	if h.kafka.Fake == nil {
		t.Skip("answers DescribeGroups with kfake's control functions")
	}
	refuseDescribeGroups(h)
	var costs []*processor.CostControl
	var logs []*safeBuffer
	for i := range 2 {
		w := &safeBuffer{}
		c, err := processor.NewCostControl(answer, processor.CostConfig{Secret: []byte("s"), QPS: 10})
		if err != nil {
			t.Fatal(err)
		}
		cfg := h.config(c)
		cfg.Cost, cfg.OnAssigned = c, c.SetMembers
		cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
		h.start(cfg)
		costs, logs = append(costs, c), append(logs, w)
		if i == 0 {
			// Alone, it holds both partitions: the whole rate.
			waitCount(t, "the first member estimated the group", func() bool { return strings.Contains(w.String(), "partitions_held=2 partitions=2") })
			if q := c.CostStats().QPS; q != 10 {
				t.Errorf("alone: %.1f/s, want 10", q)
			}
		}
	}
	waitCount(t, "both members hold one partition each and estimate two members", func() bool {
		return costs[0].CostStats().QPS == 5 && costs[1].CostStats().QPS == 5
	})
	for _, w := range logs {
		if !strings.Contains(w.String(), "could not count the group's members; dividing the provider rate and the budget as if by this member's share of the partitions") {
			t.Errorf("no warning of the estimate: %s", w)
		}
	}
}

// The estimate from the partitions is for a member that cannot count the
// group, most often one without DESCRIBE on the group, which the
// coordinator answers GROUP_AUTHORIZATION_FAILED, an error no retry
// changes. reportMembers asked again every 100 ms for the whole timeout,
// then estimated, inside the assigned callback, which holds every poll of
// the consumer, at every rebalance (found by review); now it estimates at
// once. Not parallel: it sets the timeout (1 s, many times 100 ms).
func TestMembersCountNotRetriedOnAnErrorNoRetryChanges(t *testing.T) {
	defer processor.SetMembersTimeout(time.Second)()
	h := newHarness(t, 2)
	if h.kafka.Fake == nil {
		t.Skip("answers DescribeGroups with kfake's control functions")
	}
	asked := refuseDescribeGroups(h)
	c, err := processor.NewCostControl(answer, processor.CostConfig{Secret: []byte("s"), QPS: 10})
	if err != nil {
		t.Fatal(err)
	}
	w := &safeBuffer{}
	cfg := h.config(c)
	cfg.Cost, cfg.OnAssigned = c, c.SetMembers
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h.start(cfg)
	waitCount(t, "the member estimated the group", func() bool { return strings.Contains(w.String(), "partitions_held=2") })
	if n := asked.Load(); n > 1 {
		t.Errorf("DescribeGroups answered GROUP_AUTHORIZATION_FAILED (not retriable) was asked %d times in one rebalance, "+
			"for the whole members timeout, inside the assigned callback (polls blocked) before the estimate", n)
	}
}

// refuseDescribeGroups has the broker answer every DescribeGroups with
// GROUP_AUTHORIZATION_FAILED (a member without DESCRIBE on its group), and
// returns how many it was asked.
func refuseDescribeGroups(h *harness) *atomic.Int64 {
	var asked atomic.Int64
	h.kafka.Fake.ControlKey(int16(kmsg.DescribeGroups), func(req kmsg.Request) (kmsg.Response, error, bool) {
		h.kafka.Fake.KeepControl()
		asked.Add(1)
		dg := req.(*kmsg.DescribeGroupsRequest)
		resp := dg.ResponseKind().(*kmsg.DescribeGroupsResponse)
		resp.Version = dg.Version
		for _, g := range dg.Groups {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
		}
		return resp, nil, true
	})
	return &asked
}
