package processor

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The defaults of CodecConfig's limits.
const (
	// DefaultMaxRecordBytes is 1 MiB, Kafka's own default for a message.
	DefaultMaxRecordBytes = 1 << 20
	// DefaultMaxHeaders is far more than any producer sets: tracing and
	// routing headers number a handful.
	DefaultMaxHeaders = 64
)

// limit returns n, def for 0, and 0 (no limit) for a negative n.
func limit(n, def int) int {
	switch {
	case n == 0:
		return def
	case n < 0:
		return 0
	}
	return n
}

// DecodeRecord is Decode for a Kafka record, after checking the record
// against the limits: a record larger than MaxRecordBytes (key, value and
// headers together) or with more than MaxHeaders headers is an *InputError
// of class too_large or too_many_headers, and its value is not read at all.
// A hostile or broken producer cannot make one record cost more than the
// limits in decoding, or copy more than them into an output.
func (c *Codec) DecodeRecord(r *kgo.Record) (*Event, error) {
	ev := new(Event)
	if err := c.decodeRecord(ev, r); err != nil {
		return nil, err
	}
	return ev, nil
}

// decodeRecord is DecodeRecord into ev, which the caller may keep on its
// stack.
func (c *Codec) decodeRecord(ev *Event, r *kgo.Record) error {
	if err := c.checkLimits(r); err != nil {
		return err
	}
	return c.decode(ev, r.Value, r.Timestamp)
}

// checkLimits returns the *InputError for a record beyond the limits, or nil.
func (c *Codec) checkLimits(r *kgo.Record) error {
	if c.maxRecordBytes > 0 {
		headerBytes := 0
		for _, h := range r.Headers {
			headerBytes += len(h.Key) + len(h.Value)
		}
		if size := len(r.Key) + len(r.Value) + headerBytes; size > c.maxRecordBytes {
			return &InputError{Class: ClassTooLarge, Reason: fmt.Sprintf(
				"the record is %d bytes (key %d, value %d, headers %d), more than the limit of %d (input.max_record_bytes); "+
					"it was not read, and the dead letter omits its key, value and headers: read them at %s",
				size, len(r.Key), len(r.Value), headerBytes, c.maxRecordBytes, source(r))}
		}
	}
	if c.maxHeaders > 0 && len(r.Headers) > c.maxHeaders {
		return &InputError{Class: ClassTooManyHeaders, Reason: fmt.Sprintf(
			"the record has %d headers, more than the limit of %d (input.max_headers)", len(r.Headers), c.maxHeaders)}
	}
	return nil
}

// withoutPayload is in without its key, value and headers: what a dead
// letter carries when the input's own bytes cannot be written, because the
// record is over MaxRecordBytes or because the dead-letter topic refused
// them. Topic, partition, offset and timestamp stay, so the dead letter's
// twosell-source still locates the input.
func withoutPayload(in *kgo.Record) *kgo.Record {
	return &kgo.Record{
		Topic:       in.Topic,
		Partition:   in.Partition,
		Offset:      in.Offset,
		Timestamp:   in.Timestamp,
		LeaderEpoch: in.LeaderEpoch,
	}
}

// hasPayload reports whether in has bytes of its own that a dead letter
// copies.
func hasPayload(in *kgo.Record) bool {
	return len(in.Key) > 0 || len(in.Value) > 0 || len(in.Headers) > 0
}

// omittedPayload says, in a dead letter's reason, why the input's bytes are
// missing and where they are.
func omittedPayload(in *kgo.Record, err error) string {
	return fmt.Sprintf("the dead letter omits the input's key, value and headers, which Kafka refused (%v); read them at %s",
		err, source(in))
}
