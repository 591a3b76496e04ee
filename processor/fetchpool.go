package processor

import (
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// fetchPools lends franz-go the buffers fetched batches are decompressed
// into and the slices their records are decoded into, which come back
// once every record of a batch is recycled (kgo.Record.Recycle).
type fetchPools struct {
	bytes, records sync.Pool
	returned       atomic.Int64 // record slices put back: batches whose every record was recycled
}

// GetDecompressBytes guesses 4 times the compressed size for a new buffer;
// a pooled one too small is grown by the decompressor, and the grown one
// comes back.
func (p *fetchPools) GetDecompressBytes(compressed []byte, _ kgo.CompressionCodecType) []byte {
	if b, ok := p.bytes.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 4*len(compressed))
}

func (p *fetchPools) PutDecompressBytes(b []byte) { p.bytes.Put(&b) }

func (p *fetchPools) GetRecords(n int) []kgo.Record {
	if r, ok := p.records.Get().(*[]kgo.Record); ok && cap(*r) >= n {
		return (*r)[:n]
	}
	return make([]kgo.Record, n)
}

func (p *fetchPools) PutRecords(r []kgo.Record) {
	p.returned.Add(1)
	p.records.Put(&r)
}
