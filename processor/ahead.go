package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Records written above the committed offset (at least once).
//
// A commit covers a partition's offsets up to its first unfinished record:
// the records finished after it are written, and read again by the
// partition's next owner, which wrote them a second time. With records held
// back for the rate or the budget, that was most of what a stop wrote (a
// walkthrough: 220 of a graceful stop's 299 outputs). So a revoke, the last
// commit of a partition this instance gives up, says which records above the
// offset are written, in the commit's metadata, which Kafka keeps with the
// offset; the next owner reads it when the partition is assigned and skips
// those records: acknowledged by Kafka, their outputs or dead letters are
// there already. Each is named with its leader epoch, so that a record the
// log lost and replaced at the same offset (an unclean leader election) is
// not taken for the one written. What does not fit the broker's metadata
// limit (offset.metadata.max.bytes, 4096 by default) is left out, the
// highest offsets first: those records are written again, as before.

// aheadPrefix starts a commit's metadata that lists records written above
// the offset; any other metadata (franz-go's member id) is ignored.
const aheadPrefix = "twosell-written "

// aheadMaxBytes bounds the metadata: Kafka's offset.metadata.max.bytes is
// 4096 by default.
const aheadMaxBytes = 3500

// writtenAhead returns the finished records above the watermark, as offset
// and leader epoch, in offset order.
func (t *tracker) writtenAhead() []pendingOffset {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ahead []pendingOffset
	for _, po := range t.pending[t.head:] {
		if po.done {
			ahead = append(ahead, po)
		}
	}
	return ahead
}

// encodeAhead writes the records written above offset as the commit's
// metadata: "twosell-written OFFSET EPOCH:A-B,C EPOCH:D", offsets relative
// to OFFSET, ranges of consecutive offsets of one epoch. It stops before
// max bytes, and returns how many records it named (0: nothing to say).
func encodeAhead(offset int64, ahead []pendingOffset, max int) (meta string, named int) {
	if len(ahead) == 0 {
		return "", 0
	}
	var b strings.Builder
	b.WriteString(aheadPrefix)
	b.WriteString(strconv.FormatInt(offset, 10))
	epoch := int32(-2) // none yet
	for i := 0; i < len(ahead); {
		j := i + 1
		for j < len(ahead) && ahead[j].epoch == ahead[i].epoch && ahead[j].offset == ahead[j-1].offset+1 {
			j++
		}
		var part strings.Builder
		if ahead[i].epoch != epoch {
			epoch = ahead[i].epoch
			fmt.Fprintf(&part, " %d:", epoch)
		} else {
			part.WriteByte(',')
		}
		part.WriteString(strconv.FormatInt(ahead[i].offset-offset, 10))
		if j-i > 1 {
			part.WriteByte('-')
			part.WriteString(strconv.FormatInt(ahead[j-1].offset-offset, 10))
		}
		if b.Len()+part.Len() > max {
			break
		}
		b.WriteString(part.String())
		named += j - i
		i = j
	}
	return b.String(), named
}

// aheadSet is what a commit's metadata says was written above its offset.
type aheadSet map[int64]int32 // offset → leader epoch

// decodeAhead reads encodeAhead's metadata for a partition committed at
// offset; nil when it is not such metadata, or was written for another
// offset (a later commit's offset came without it).
func decodeAhead(meta string, offset int64) aheadSet {
	rest, ok := strings.CutPrefix(meta, aheadPrefix)
	if !ok {
		return nil
	}
	fields := strings.Fields(rest)
	if len(fields) < 2 {
		return nil
	}
	if base, err := strconv.ParseInt(fields[0], 10, 64); err != nil || base != offset {
		return nil
	}
	set := aheadSet{}
	for _, f := range fields[1:] {
		e, ranges, ok := strings.Cut(f, ":")
		epoch, err := strconv.ParseInt(e, 10, 32)
		if !ok || err != nil {
			return nil
		}
		for r := range strings.SplitSeq(ranges, ",") {
			lo, hi, isRange := strings.Cut(r, "-")
			a, err1 := strconv.ParseInt(lo, 10, 64)
			z := a
			var err2 error
			if isRange {
				z, err2 = strconv.ParseInt(hi, 10, 64)
			}
			if err1 != nil || err2 != nil || a < 1 || z < a || z-a > 1<<20 {
				return nil
			}
			for o := a; o <= z; o++ {
				set[offset+o] = int32(epoch)
			}
		}
	}
	return set
}

