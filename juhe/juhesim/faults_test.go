package juhesim_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
)

// documentCodes are the error codes of the provider's document.
var documentCodes = []int{
	10001, 10002, 10003, 10004, 10005, 10007, 10008, 10009,
	10011, 10012, 10013, 10014, 10020, 10021,
	232701, 232702, 232703, 232704,
}

func TestCodesAreTheDocuments(t *testing.T) {
	if got := juhesim.Codes(); !slices.Equal(got, documentCodes) {
		t.Errorf("Codes() = %v, want %v", got, documentCodes)
	}
	for _, c := range documentCodes {
		if juhesim.Reason(c) == juhesim.Reason(99999) {
			t.Errorf("code %d has no reason of its own", c)
		}
	}
	if juhesim.Reason(0) != "成功" || juhesim.Reason(232703) != "查无记录" || juhesim.Reason(10001) != "错误的请求KEY" {
		t.Error("reasons differ from the document")
	}
}

// TestEveryCodeReachable forces each code (and one the document does not
// list) with a rate of 1.0.
func TestEveryCodeReachable(t *testing.T) {
	sim, srv := newSim(t, nil)
	for _, code := range append(slices.Clone(documentCodes), 99999) {
		if err := sim.SetFaults(juhesim.Faults{ErrorRates: map[int]float64{code: 1}}); err != nil {
			t.Fatal(err)
		}
		for _, mode := range []juhe.Mode{juhe.ModePlain, juhe.ModeSHA256AES} {
			enc, err := juhe.EncodeMobile(mode, "17312345678", juhe.AESKey(testOpenID))
			if err != nil {
				t.Fatal(err)
			}
			a := ask(t, srv, http.MethodPost, mode.Path(), params(testKey, enc, testDate))
			if a.ErrorCode != code || a.Result != nil {
				t.Errorf("forced %d on %s: got code %d", code, mode, a.ErrorCode)
			}
		}
	}
}

// TestErrorRatesReproducible: the same seed gives the same sequence.
func TestErrorRatesReproducible(t *testing.T) {
	run := func(seed int64) []int {
		_, srv := newSim(t, func(c *juhesim.Config) {
			c.Seed = seed
			c.Faults = juhesim.Faults{ErrorRates: map[int]float64{232701: 0.3, 232704: 0.3}}
		})
		var codes []int
		for range 100 {
			codes = append(codes, ask(t, srv, http.MethodGet, juhe.PathQuery, params(testKey, "17312345678", testDate)).ErrorCode)
		}
		return codes
	}
	a, b := run(42), run(42)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different sequences:\n%v\n%v", a, b)
	}
	for _, c := range []int{0, 232701, 232704} {
		if !slices.Contains(a, c) {
			t.Errorf("code %d never drawn in 100 requests at rates 0.4/0.3/0.3: %v", c, a)
		}
	}
}

func TestAfterRequests(t *testing.T) {
	sim, srv := newSim(t, func(c *juhesim.Config) {
		c.Faults = juhesim.Faults{AfterRequests: 30, ErrorRates: map[int]float64{10001: 1}}
	})
	codes := func(n int) (out []int) {
		for range n {
			out = append(out, ask(t, srv, http.MethodGet, juhe.PathQuery, params(testKey, "17312345678", testDate)).ErrorCode)
		}
		return out
	}
	if got := codes(30); slices.ContainsFunc(got, func(c int) bool { return c != 0 }) {
		t.Fatalf("first 30 answers: %v, want all 0", got)
	}
	if got := codes(10); slices.ContainsFunc(got, func(c int) bool { return c != 10001 }) {
		t.Fatalf("answers after 30: %v, want all 10001", got)
	}
	// SetFaults restarts the count.
	if err := sim.SetFaults(juhesim.Faults{AfterRequests: 2, Outage: juhesim.Outage503}); err != nil {
		t.Fatal(err)
	}
	codes(2)
	resp, err := send(t.Context(), srv, http.MethodGet, juhe.PathQuery, params(testKey, "17312345678", testDate))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("third request after SetFaults: HTTP %d, want 503", resp.StatusCode)
	}
}

