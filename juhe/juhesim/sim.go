package juhesim

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twosell/twosell/juhe"
)

// Config configures a Sim. Only Keys is required.
type Config struct {
	// Keys are the account keys the simulator accepts; any other key is
	// answered 10001. At least one non-empty key is required.
	Keys []string
	// OpenID is the account's openid, from which the AES modes' key is
	// derived (juhe.AESKey). The empty string is an openid like any other.
	OpenID string
	// Population is how many sample mobiles (see Population) are indexed for
	// the digest modes at start: 0 means DefaultPopulation, a negative value
	// none.
	Population int
	// Seed seeds the PRNG of the jitter and the error rates.
	Seed int64
	// Now is the simulator's clock, read for order ids and by the rate
	// limiters; nil means time.Now. A fixed clock makes the limiters exact:
	// no token is refilled, so a burst of n requests is answered the same way
	// on every run.
	Now func() time.Time
	// Faults are the faults in force from the start; see SetFaults.
	Faults Faults
}

// Sim is the juhe two-sell simulator, an http.Handler. It is safe for
// concurrent use; its faults can be changed while it serves.
type Sim struct {
	keys     map[string]struct{}
	aesBlock cipher.Block // AES-128 under juhe.AESKey(openid)
	now      func() time.Time

	faults atomic.Pointer[faultState]

	rngMu sync.Mutex
	rng   *rand.Rand

	orders atomic.Uint64 // the order id counter

	// The digest index: mobiles by their md5 and sha256 digests, kept as
	// arrays rather than hex strings, which cost allocations and hashing.
	// A number is indexed when a digest is first looked up after it was
	// seen, not when it is seen: most requests are plaintext, and hashing
	// each number twice on arrival was 7% of the simulator's CPU in
	// "twosell bench", spent on the cores it measures twosell on.
	idxMu    sync.Mutex
	seen     map[string]struct{} // every valid mobile seen or registered
	pending  []string            // of seen, those not yet in the digest maps
	byMD5    map[[md5.Size]byte]string
	bySHA256 map[[sha256.Size]byte]string

	stats stats
}

// New returns a simulator configured by cfg, with its population indexed.
// It fails when cfg has no key or cfg.Faults does not pass Validate.
func New(cfg Config) (*Sim, error) {
	keys := make(map[string]struct{}, len(cfg.Keys))
	for _, k := range cfg.Keys {
		if k = strings.TrimSpace(k); k != "" {
			keys[k] = struct{}{}
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("juhesim: no key configured: a simulator that accepts no key answers every request 10001")
	}
	if err := cfg.Faults.Validate(); err != nil {
		return nil, errors.New("juhesim: faults: " + err.Error())
	}
	block, err := aes.NewCipher(juhe.AESKey(cfg.OpenID))
	if err != nil {
		panic(err) // cannot happen: AESKey is 16 bytes
	}
	s := &Sim{
		keys:     keys,
		aesBlock: block,
		now:      cfg.Now,
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), 0x74776f73656c6c21)),
		seen:     make(map[string]struct{}),
		byMD5:    make(map[[md5.Size]byte]string),
		bySHA256: make(map[[sha256.Size]byte]string),
		stats:    newStats(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	n := cfg.Population
	if n == 0 {
		n = DefaultPopulation
	}
	s.Register(Population(n)...)
	s.faults.Store(newFaultState(cfg.Faults))
	return s, nil
}

// SetFaults replaces the faults in force, for the requests that arrive from
// now on. It restarts the count of Faults.AfterRequests and the rate
// limiters' buckets. If f does not pass Validate, it changes nothing and
// returns the error.
func (s *Sim) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.faults.Store(newFaultState(f))
	return nil
}

// Faults returns a copy of the faults in force.
func (s *Sim) Faults() Faults {
	return s.faults.Load().f.clone()
}

// Register adds mobiles to the numbers whose md5 and sha256 digests the
// simulator can answer for. Values that are not valid mobiles are ignored:
// the provider has no record of them either.
func (s *Sim) Register(mobiles ...string) {
	for _, m := range mobiles {
		s.learn(m)
	}
}

// learn notes mobile, if it is valid and new, for the digest index.
func (s *Sim) learn(mobile string) {
	if !juhe.ValidMobile(mobile) {
		return
	}
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	if _, known := s.seen[mobile]; known {
		return
	}
	mobile = strings.Clone(mobile) // not a slice of the request, kept alive by the index
	s.seen[mobile] = struct{}{}
	s.pending = append(s.pending, mobile)
}

// indexPending adds the numbers seen since the last lookup to the digest
// maps. The caller holds idxMu.
func (s *Sim) indexPending() {
	for _, m := range s.pending {
		s.byMD5[md5.Sum([]byte(m))] = m
		s.bySHA256[sha256.Sum256([]byte(m))] = m
	}
	clear(s.pending)
	s.pending = s.pending[:0]
}

// lookup returns the mobile whose digest is digest, if the simulator knows
// it. digest is the lowercase hex of an md5 or sha256 digest.
func (s *Sim) lookup(digest string) (string, bool) {
	var md5Sum [md5.Size]byte
	var shaSum [sha256.Size]byte
	var sum []byte
	switch len(digest) {
	case 2 * md5.Size:
		sum = md5Sum[:]
	case 2 * sha256.Size:
		sum = shaSum[:]
	default:
		return "", false
	}
	if _, err := hex.Decode(sum, []byte(digest)); err != nil {
		return "", false
	}
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	s.indexPending()
	if len(sum) == md5.Size {
		m, ok := s.byMD5[md5Sum]
		return m, ok
	}
	m, ok := s.bySHA256[shaSum]
	return m, ok
}

// float64 draws from the seeded PRNG; math/rand's Rand is not safe for
// concurrent use.
func (s *Sim) float64() float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64()
}

// int64N draws from the seeded PRNG a value in [0, n).
func (s *Sim) int64N(n int64) int64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Int64N(n)
}

// Paths of the admin endpoints.
const (
	pathFaults = "/sim/faults"
	pathStats  = "/sim/stats"
)

// ServeHTTP serves the provider's two endpoints and the admin endpoints
// (see the package documentation); any other path is answered 404.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case juhe.PathQuery:
		s.serveQuery(w, r, false)
	case juhe.PathQueryEncry:
		s.serveQuery(w, r, true)
	case pathFaults:
		s.serveFaults(w, r)
	case pathStats:
		s.serveStats(w, r)
	default:
		http.NotFound(w, r)
	}
}
