package processor_test

import (
	"sync/atomic"
	"testing"

	"github.com/twosell/twosell/processor"
)

// juhe.qps is divided among the members that hold a partition of the input
// topic: a member without one makes no call, and the share it took went
// unused. Found by a walkthrough: 3 members of a 2-partition topic at
// juhe.qps 30 took 10/s each, and the group called at 20/s. Here 2 members
// of a 1-partition topic: the one that holds it takes the whole rate.
func TestIdleMembersTakeNoShareOfTheRate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1)
	var costs []*processor.CostControl
	var divided [2]atomic.Int32 // each member's divisions
	for i := range 2 {
		c, err := processor.NewCostControl(answer, processor.CostConfig{Secret: []byte("s"), QPS: 10})
		if err != nil {
			t.Fatal(err)
		}
		cfg := h.config(c)
		cfg.Cost, cfg.OnAssigned = c, func(n int) { c.SetMembers(n); divided[i].Add(1) }
		h.start(cfg)
		costs = append(costs, c)
		if i == 0 {
			waitCount(t, "the first member divided the rate alone", func() bool { return divided[0].Load() == 1 })
		}
	}
	// The rebalance that let the second in divides the rate in both.
	waitCount(t, "both members divided the rate with two in the group", func() bool { return divided[0].Load() >= 2 && divided[1].Load() >= 1 })
	for i, c := range costs {
		if s := c.CostStats(); s.Members != 1 || s.QPS != 10 {
			t.Errorf("member %d: rate divided by %d, %.1f/s; want by 1, the member that holds the partition, 10/s", i, s.Members, s.QPS)
		}
	}
}