// commitAhead commits, for the workers given up, their watermarks again
// with the records written above them in the metadata (revoked calls it
// after commitWorkers, which committed the same offsets). It returns how
// many records were written above the watermarks, and how many of them the
// commit named. A failure costs only duplicates: it is logged.
func (p *Processor) commitAhead(ctx context.Context, cl *kgo.Client, ws []*partitionWorker) (ahead, named int) {
	member, generation := cl.GroupMetadata()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.MemberID, req.Generation = p.cfg.Group, member, generation
	if id, ok := cl.OptValue(kgo.InstanceID).(*string); ok && id != nil {
		req.InstanceID = id
	}
	byTopic := map[string]int{} // index in req.Topics
	for _, w := range ws {
		// The watermark, also where nothing is finished below it (the
		// first record received is unfinished): committed again there,
		// where this owner started reading, it changes nothing but the
		// metadata.
		off, epoch, _ := w.track.watermark()
		written := w.track.writtenAhead()
		ahead += len(written)
		meta, n := encodeAhead(off, written, aheadMaxBytes)
		if n == 0 {
			continue
		}
		i, seen := byTopic[w.tp.topic]
		if !seen {
			t := kmsg.NewOffsetCommitRequestTopic()
			t.Topic = w.tp.topic
			req.Topics, i = append(req.Topics, t), len(req.Topics)
			byTopic[w.tp.topic] = i
		}
		part := kmsg.NewOffsetCommitRequestTopicPartition()
		part.Partition, part.Offset, part.LeaderEpoch, part.Metadata = w.tp.partition, off, epoch, &meta
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, part)
		named += n
	}
	if len(req.Topics) == 0 {
		return ahead, 0
	}
	if err := p.sendAhead(ctx, cl, req); err != nil {
		p.log.Info("could not tell the partitions' next owner which records above the committed offsets are written; it writes them again", "err", err)
		return ahead, 0
	}
	return ahead, named
}

// sendAhead sends commitAhead's request, and returns its error or the
// first partition's.
func (p *Processor) sendAhead(ctx context.Context, cl *kgo.Client, req *kmsg.OffsetCommitRequest) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.ShutdownTimeout)
	defer cancel()
	// OffsetCommit v10 names topics by ID (franz-go fills it in for its own
	// commits, not for a request made here): UNKNOWN_TOPIC_ID without it.
	topics := make([]string, 0, len(req.Topics))
	for _, t := range req.Topics {
		topics = append(topics, t.Topic)
	}
	details, err := kadm.NewClient(cl).ListTopics(ctx, topics...)
	if err == nil {
		err = details.Error()
	}
	if err != nil {
		return err
	}
	for i := range req.Topics {
		req.Topics[i].TopicID = details[req.Topics[i].Topic].ID
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, part := range t.Partitions {
			err = errors.Join(err, kerr.ErrorForCode(part.ErrorCode))
		}
	}
	return err
}

// aheadOf reads, for the partitions just assigned, what their last commits
// say was written above their offsets (nil for a partition with nothing).
// A failure costs only duplicates: it is logged at DEBUG.
func (p *Processor) aheadOf(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) map[topicPartition]aheadSet {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ShutdownTimeout)
	defer cancel()
	fetched, err := kadm.NewClient(cl).FetchOffsets(ctx, p.cfg.Group)
	if err == nil {
		err = fetched.Error()
	}
	if err != nil {
		p.log.Debug("could not read the committed offsets' metadata: records written above them by the previous owner are written again", "err", err)
		return nil
	}
	sets := map[topicPartition]aheadSet{}
	for topic, partitions := range assigned {
		for _, partition := range partitions {
			if o, ok := fetched.Lookup(topic, partition); ok {
				if set := decodeAhead(o.Metadata, o.At); set != nil {
					sets[topicPartition{topic, partition}] = set
				}
			}
		}
	}
	return sets
}

// skipWritten drops from recs the records the previous owner wrote above
// the committed offset (w.ahead), finishing them at once, and returns the
// rest. recs were added to the tracker; enqueue calls it, on the poll's
// goroutine, the only one that reads w.ahead.
func (w *partitionWorker) skipWritten(recs []*kgo.Record) []*kgo.Record {
	if len(w.ahead) == 0 {
		return recs
	}
	kept := make([]*kgo.Record, 0, len(recs))
	for _, r := range recs {
		epoch, named := w.ahead[r.Offset]
		delete(w.ahead, r.Offset)
		if !named || epoch != r.LeaderEpoch { // not named, or another record at that offset: the log lost the one written
			kept = append(kept, r)
			continue
		}
		w.p.stats.writtenBefore.Add(1)
		w.track.done(r.Offset)
		r.Recycle()
	}
	return kept
}
