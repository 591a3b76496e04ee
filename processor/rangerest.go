package processor

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RangeRest reads partition part of topic from off, read_committed, and
// returns how far it holds only transaction markers and records of aborted
// transactions, up to end (off when a record below end is there to come).
// A range's reader ends the partition when it returns end or more (see
// probe).
func RangeRest(ctx context.Context, cl *kgo.Client, topic string, part int32, off, end int64) (int64, error) {
	md, err := kadm.NewClient(cl).Metadata(ctx, topic)
	if err != nil {
		return off, err
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return off, fmt.Errorf("no metadata for %q: %v", topic, td.Err)
	}
	return readPastAll(ctx, cl, td, part, off, end)
}
