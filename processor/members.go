package processor

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// membersTimeout bounds asking the coordinator for the group's members
// inside a rebalance (set by tests, while other tests' groups rebalance).
var membersTimeout atomic.Int64

func init() { membersTimeout.Store(int64(5 * time.Second)) }

// reportMembers tells Config.OnAssigned how many members of the group hold
// a partition of the input topic now (membersHolding).
// It runs in the assigned callback, which franz-go calls after every join,
// even when nothing new is assigned, so every rebalance is reported. The
// count comes from the group coordinator (DescribeGroups). When it cannot be
// had, the count is estimated from this member's share of the input topic's
// partitions (sharesOfPartitions); only when that cannot be had either does
// the previous count stay in force. (Found by review: a member that never
// counted kept its first count, 1, and took the whole group's rate: two
// such members of a group limited to 10/s called at 20/s.)
func (p *Processor) reportMembers(ctx context.Context) {
	if p.cfg.OnAssigned == nil || p.client() == nil {
		return
	}
	// One deadline for the count and the estimate: this runs inside the
	// rebalance, which holds every poll of the consumer. The count may take
	// half of it; the estimate has the rest.
	bound := time.Duration(membersTimeout.Load())
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	counting, cancelCount := context.WithTimeout(ctx, bound/2)
	defer cancelCount()
	adm := kadm.NewClient(p.client())
	for {
		described, err := adm.DescribeGroups(counting, p.cfg.Group)
		if err == nil {
			err = described.Error()
		}
		if g := described[p.cfg.Group]; err == nil && len(g.Members) > 0 {
			p.cfg.OnAssigned(membersHolding(g, p.cfg.InputTopic))
			return
		}
		if err == nil || kerr.IsRetriable(err) {
			// A coordinator still loading (a new cluster) answers with a
			// retriable error, or with no members yet: ask again, briefly.
			// Not an error no retry changes (no DESCRIBE on the group:
			// found by review, asked every 100 ms for the whole timeout,
			// at every rebalance).
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-t.C:
				continue
			case <-counting.Done():
				t.Stop()
			}
		}
		n, held, total, ok := p.sharesOfPartitions(ctx, adm)
		switch {
		case held == 0:
			// No partition, no call: the next rebalance gives it some.
			p.log.Debug("could not count the group's members, and holds no partition", "group", p.cfg.Group, "err", err)
		case ok:
			log := p.log.Warn
			if p.membersEstimated.Swap(true) {
				log = p.log.Info // warned once; SetMembers logs each division
			}
			log("could not count the group's members; dividing the provider rate and the budget as if by this member's share of the partitions",
				"group", p.cfg.Group, "members", n, "partitions_held", held, "partitions", total, "err", err)
			p.cfg.OnAssigned(n)
		default:
			p.log.Warn("could not count the group's members, nor the input topic's partitions; the provider rate stays divided as before",
				"group", p.cfg.Group, "err", err)
		}
		return
	}
}

// membersHolding counts the members of g that hold a partition of topic:
// a member without one makes no call, and a share of the rate given to it
// went unused (found by a walkthrough: 3 members of a 2-partition topic
// called at 20/s of a group's 30). All of them when none seems to hold one
// (assignments not decoded).
func membersHolding(g kadm.DescribedGroup, topic string) int {
	n := 0
	for _, m := range g.Members {
		if c, ok := m.Assigned.AsConsumer(); ok && slices.ContainsFunc(c.Topics, func(t kmsg.ConsumerMemberAssignmentTopic) bool {
			return t.Topic == topic && len(t.Partitions) > 0
		}) {
			n++
		}
	}
	if n == 0 {
		return len(g.Members)
	}
	return n
}

// sharesOfPartitions estimates the group's members from this member's
// share of the input topic's partitions: a member holding 2 of 8 counts 4
// (rounded up; exact when the partitions are spread evenly, as the
// balancers spread them). ok is false when the member holds none (it makes
// no call) or the topic's partitions cannot be counted.
func (p *Processor) sharesOfPartitions(ctx context.Context, adm *kadm.Client) (n, held, total int, ok bool) {
	p.mu.Lock()
	for tp := range p.workers {
		if tp.topic == p.cfg.InputTopic {
			held++
		}
	}
	p.mu.Unlock()
	if held == 0 {
		return 0, 0, 0, false
	}
	topics, err := adm.ListTopics(ctx, p.cfg.InputTopic)
	if err != nil {
		return 0, held, 0, false
	}
	td, found := topics[p.cfg.InputTopic]
	if !found || td.Err != nil || len(td.Partitions) == 0 {
		return 0, held, 0, false
	}
	total = len(td.Partitions)
	return (total + held - 1) / held, held, total, true
}
