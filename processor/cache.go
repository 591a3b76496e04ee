package processor

import (
	"container/list"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/maphash"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MobileKey is a keyed hash of a mobile number: HMAC-SHA256 with a
// configured secret. The knowledge cache and the ledger know numbers only by
// it, so that neither holds a number: without the secret, even the 10^10
// possible numbers cannot be tried against a key.
type MobileKey [sha256.Size]byte

// String returns the key in lowercase hex, as the ledger writes it.
func (k MobileKey) String() string { return hex.EncodeToString(k[:]) }

// parseMobileKey is the inverse of String.
func parseMobileKey(s string) (MobileKey, bool) {
	var k MobileKey
	if hex.DecodedLen(len(s)) != len(k) {
		return k, false
	}
	_, err := hex.Decode(k[:], []byte(s))
	return k, err == nil
}

// mobileHasher computes MobileKeys. An HMAC is not safe for concurrent use,
// so each goroutine takes one from a pool.
type mobileHasher struct{ pool sync.Pool }

type pooledHMAC struct {
	h   hash.Hash
	buf []byte
	sum []byte // Sum's output: a MobileKey passed to Sum would escape to the heap
}

func newMobileHasher(secret []byte) *mobileHasher {
	secret = append([]byte(nil), secret...)
	return &mobileHasher{pool: sync.Pool{New: func() any {
		return &pooledHMAC{h: hmac.New(sha256.New, secret), buf: make([]byte, 0, 16), sum: make([]byte, 0, sha256.Size)}
	}}}
}

// key returns the MobileKey of mobile.
func (h *mobileHasher) key(mobile string) MobileKey {
	p := h.pool.Get().(*pooledHMAC)
	p.buf = append(p.buf[:0], mobile...)
	p.h.Write(p.buf)
	p.sum = p.h.Sum(p.sum[:0])
	var k MobileKey
	copy(k[:], p.sum)
	// Nothing of the number stays in the pooled HMAC.
	p.h.Reset()
	clear(p.buf)
	h.pool.Put(p)
	return k
}

// keyIn is key, remembered in m (if not nil) for the next time.
func (h *mobileHasher) keyIn(m *keyMemo, mobile string) MobileKey {
	if m == nil {
		return h.key(mobile)
	}
	if m.slots == nil {
		m.seeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
		m.slots = make([]keyMemoSlot, keyMemoSlots)
	}
	id := [2]uint64{maphash.String(m.seeds[0], mobile), maphash.String(m.seeds[1], mobile) | 1}
	set := m.set(id)
	if set[0].id == id {
		return set[0].key
	}
	if set[1].id == id {
		return set[1].key
	}
	k := h.key(mobile)
	set[1], set[0] = set[0], keyMemoSlot{id: id, key: k}
	return k
}

// set returns the two slots a number known by id may be in.
func (m *keyMemo) set(id [2]uint64) *[2]keyMemoSlot {
	i := 2 * (id[0] % (keyMemoSlots / 2))
	return (*[2]keyMemoSlot)(m.slots[i : i+2])
}

// keyMemo remembers the keys of the numbers a partition's dispatcher saw
// lately, so that a number seen again is not hashed again (the HMAC was two
// thirds of the CPU of an answer from knowledge): a table of sets of two
// slots, each set the last two numbers hashed into it (direct-mapped, a
// tenth of a stream of 100 numbers shared a slot with another and missed
// it every time). One goroutine uses it: no lock,
// no atomics, so that a number it does not hold (a stream of many more
// numbers than it holds) costs little more than the HMAC.
//
// It knows a number by two 64-bit hashes of it under random seeds
// (hash/maphash), not by the number: as the cache, it holds none. Two
// numbers whose two hashes are both alike, the one way it could give a
// wrong key, are about as likely as guessing 127 random bits.
type keyMemo struct {
	seeds [2]maphash.Seed
	slots []keyMemoSlot // made at the first key
}

// keyMemoSlots is the size of a dispatcher's memo: 48 KB.
const keyMemoSlots = 1024

type keyMemoSlot struct {
	id  [2]uint64 // the second half is never 0, which an empty slot has
	key MobileKey
}

// HashMobile returns the MobileKey of mobile under secret, as the cache and
// the ledger compute it.
func HashMobile(secret []byte, mobile string) MobileKey { return newMobileHasher(secret).key(mobile) }

// knowledgeCache is a size-bounded map from MobileKey to Knowledge that
// evicts least recently used entries. It is safe for concurrent use.
//
// A large cache is split into shards by the key's first byte (the keys are
// HMACs: uniform), each its own LRU with its own lock, so that the
// partitions' dispatchers, which look up every record, do not queue on one
// lock. Eviction is then least recently used within a shard.
type knowledgeCache struct {
	shards []cacheShard
}

type cacheShard struct {
	mu        sync.Mutex
	max       int
	ll        *list.List // of *cacheEntry, most recently used first
	byKey     map[MobileKey]*list.Element
	evictions int64
	answers   [FactNoRecord + 1]int64 // by kind (answer)
	// uses counts the entries used; an entry moves to the front only when
	// more than lazy uses came since it last did (touch).
	uses, lazy uint64
	_          [64]byte // keeps neighbouring shards' locks off one cache line
}

// cacheShards is the number of shards of a cache of at least
// cacheShards*minShardEntries entries; a smaller cache is one exact LRU.
const (
	cacheShards     = 64
	minShardEntries = 1024
)

type cacheEntry struct {
	key   MobileKey
	moved uint64 // the shard's uses when it last moved to the front
	k     packedKnowledge
	// written, if set, is the ledger write of a call paid for this mobile
	// that may still be in flight: an answer from the entry is written once
	// it is done (Result.durable), as the call's own answer is. Answered at
	// once, a retried transaction's record committed the answer, and the
	// offset, before the ledger held the call it cites (found by review).
	written *durable
}

// packedKnowledge is Knowledge as the cache keeps it: a third of the size
// (dates and modes as small numbers, times as nanoseconds), so that a
// million mobiles fit in about 300 MB (measured: 308 MB of heap, each with
// a res 1 and a res 2; the tighter upper bounds, which few numbers have,
// are kept apart, and cost 15 MB when none has them).
type packedKnowledge struct {
	lower, upper, short   packedFact
	tighter               *[maxUppers - 1]packedFact // nil: none (most numbers)
	boundsAt, staleBefore int64
}

type packedFact struct {
	orderID string
	at      int64 // unix nanoseconds; noTime for the zero time
	date    int32 // yyyymmdd
	kind    FactKind
	mode    uint8 // index in modeNames
}

// noTime packs the zero time.Time.
const noTime = math.MinInt64

func packTime(t time.Time) int64 {
	switch {
	case t.IsZero():
		return noTime
	case t.Before(minPackedTime):
		// UnixNano wraps outside 1678–2262: a ledger record's time of
		// 1600 came out as 2184, and its fact answered until then (found
		// by review). Clamped, it stays as old, or as new, as it was.
		return noTime + 1
	case t.After(maxPackedTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// The times packTime keeps as they are.
var (
	minPackedTime = time.Unix(0, noTime+1)
	maxPackedTime = time.Unix(0, math.MaxInt64)
)

func unpackTime(n int64) time.Time {
	if n == noTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func pack(k Knowledge) packedKnowledge {
	return packedKnowledge{lower: packFact(k.Lower), upper: packFact(k.Upper), short: packFact(k.Short),
		tighter: packTighter(k.Tighter), boundsAt: packTime(k.BoundsAt), staleBefore: packTime(k.StaleBefore)}
}

// answer is Knowledge.Answer of a day (yyyyMMdd) on the packed form: the
// cache answers most records, and unpacking every fact, and reading the
// clock, took a tenth of the CPU of a record answered from it. It unpacks
// the answering fact alone, and asks now only for a fact that expires.
func (p *packedKnowledge) answer(day int32, now func() time.Time, ttl KnowledgeTTL) (Fact, bool) {
	if f := p.answering(day, now, ttl); f != nil {
		return f.unpack(), true
	}
	return Fact{}, false
}

// answering returns the fact that answers day (answer), or nil.
func (p *packedKnowledge) answering(day int32, now func() time.Time, ttl KnowledgeTTL) *packedFact {
	var t int64 // now, in unix nanoseconds, once asked
	live := func(at int64, ttl time.Duration) bool {
		if t == 0 {
			t = packTime(now())
		}
		return at != noTime && t < at+int64(ttl) || at > 0 && at > math.MaxInt64-int64(ttl)
	}
	switch {
	case p.short.kind != 0 && live(p.short.at, ttl.Short):
		return &p.short
	case p.lower.kind != 0 && day <= p.lower.date:
		return &p.lower
	case p.upper.kind != 0 && day >= p.upper.date && live(p.upper.at, ttl.NotRecycled):
		return &p.upper
	case p.tighter != nil:
		for i := range p.tighter {
			if u := &p.tighter[i]; u.kind != 0 && day >= u.date && live(u.at, ttl.NotRecycled) {
				return u
			}
		}
	}
	return nil
}

// answerResult is answerDay writing the answer's Result to r (Fact.Result),
// without building the Fact: the cache answers most records. It returns
// the answering fact's kind, or 0 when nothing known answers.
func (p *packedKnowledge) answerResult(day int32, date string, now func() time.Time, ttl KnowledgeTTL, r *Result) FactKind {
	if day == 0 {
		f, ok := p.answerDay(day, date, now, ttl)
		if !ok {
			return 0
		}
		*r = f.Result()
		return f.Kind
	}
	f := p.answering(day, now, ttl)
	if f == nil {
		return 0
	}
	r.setCache(f.kind, f.orderID, modeName(f.mode))
	return f.kind
}

// answerDay is answer of a date as a Lookup has it: a day (yyyyMMdd), its
// number already read (dayOf), or anything else (day 0), which
// Knowledge.Answer reads.
func (p *packedKnowledge) answerDay(day int32, date string, now func() time.Time, ttl KnowledgeTTL) (Fact, bool) {
	if day != 0 {
		return p.answer(day, now, ttl)
	}
	k := p.unpack()
	return k.Answer(date, now(), ttl)
}

// dayOf is packDay's number, or 0 if s is not a day.
func dayOf(s string) int32 {
	d, _ := packDay(s)
	return d
}

// packDay returns s, a day as yyyyMMdd, as a number.
func packDay(s string) (int32, bool) {
	if len(s) != 8 {
		return 0, false
	}
	d, ok := atoi([]byte(s))
	return int32(d), ok
}

func (p *packedKnowledge) unpack() Knowledge {
	k := Knowledge{Lower: p.lower.unpack(), Upper: p.upper.unpack(), Short: p.short.unpack(),
		BoundsAt: unpackTime(p.boundsAt), StaleBefore: unpackTime(p.staleBefore)}
	if p.tighter != nil {
		for i := range p.tighter {
			k.Tighter[i] = p.tighter[i].unpack()
		}
	}
	return k
}

// packTighter packs the tighter upper bounds, nil when there is none.
func packTighter(fs [maxUppers - 1]Fact) *[maxUppers - 1]packedFact {
	if fs[0].Kind == 0 {
		return nil
	}
	var p [maxUppers - 1]packedFact
	for i, f := range fs {
		p[i] = packFact(f)
	}
	return &p
}

func packFact(f Fact) packedFact {
	if f.Kind == 0 {
		return packedFact{}
	}
	d, _ := strconv.ParseInt(f.Date, 10, 32)
	return packedFact{orderID: f.OrderID, at: packTime(f.At), date: int32(d), kind: f.Kind, mode: modeIndex(f.Mode)}
}

func (p *packedFact) unpack() Fact {
	if p.kind == 0 {
		return Fact{}
	}
	return Fact{Kind: p.kind, Date: dayName(p.date), OrderID: p.orderID, Mode: modeName(p.mode), At: unpackTime(p.at)}
}

// Names of days and modes, interned, so that a cache answer allocates none.
// Read on every cache answer by every partition's dispatcher, so reads take
// no lock: a sync.Map and an RWMutex here cost the cache-heavy bench 4% of
// its CPU.
var (
	dayNames  [1024]atomic.Pointer[dayNameEntry] // direct-mapped by the day's number
	modesMu   sync.Mutex                         // serializes the writers of modeNames
	modeNames atomic.Pointer[[]string]           // copied on write; index 0 is ""
)

type dayNameEntry struct {
	d int32
	s string
}

func init() { modeNames.Store(&[]string{""}) }

func modeIndex(m string) uint8 {
	if i, ok := findMode(*modeNames.Load(), m); ok {
		return i
	}
	modesMu.Lock()
	defer modesMu.Unlock()
	names := *modeNames.Load()
	if i, ok := findMode(names, m); ok {
		return i
	}
	if len(names) > math.MaxUint8 {
		return 0 // not a mode: forgotten rather than grown without bound
	}
	grown := append(slices.Clip(names), strings.Clone(m))
	modeNames.Store(&grown)
	return uint8(len(grown) - 1)
}

func findMode(names []string, m string) (uint8, bool) {
	for i, n := range names {
		if n == m {
			return uint8(i), true
		}
	}
	return 0, false
}

func modeName(i uint8) string {
	if names := *modeNames.Load(); int(i) < len(names) {
		return names[i]
	}
	return ""
}

// dayName returns d (yyyyMMdd) as a string. A slot holds the last day that
// mapped to it: the days a stream asks about are few and mostly recent.
func dayName(d int32) string {
	slot := &dayNames[uint32(d)%uint32(len(dayNames))]
	if e := slot.Load(); e != nil && e.d == d {
		return e.s
	}
	s := fmt.Sprintf("%08d", d)
	slot.Store(&dayNameEntry{d, s})
	return s
}

func newKnowledgeCache(max int) *knowledgeCache {
	n := 1
	if max >= cacheShards*minShardEntries {
		n = cacheShards
	}
	c := &knowledgeCache{shards: make([]cacheShard, n)}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.max = max / n
		if i < max%n {
			sh.max++ // the shards' bounds add up to max
		}
		sh.ll, sh.byKey = list.New(), make(map[MobileKey]*list.Element)
		if n > 1 { // a smaller cache is one exact LRU (found by review: one of 1,024-65,535 entries was not)
			sh.lazy = uint64(sh.max / 4)
		}
	}
	return c
}

func (c *knowledgeCache) shard(key MobileKey) *cacheShard {
	return &c.shards[int(key[0])%len(c.shards)]
}

// get returns what is known about key, marking it recently used.
func (c *knowledgeCache) get(key MobileKey) (Knowledge, bool) {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.lookup(key)
}

// lookup returns what the shard knows about key, marking it recently used.
// The caller holds sh.mu.
func (sh *cacheShard) lookup(key MobileKey) (Knowledge, bool) {
	ent, ok := sh.entry(key)
	if !ok {
		return Knowledge{}, false
	}
	return ent.k.unpack(), true
}

// entry returns key's entry, marking it recently used. The caller holds
// sh.mu.
func (sh *cacheShard) entry(key MobileKey) (*cacheEntry, bool) {
	e, ok := sh.byKey[key]
	if !ok {
		return nil, false
	}
	return sh.touch(e), true
}

// touch marks e recently used. In a sharded cache (each shard at least
// minShardEntries), an entry used again within a quarter of the shard's
// uses since it last moved to the front stays where it is: it is still
// among the quarter of the entries nearest the front, and so is evicted at
// most a quarter of the shard's insertions before an exact LRU would evict
// it. Moving it on every use was 2-3% of the cache-warm bench's CPU (its
// list's pointers, under the shard's lock, for an answer from a few
// loads). A cache of one shard is an exact LRU.
func (sh *cacheShard) touch(e *list.Element) *cacheEntry {
	ent := e.Value.(*cacheEntry)
	sh.uses++
	if sh.uses-ent.moved > sh.lazy {
		sh.ll.MoveToFront(e)
		ent.moved = sh.uses
	}
	return ent
}

// answer writes to r the answer to date that what is known about key
// implies at the time now returns, if it implies one, marking the entry
// recently used, and counts the answer by its kind. It asks now only if a
// fact that expires could answer.
func (c *knowledgeCache) answer(key MobileKey, date string, now func() time.Time, ttl KnowledgeTTL, r *Result) bool {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ent, ok := sh.entry(key)
	if !ok {
		return false
	}
	kind := ent.k.answerResult(dayOf(date), date, now, ttl, r)
	if kind == 0 {
		return false
	}
	if d := ent.written; d != nil {
		if d.isDone() {
			ent.written = nil
		} else {
			r.durable = d
		}
	}
	// Counted here, under the shard's lock, rather than in counters that
	// every dispatcher would share: cache answers are most of a replay's
	// records.
	sh.answers[kind]++
	return true
}

// peek returns what is known about key, packed, marking it recently used,
// for answering many dates without the shard's lock (answerDay); count
// counts the answers given from it.
func (c *knowledgeCache) peek(key MobileKey) (_ packedKnowledge, written *durable, _ bool) {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ent, ok := sh.entry(key)
	if !ok {
		return packedKnowledge{}, nil, false
	}
	if d := ent.written; d != nil && !d.isDone() {
		written = d
	}
	return ent.k, written, true
}

// count adds answers given from what peek returned for key, by kind.
func (c *knowledgeCache) count(key MobileKey, n *[FactNoRecord + 1]int64) {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for k, a := range n {
		sh.answers[k] += a
	}
}

// answers returns the answers given so far, by kind.
func (c *knowledgeCache) answers() (n [FactNoRecord + 1]int64) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for k, a := range sh.answers {
			n[k] += a
		}
		sh.mu.Unlock()
	}
	return n
}

// observe merges a fact into what is known about key and returns the
// result.
func (c *knowledgeCache) observe(key MobileKey, f Fact) Knowledge {
	var other Knowledge
	other.Observe(f)
	k, _ := c.merge(key, other)
	return k
}

// observeWriting is observe of this instance's own paid answer, whose
// ledger write is d (nil: none),
// noted in key's entry under the same lock: the answers the entry gives
// are written once d is done (cacheEntry.written). Noted after the fact,
// under a lock of its own, an answer from the entry in between was written
// at once, citing a paid call the ledger might never hold.
//
// f is this instance's own paid answer, the provider's latest word: it is
// taken as newer than everything known of key, which was learnt before it
// was given. Another instance's clock may run ahead of this one's, and its
// facts' times with it. (Found by review: a re-issue proven by such an
// instance at a time this clock had not reached made this instance's own
// later answers look older than it; the knowledge refused them, and each
// lookup of the number paid again, the waiters of one call one after
// another, until the clocks met.)
func (c *knowledgeCache) observeWriting(key MobileKey, f Fact, d *durable) Knowledge {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.byKey[key]; ok {
		known := e.Value.(*cacheEntry).k.unpack()
		// A time after this clock's now came from a clock ahead of it
		// (equal times keep the rules' order for ties).
		if newest := known.newest(); newest.After(f.At) {
			f.At = newest.Add(time.Nanosecond)
		}
	}
	var other Knowledge
	other.Observe(f)
	k, _, ent := sh.mergeLocked(key, other)
	if ent != nil && d != nil {
		if ent.written != nil && !ent.written.isDone() {
			d = joinDurable(ent.written, d)
		}
		ent.written = d
	}
	return k
}

// merge merges other into what is known about key and returns the result
// and whether it changed. An entry is created (evicting the least recently
// used one beyond the bound) only when other teaches something.
func (c *knowledgeCache) merge(key MobileKey, other Knowledge) (Knowledge, bool) {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	k, changed, _ := sh.mergeLocked(key, other)
	return k, changed
}

// mergeLocked is merge, which also returns key's entry (nil if there is
// none). The caller holds sh.mu.
func (sh *cacheShard) mergeLocked(key MobileKey, other Knowledge) (Knowledge, bool, *cacheEntry) {
	if e, ok := sh.byKey[key]; ok {
		ent := sh.touch(e)
		k := ent.k.unpack()
		changed := k.Merge(other)
		if changed {
			ent.k = pack(k)
		}
		return k, changed, ent
	}
	var k Knowledge
	k.Merge(other)
	if k.Empty() {
		return k, false, nil
	}
	sh.uses++
	ent := &cacheEntry{key: key, moved: sh.uses, k: pack(k)}
	sh.byKey[key] = sh.ll.PushFront(ent)
	for sh.ll.Len() > sh.max {
		last := sh.ll.Back()
		sh.ll.Remove(last)
		delete(sh.byKey, last.Value.(*cacheEntry).key)
		sh.evictions++
	}
	if _, kept := sh.byKey[key]; !kept { // a bound of 0
		ent = nil
	}
	return k, true, ent
}

// stats returns the number of entries and of evictions so far.
func (c *knowledgeCache) stats() (entries int, evictions int64) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		entries += sh.ll.Len()
		evictions += sh.evictions
		sh.mu.Unlock()
	}
	return entries, evictions
}
