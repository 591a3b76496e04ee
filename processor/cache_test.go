package processor

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMobileKey(t *testing.T) {
	t.Parallel()
	a := HashMobile([]byte("secret-a"), "17312345678")
	if a != HashMobile([]byte("secret-a"), "17312345678") {
		t.Fatal("the key is not stable")
	}
	if a == HashMobile([]byte("secret-b"), "17312345678") || a == HashMobile([]byte("secret-a"), "17312345679") {
		t.Fatal("another secret or number gives the same key")
	}
	s := a.String()
	if len(s) != 64 || strings.Contains(s, "12345678") {
		t.Fatalf("key %q", s)
	}
	if back, ok := parseMobileKey(s); !ok || back != a {
		t.Fatalf("parse %q: %v %v", s, back, ok)
	}
	for _, bad := range []string{"", "zz", s[:62], s + "00"} {
		if _, ok := parseMobileKey(bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
	// The pooled hasher is safe for concurrent use.
	h := newMobileHasher([]byte("secret-a"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if h.key("17312345678") != a {
					t.Error("concurrent hashing differs")
					return
				}
			}
		})
	}
	wg.Wait()
}

// A memo of keys gives the HMAC of every number, remembered or forgotten
// (numbers that share a set take it in turn), and remembers the last two
// of a set.
func TestMobileKeyMemo(t *testing.T) {
	t.Parallel()
	secret := []byte("secret-a")
	want := func(mobile string) MobileKey { // the key by its definition, apart from the hasher
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(mobile))
		return MobileKey(m.Sum(nil))
	}
	h := newMobileHasher(secret)
	var m keyMemo
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20 * keyMemoSlots {
		mobile := fmt.Sprintf("173%08d", r.IntN(2*keyMemoSlots)) // about half remembered
		if got := h.keyIn(&m, mobile); got != want(mobile) {
			t.Fatalf("lookup %d: key of %s differs from its HMAC", i, mobile)
		}
		if i%1000 == 0 && (h.key(mobile) != want(mobile) || HashMobile(secret, mobile) != want(mobile)) {
			t.Fatalf("key without the memo of %s differs from its HMAC", mobile)
		}
	}
	hits := 0
	for i := range 100 { // a few numbers: nearly all remembered
		mobile := fmt.Sprintf("174%08d", i)
		h.keyIn(&m, mobile)
		id := [2]uint64{maphash.String(m.seeds[0], mobile), maphash.String(m.seeds[1], mobile) | 1}
		if s := m.set(id)[0]; s.id == id && s.key == want(mobile) {
			hits++
		}
	}
	if hits != 100 {
		t.Errorf("%d of 100 numbers remembered just after their key", hits)
	}
	// Two numbers of one set are both remembered.
	idOf := func(mobile string) [2]uint64 {
		return [2]uint64{maphash.String(m.seeds[0], mobile), maphash.String(m.seeds[1], mobile) | 1}
	}
	a, b := "17500000000", ""
	for i := 1; b == ""; i++ {
		if n := fmt.Sprintf("175%08d", i); m.set(idOf(n)) == m.set(idOf(a)) {
			b = n
		}
	}
	h.keyIn(&m, a)
	h.keyIn(&m, b)
	for _, n := range []string{a, b} {
		if set := m.set(idOf(n)); set[0].id != idOf(n) && set[1].id != idOf(n) {
			t.Errorf("%s forgotten after %s, which shares its set", n, map[string]string{a: b, b: a}[n])
		}
	}
	// Another memo (another partition, another process) has other seeds.
	var other keyMemo
	h.keyIn(&other, "17399999999")
	if other.seeds == m.seeds {
		t.Error("two memos share their seeds")
	}
	if h.keyIn(nil, "17399999999") != want("17399999999") {
		t.Error("key without a memo")
	}
}

// The cost of a number's key in a dispatcher's memo: remembered (a stream
// of a few numbers), and not (a stream of many more numbers than it holds).
func BenchmarkMobileKey(b *testing.B) {
	for _, numbers := range []int{100, 1_000_000} {
		b.Run(fmt.Sprint(numbers, " numbers"), func(b *testing.B) {
			h := newMobileHasher([]byte("s"))
			var m keyMemo
			ms := make([]string, numbers)
			for i := range ms {
				ms[i] = fmt.Sprintf("173%08d", i)
			}
			r := rand.New(rand.NewPCG(1, 2))
			order := make([]int32, 1<<20)
			for i := range order {
				order[i] = int32(r.IntN(numbers))
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				h.keyIn(&m, ms[order[i&(len(order)-1)]])
				i++
			}
		})
	}
}

func TestKnowledgeCacheEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	c := newKnowledgeCache(3)
	key := func(i int) MobileKey { return HashMobile([]byte("s"), fmt.Sprintf("173000000%02d", i)) }
	for i := range 3 {
		c.observe(key(i), fact(FactAfter, "20200101", t0, "JH"))
	}
	c.get(key(0)) // 0 is now the most recently used; 1 the least
	c.observe(key(3), fact(FactAfter, "20200101", t0, "JH"))
	if _, ok := c.get(key(1)); ok {
		t.Error("the least recently used entry was kept")
	}
	for _, i := range []int{0, 2, 3} {
		if _, ok := c.get(key(i)); !ok {
			t.Errorf("entry %d was evicted", i)
		}
	}
	if n, ev := c.stats(); n != 3 || ev != 1 {
		t.Errorf("entries %d, evictions %d; want 3, 1", n, ev)
	}
	// Knowledge that teaches nothing makes no entry.
	if _, changed := c.merge(key(9), Knowledge{}); changed {
		t.Error("empty knowledge changed the cache")
	}
	if n, _ := c.stats(); n != 3 {
		t.Errorf("entries %d after an empty merge", n)
	}
}

// What an entry costs in memory, for the README's sizing of
// cache.max_entries.
func TestKnowledgeCacheEntrySize(t *testing.T) {
	if testing.Short() {
		t.Skip("measures memory")
	}
	const n = 100_000
	c := newKnowledgeCache(n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		k := HashMobile([]byte("s"), fmt.Sprintf("1730%07d", i))
		c.observe(k, Fact{Kind: FactAfter, Date: "20200101", OrderID: fmt.Sprintf("JH3272024010203040%05d", i), Mode: "plain", At: t0})
		c.observe(k, Fact{Kind: FactNotAfter, Date: "20230101", OrderID: fmt.Sprintf("JH3272024010203050%05d", i), Mode: "plain", At: t0})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("about %.0f bytes per mobile with two bounds", per)
	if per > 600 {
		t.Errorf("%.0f bytes per entry; the README says about 400", per)
	}
	runtime.KeepAlive(c)
}

// A large cache is sharded; its bound still holds over all the shards.
func TestKnowledgeCacheShardedBound(t *testing.T) {
	t.Parallel()
	const max = cacheShards*minShardEntries + 7
	c := newKnowledgeCache(max)
	if len(c.shards) != cacheShards {
		t.Fatalf("%d shards, want %d", len(c.shards), cacheShards)
	}
	for i := range 2 * max {
		c.observe(HashMobile([]byte("s"), fmt.Sprintf("173%08d", i)), fact(FactAfter, "20200101", t0, "JH"))
	}
	if n, ev := c.stats(); n > max || n < max-cacheShards*8 || ev != int64(2*max-n) {
		t.Errorf("entries %d, evictions %d; want about %d entries, never more", n, ev, max)
	}
}

// TestPackedAnswerIsKnowledgeAnswer: the cache answers on its packed form
// what Knowledge.Answer answers on the unpacked one, and asks the clock
// only when a fact that expires could answer.
func TestPackedAnswerIsKnowledgeAnswer(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ttl := KnowledgeTTL{NotRecycled: 7 * 24 * time.Hour, Short: time.Hour}
	days := []string{"20240101", "20240315", "20240316", "20250101"}
	ats := []time.Time{{}, base.Add(-8 * 24 * time.Hour), base.Add(-7 * 24 * time.Hour), base.Add(-2 * time.Hour), base.Add(-time.Hour), base}
	rng := rand.New(rand.NewPCG(1, 2))
	fact := func(kinds ...FactKind) Fact {
		k := kinds[rng.IntN(len(kinds))]
		if k == 0 {
			return Fact{}
		}
		return Fact{Kind: k, Date: days[rng.IntN(len(days))], OrderID: fmt.Sprint(rng.IntN(1000)), Mode: "md5", At: ats[rng.IntN(len(ats))]}
	}
	for range 20000 {
		k := Knowledge{Lower: fact(0, FactAfter), Upper: fact(0, FactNotAfter), Short: fact(0, FactNoActivationDate, FactNoRecord)}
		now := base.Add(time.Duration(rng.IntN(3)-1) * time.Minute)
		for _, long := range []bool{false, true} {
			ttl := ttl
			if long {
				ttl.NotRecycled = time.Duration(math.MaxInt64) // past the nanoseconds' range
			}
			for _, day := range days {
				want, wantOK := k.Answer(day, now, ttl)
				asked := false
				p := pack(k)
				d, _ := packDay(day)
				got, ok := p.answer(d, func() time.Time { asked = true; return now }, ttl)
				if ok != wantOK || ok && !reflect.DeepEqual(got, want) {
					t.Fatalf("%+v at %v, ttl %v, asked %s: packed %v %+v, want %v %+v", k, now, ttl, day, ok, got, wantOK, want)
				}
				if expires := k.Short.Kind != 0 || k.Upper.Kind != 0 && day >= k.Upper.Date; asked && !expires {
					t.Fatalf("%+v asked %s: the clock was read, with no fact that expires to answer", k, day)
				}
			}
		}
	}
	for _, s := range []string{"2024010", "202401011", "2024-1-01", "2024010a", ""} {
		if _, ok := packDay(s); ok {
			t.Errorf("packDay(%q) ok, want not a day", s)
		}
	}
}

// In a sharded cache, an entry used again soon stays where it is in its
// shard (touch), and the bound still evicts only entries that no fewer
// than three quarters of the shard's entries were used or added after:
// against the exact order, a quarter of the shard at most.
func TestKnowledgeCacheLazyRecencyEvictsOnlyTheLongUnused(t *testing.T) {
	t.Parallel()
	const max = cacheShards * minShardEntries
	c := newKnowledgeCache(max)
	sh := &c.shards[0]
	if len(c.shards) != cacheShards || sh.max != minShardEntries || sh.lazy != minShardEntries/4 {
		t.Fatalf("%d shards of %d, lazy %d", len(c.shards), sh.max, sh.lazy)
	}
	// Numbers whose keys fall in the first shard.
	keys := make([]MobileKey, 0, 2*minShardEntries)
	for i := 0; len(keys) < cap(keys); i++ {
		if k := HashMobile([]byte("s"), fmt.Sprintf("173%08d", i)); c.shard(k) == sh {
			keys = append(keys, k)
		}
	}
	key := func(i int) MobileKey { return keys[i] }

	c.observe(key(0), fact(FactAfter, "20200101", t0, "JH"))
	c.observe(key(1), fact(FactAfter, "20200101", t0, "JH"))
	front := sh.ll.Front()
	c.get(key(0))
	if sh.ll.Front() != front {
		t.Fatal("an entry used right after it was added moved to the front")
	}

	rng := rand.New(rand.NewPCG(5, 6))
	last := map[int]uint64{} // a key's last use or addition, in the shard's uses
	present := map[int]bool{0: true, 1: true}
	last[0], last[1] = sh.uses, sh.uses-1
	evictions := int64(0)
	for range 8 * minShardEntries {
		i := rng.IntN(len(keys))
		if present[i] {
			if _, ok := c.get(key(i)); !ok {
				t.Fatalf("entry %d is gone without an eviction", i)
			}
			last[i] = sh.uses
			continue
		}
		c.observe(key(i), fact(FactAfter, "20200101", t0, "JH"))
		present[i], last[i] = true, sh.uses
		if _, ev := c.stats(); ev == evictions {
			continue
		} else {
			evictions = ev
		}
		for j := range present {
			if _, ok := sh.byKey[key(j)]; ok {
				continue
			}
			delete(present, j)
			if since := sh.uses - last[j]; since < 3*minShardEntries/4 {
				t.Fatalf("entry %d evicted %d uses after its last, under three quarters of %d", j, since, minShardEntries)
			}
		}
	}
	if evictions == 0 {
		t.Fatal("nothing was evicted")
	}
	if n := sh.ll.Len(); n != minShardEntries {
		t.Fatalf("the shard holds %d entries, want %d", n, minShardEntries)
	}
}

// A cache of one shard, however large, is an exact LRU, as README says:
// one of 1,024 to 65,535 entries kept a number used after another, and
// evicted it first (found by review).
func TestKnowledgeCacheOfOneShardIsAnExactLRU(t *testing.T) {
	t.Parallel()
	const max = 4096
	c := newKnowledgeCache(max)
	if len(c.shards) != 1 {
		t.Fatalf("%d shards for a cache of %d", len(c.shards), max)
	}
	key := func(i int) MobileKey { return HashMobile([]byte("s"), fmt.Sprintf("173%08d", i)) }
	add := func(i int) { c.observe(key(i), fact(FactAfter, "20200101", t0, "JH")) }
	add(0)
	add(1)
	if _, ok := c.get(key(0)); !ok { // 0 is now more recently used than 1
		t.Fatal("entry 0 missing")
	}
	for i := 2; i <= max; i++ { // the last one evicts the least recently used: 1
		add(i)
	}
	_, has0 := c.get(key(0))
	_, has1 := c.get(key(1))
	if !has0 || has1 {
		t.Fatalf("kept 0: %v, 1: %v; an exact LRU evicts 1 and keeps 0", has0, has1)
	}
}
