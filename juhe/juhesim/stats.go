package juhesim

import (
	"maps"
	"sync"

	"github.com/twosell/twosell/juhe"
)

// Stats are the simulator's counters since it was created. Only requests to
// the provider's two paths are counted, not those to the admin endpoints.
type Stats struct {
	// Requests counts requests to the API paths, whatever their method.
	Requests int64 `json:"requests"`
	// ByCode counts replies by error_code (0 for success).
	ByCode map[int]int64 `json:"by_code"`
	// ByMode counts requests by the mode of their mobile (plain, md5,
	// sha256, aes, md5+aes, sha256+aes), when one could be told.
	ByMode map[string]int64 `json:"by_mode"`
	// ByMethod counts requests by HTTP method.
	ByMethod map[string]int64 `json:"by_method"`
	// ByOutage counts requests answered by an outage, by kind.
	ByOutage map[string]int64 `json:"by_outage"`
	// Abandoned counts requests whose client gave up during the latency,
	// before any answer.
	Abandoned int64 `json:"abandoned"`
}

// stats guards Stats with a mutex: counters move together, and a snapshot
// must be consistent across them.
type stats struct {
	mu sync.Mutex
	s  Stats
}

func newStats() stats {
	return stats{s: Stats{
		ByCode:   map[int]int64{},
		ByMode:   map[string]int64{},
		ByMethod: map[string]int64{},
		ByOutage: map[string]int64{},
	}}
}

func (st *stats) request(method string) {
	st.mu.Lock()
	st.s.Requests++
	st.s.ByMethod[method]++
	st.mu.Unlock()
}

func (st *stats) code(code int) {
	st.mu.Lock()
	st.s.ByCode[code]++
	st.mu.Unlock()
}

func (st *stats) mode(m juhe.Mode) {
	st.mu.Lock()
	st.s.ByMode[string(m)]++
	st.mu.Unlock()
}

func (st *stats) outage(kind string) {
	st.mu.Lock()
	st.s.ByOutage[kind]++
	st.mu.Unlock()
}

func (st *stats) abandoned() {
	st.mu.Lock()
	st.s.Abandoned++
	st.mu.Unlock()
}

func (st *stats) snapshot() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := st.s
	out.ByCode = maps.Clone(st.s.ByCode)
	out.ByMode = maps.Clone(st.s.ByMode)
	out.ByMethod = maps.Clone(st.s.ByMethod)
	out.ByOutage = maps.Clone(st.s.ByOutage)
	return out
}

// Stats returns a snapshot of the counters.
func (s *Sim) Stats() Stats {
	return s.stats.snapshot()
}
