package juhesim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// The outage kinds of Faults.Outage.
const (
	OutageNone    = ""        // answer normally
	Outage503     = "503"     // HTTP 503 with a small HTML body, as a gateway does
	OutageHang    = "hang"    // never answer; return only when the client gives up
	OutageGarbage = "garbage" // HTTP 200 with a body that is not JSON
	OutageReset   = "reset"   // hijack the connection and reset it, with no reply
)

// Faults make the simulator misbehave. The zero value is a healthy provider.
//
// Latency and Jitter apply to every request to the API; all the other faults
// apply only once AfterRequests requests have arrived since the Faults were
// set. A request meets them in this order: latency, outage, IPQPS, (the key
// check), QPS, ErrorRates.
type Faults struct {
	// Latency delays every reply by a fixed duration.
	Latency time.Duration
	// Jitter adds a uniform random delay in [0, Jitter) to Latency.
	Jitter time.Duration
	// ErrorRates is the probability (0–1) of answering each code instead of
	// the real answer; 1.0 means always. One draw per request picks at most
	// one code: the rates are stacked in ascending code order, so they are
	// exact while their sum is at most 1, and later codes get less when it
	// is above. A code the document does not list is answered with the
	// reason "未知错误".
	ErrorRates map[int]float64
	// Outage is one of OutageNone, Outage503, OutageHang, OutageGarbage or
	// OutageReset.
	Outage string
	// QPS limits requests per second across all callers (a token bucket with
	// a burst of max(1, QPS)); excess requests are answered 10012. 0 means
	// no limit.
	QPS float64
	// IPQPS limits requests per second per remote IP, as QPS does; excess
	// requests are answered 10011. 0 means no limit.
	IPQPS float64
	// AfterRequests is how many requests are answered without the faults
	// above (Latency and Jitter excepted) after the Faults are set.
	AfterRequests int64
}

// Validate reports the first field that makes no sense: a negative duration,
// count or limit, a rate outside [0, 1] or an unknown outage kind.
func (f Faults) Validate() error {
	switch {
	case f.Latency < 0:
		return fmt.Errorf("latency %v is negative", f.Latency)
	case f.Jitter < 0:
		return fmt.Errorf("jitter %v is negative", f.Jitter)
	case !(f.QPS >= 0) || math.IsInf(f.QPS, 0): // !(>=) also catches NaN
		return fmt.Errorf("qps %v is not a non-negative number", f.QPS)
	case !(f.IPQPS >= 0) || math.IsInf(f.IPQPS, 0):
		return fmt.Errorf("ip_qps %v is not a non-negative number", f.IPQPS)
	case f.AfterRequests < 0:
		return fmt.Errorf("after_requests %d is negative", f.AfterRequests)
	}
	switch f.Outage {
	case OutageNone, Outage503, OutageHang, OutageGarbage, OutageReset:
	default:
		return fmt.Errorf("outage %q is not one of \"\", %q, %q, %q, %q",
			f.Outage, Outage503, OutageHang, OutageGarbage, OutageReset)
	}
	for code, p := range f.ErrorRates {
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("error rate %v for code %d is not between 0 and 1", p, code)
		}
		if code == codeOK {
			return errors.New("error rate for code 0: success is not an error")
		}
	}
	return nil
}

// clone returns a copy that shares no map with f.
func (f Faults) clone() Faults {
	f.ErrorRates = maps.Clone(f.ErrorRates)
	return f
}

// faultsJSON is the wire form of Faults: snake_case names and durations as
// Go duration strings ("50ms"), which people and shell scripts can write.
type faultsJSON struct {
	Latency       string          `json:"latency"`
	Jitter        string          `json:"jitter"`
	ErrorRates    map[int]float64 `json:"error_rates"`
	Outage        string          `json:"outage"`
	QPS           float64         `json:"qps"`
	IPQPS         float64         `json:"ip_qps"`
	AfterRequests int64           `json:"after_requests"`
}

// MarshalJSON writes every field, with snake_case names and durations as
// strings, e.g. {"latency":"50ms","jitter":"0s","error_rates":{"232701":0.1},
// "outage":"hang","qps":0,"ip_qps":0,"after_requests":0}.
func (f Faults) MarshalJSON() ([]byte, error) {
	j := faultsJSON{
		Latency:       f.Latency.String(),
		Jitter:        f.Jitter.String(),
		ErrorRates:    f.ErrorRates,
		Outage:        f.Outage,
		QPS:           f.QPS,
		IPQPS:         f.IPQPS,
		AfterRequests: f.AfterRequests,
	}
	if j.ErrorRates == nil {
		j.ErrorRates = map[int]float64{} // {} rather than null: one shape to read
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the form MarshalJSON writes. Absent fields (and empty
// duration strings) are zero; unknown fields are an error, because a typo
// must not silently mean "no fault".
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	var out Faults
	var err error
	if j.Latency != "" {
		if out.Latency, err = time.ParseDuration(j.Latency); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	if j.Jitter != "" {
		if out.Jitter, err = time.ParseDuration(j.Jitter); err != nil {
			return fmt.Errorf("jitter: %w", err)
		}
	}
	if len(j.ErrorRates) > 0 { // {} and null both mean none, as in the zero Faults
		out.ErrorRates = j.ErrorRates
	}
	out.Outage = j.Outage
	out.QPS = j.QPS
	out.IPQPS = j.IPQPS
	out.AfterRequests = j.AfterRequests
	*f = out
	return nil
}

// faultState is one setting of Faults with the state that lives as long as
// it: the request counter of AfterRequests and the limiters. SetFaults
// replaces it whole, which resets all of them at once.
type faultState struct {
	f       Faults
	codes   []int // the codes of f.ErrorRates in ascending order
	arrived atomic.Int64
	global  *rate.Limiter // nil without a QPS limit

	mu    sync.Mutex
	perIP map[string]*rate.Limiter // nil without an IPQPS limit
}

func newFaultState(f Faults) *faultState {
	st := &faultState{f: f.clone(), codes: slices.Sorted(maps.Keys(f.ErrorRates))}
	if f.QPS > 0 {
		st.global = newLimiter(f.QPS)
	}
	if f.IPQPS > 0 {
		st.perIP = make(map[string]*rate.Limiter)
	}
	return st
}

// newLimiter is a token bucket of qps per second with a burst of max(1, qps),
// so a limit below 1 still lets a request through now and then.
func newLimiter(qps float64) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(qps), max(1, int(qps)))
}

// active counts a request and reports whether the faults apply to it.
func (st *faultState) active() bool {
	return st.arrived.Add(1) > st.f.AfterRequests
}

// allowIP reports whether the IP limit lets a request from remoteAddr
// through at now.
func (st *faultState) allowIP(remoteAddr string, now time.Time) bool {
	if st.perIP == nil {
		return true
	}
	ip, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		ip = remoteAddr
	}
	st.mu.Lock()
	l, ok := st.perIP[ip]
	if !ok {
		l = newLimiter(st.f.IPQPS)
		st.perIP[ip] = l
	}
	st.mu.Unlock()
	return l.AllowN(now, 1)
}

// allowGlobal reports whether the limit across all callers lets a request
// through at now.
func (st *faultState) allowGlobal(now time.Time) bool {
	return st.global == nil || st.global.AllowN(now, 1)
}

// injected picks the code to answer instead of the real answer, from one
// uniform draw u in [0, 1); ok is false when none applies.
func (st *faultState) injected(u float64) (code int, ok bool) {
	acc := 0.0
	for _, c := range st.codes {
		acc += st.f.ErrorRates[c]
		if u < acc {
			return c, true
		}
	}
	return 0, false
}