// TestRateLimits runs on a fixed clock: no token is refilled until the clock
// moves, so the counts are exact.
func TestRateLimits(t *testing.T) {
	tests := []struct {
		name   string
		faults juhesim.Faults
		limit  int // requests let through out of 10
		refill int // requests let through out of 10 more, ten seconds later
		code   int
	}{
		{"qps 3", juhesim.Faults{QPS: 3}, 3, 3, 10012},
		{"qps below 1 bursts 1", juhesim.Faults{QPS: 0.5}, 1, 1, 10012},
		{"ip qps 2", juhesim.Faults{IPQPS: 2}, 2, 2, 10011},
		{"ip limit before global", juhesim.Faults{IPQPS: 2, QPS: 5}, 2, 2, 10011},
		{"after requests", juhesim.Faults{QPS: 1, AfterRequests: 4}, 5, 1, 10012},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{now: fixedNow}
			sim, srv := newSim(t, func(c *juhesim.Config) { c.Now = clk.Now; c.Faults = tc.faults })
			count := func() (ok, limited int) {
				for range 10 {
					switch code := ask(t, srv, http.MethodGet, juhe.PathQuery, params(testKey, "17312345678", testDate)).ErrorCode; code {
					case 0:
						ok++
					case tc.code:
						limited++
					default:
						t.Fatalf("code %d", code)
					}
				}
				return ok, limited
			}
			if ok, limited := count(); ok != tc.limit || limited != 10-tc.limit {
				t.Fatalf("%d answered, %d limited; want %d, %d", ok, limited, tc.limit, 10-tc.limit)
			}
			// Ten seconds refill the bucket to its burst, no more.
			clk.Advance(10 * time.Second)
			if ok, _ := count(); ok != tc.refill {
				t.Errorf("after 10s: %d answered, want %d", ok, tc.refill)
			}
			if got := sim.Stats().ByCode[tc.code]; got == 0 {
				t.Errorf("ByCode[%d] = 0", tc.code)
			}
		})
	}
}

// signalling wraps a handler to tell the test when a request has entered it
// and when it has returned: a hung or delayed handler must return once its
// client has given up.
type signalling struct {
	h       http.Handler
	entered chan struct{}
	done    chan struct{}
}

func newSignalling(h http.Handler) *signalling {
	return &signalling{h: h, entered: make(chan struct{}, 16), done: make(chan struct{}, 16)}
}

func (s *signalling) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.entered <- struct{}{}
	defer func() { s.done <- struct{}{} }()
	s.h.ServeHTTP(w, r)
}

func TestOutages(t *testing.T) {
	v := params(testKey, "17312345678", testDate)
	t.Run("503", func(t *testing.T) {
		_, srv := newSim(t, func(c *juhesim.Config) { c.Faults.Outage = juhesim.Outage503 })
		resp, err := send(t.Context(), srv, http.MethodGet, juhe.PathQuery, v)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || json.Valid(body) {
			t.Errorf("HTTP %d %q, want 503 with an HTML body", resp.StatusCode, body)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		_, srv := newSim(t, func(c *juhesim.Config) { c.Faults.Outage = juhesim.OutageGarbage })
		resp, err := send(t.Context(), srv, http.MethodPost, juhe.PathQuery, v)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var a answer
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &a) == nil {
			t.Errorf("HTTP %d %q, want 200 with a body that does not parse", resp.StatusCode, body)
		}
	})
	t.Run("reset", func(t *testing.T) {
		_, srv := newSim(t, func(c *juhesim.Config) { c.Faults.Outage = juhesim.OutageReset })
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			resp, err := send(t.Context(), srv, method, juhe.PathQuery, v)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("%s: HTTP %d, want a connection error", method, resp.StatusCode)
			}
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s: %v, want a connection error", method, err)
			}
		}
	})
	// A hung handler returns once its client gives up, by GET or by POST
	// (whose unread body would hide the client's going away).
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run("hang/"+method, func(t *testing.T) {
			sim, err := juhesim.New(juhesim.Config{Keys: []string{testKey}, Population: -1, Faults: juhesim.Faults{Outage: juhesim.OutageHang}})
			if err != nil {
				t.Fatal(err)
			}
			sig := newSignalling(sim)
			srv := httptest.NewServer(sig)
			defer srv.Close()
			// Any timeout will do: the hang never ends by itself.
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
			defer cancel()
			resp, err := send(ctx, srv, method, juhe.PathQuery, v)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("HTTP %d, want the client's timeout", resp.StatusCode)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%v, want the client's deadline", err)
			}
			<-sig.done // the handler returned once the client gave up
			if got := sim.Stats().ByOutage[juhesim.OutageHang]; got != 1 {
				t.Errorf("ByOutage[hang] = %d, want 1", got)
			}
		})
	}
}

