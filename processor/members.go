package processor

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// membersTimeout bounds asking the coordinator for the group's members
// inside a rebalance.
const membersTimeout = 5 * time.Second

// reportMembers tells Config.OnAssigned how many members the group has now.
// It runs in the assigned callback, which franz-go calls after every join,
// even when nothing new is assigned, so every rebalance is reported. The
// count comes from the group coordinator (DescribeGroups); a failure is
// logged and the previous count stays in force.
func (p *Processor) reportMembers(ctx context.Context) {
	if p.cfg.OnAssigned == nil || p.client() == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, membersTimeout)
	defer cancel()
	adm := kadm.NewClient(p.client())
	for {
		described, err := adm.DescribeGroups(ctx, p.cfg.Group)
		if err == nil {
			err = described.Error()
		}
		if g := described[p.cfg.Group]; err == nil && len(g.Members) > 0 {
			p.cfg.OnAssigned(len(g.Members))
			return
		}
		// A coordinator still loading (a new cluster) answers with a
		// retriable error, or with no members yet: ask again, briefly.
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
			continue
		case <-ctx.Done():
			t.Stop()
		}
		p.log.Warn("could not count the group's members; the provider rate stays divided as before", "group", p.cfg.Group, "err", err)
		return
	}
}