// TestLatencyRespectsTheClient: a handler waiting out a latency returns as
// soon as its client gives up.
func TestLatencyRespectsTheClient(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			sim, err := juhesim.New(juhesim.Config{Keys: []string{testKey}, Population: -1,
				Faults: juhesim.Faults{Latency: time.Hour, Jitter: time.Hour}})
			if err != nil {
				t.Fatal(err)
			}
			sig := newSignalling(sim)
			srv := httptest.NewServer(sig)
			defer srv.Close()
			ctx, cancel := context.WithCancel(t.Context())
			go func() {
				<-sig.entered
				cancel()
			}()
			_, err = send(ctx, srv, method, juhe.PathQuery, params(testKey, "17312345678", testDate))
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("%v, want the client's cancellation", err)
			}
			<-sig.done
			if got := sim.Stats().Abandoned; got != 1 {
				t.Errorf("Abandoned = %d, want 1", got)
			}
		})
	}
}

// TestLatencyApplies: a short latency still gets an answer.
func TestLatencyApplies(t *testing.T) {
	_, srv := newSim(t, func(c *juhesim.Config) {
		c.Faults = juhesim.Faults{Latency: time.Millisecond, Jitter: time.Millisecond, AfterRequests: 1 << 40}
	})
	if a := ask(t, srv, http.MethodGet, juhe.PathQuery, params(testKey, "17312345678", testDate)); a.ErrorCode != 0 {
		t.Errorf("code %d", a.ErrorCode)
	}
}

func TestFaultsValidate(t *testing.T) {
	bad := []juhesim.Faults{
		{Latency: -1},
		{Jitter: -1},
		{QPS: -1},
		{IPQPS: -0.5},
		{AfterRequests: -1},
		{Outage: "down"},
		{ErrorRates: map[int]float64{232701: 1.5}},
		{ErrorRates: map[int]float64{232701: -0.1}},
		{ErrorRates: map[int]float64{0: 0.5}},
	}
	sim, _ := newSim(t, func(c *juhesim.Config) { c.Faults = juhesim.Faults{QPS: 7} })
	for _, f := range bad {
		if err := f.Validate(); err == nil {
			t.Errorf("Validate(%+v): no error", f)
		}
		if err := sim.SetFaults(f); err == nil {
			t.Errorf("SetFaults(%+v): no error", f)
		}
	}
	if got := sim.Faults(); !reflect.DeepEqual(got, juhesim.Faults{QPS: 7}) {
		t.Errorf("faults after rejected changes: %+v", got)
	}
}

func TestFaultsCopied(t *testing.T) {
	sim, _ := newSim(t, nil)
	rates := map[int]float64{232701: 0.5}
	if err := sim.SetFaults(juhesim.Faults{ErrorRates: rates}); err != nil {
		t.Fatal(err)
	}
	rates[232701] = 1
	got := sim.Faults()
	got.ErrorRates[232704] = 1
	if r := sim.Faults().ErrorRates; !reflect.DeepEqual(r, map[int]float64{232701: 0.5}) {
		t.Errorf("faults changed through a caller's map: %v", r)
	}
}

// TestConcurrentUse changes faults while requests are served; run with
// -race.
func TestConcurrentUse(t *testing.T) {
	sim, srv := newSim(t, func(c *juhesim.Config) { c.Now = nil })
	aesKey := juhe.AESKey(testOpenID)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i, m := range juhesim.Population(40) {
				mode := juhe.Modes[(g+i)%len(juhe.Modes)]
				enc, _ := juhe.EncodeMobile(mode, m, aesKey)
				resp, err := send(t.Context(), srv, http.MethodGet, mode.Path(), params(testKey, enc, testDate))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			sim.SetFaults(juhesim.Faults{QPS: float64(100 + i), IPQPS: 1000, ErrorRates: map[int]float64{232701: 0.1}})
			sim.Register("13900000000")
			_ = sim.Stats()
			_ = sim.Faults()
		}
	})
	wg.Wait()
	if got := sim.Stats().Requests; got != 8*40 {
		t.Errorf("Requests = %d, want %d", got, 8*40)
	}
}
