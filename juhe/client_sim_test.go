package juhe_test

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
)

const (
	simKey    = "sim-key-0c41"
	simOpenID = "sim-openid-77e2"
)

// newSim serves a simulator with a 200-number population.
func newSim(t *testing.T) (*juhesim.Sim, *httptest.Server) {
	t.Helper()
	sim, err := juhesim.New(juhesim.Config{Keys: []string{simKey}, OpenID: simOpenID, Population: 200, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

func simClient(t *testing.T, url string, edit func(*juhe.Config)) *juhe.Client {
	t.Helper()
	cfg := juhe.Config{
		BaseURL: url, Key: simKey, OpenID: simOpenID,
		Backoff: time.Microsecond, MaxBackoff: time.Microsecond,
		Logger: slog.New(slog.DiscardHandler),
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := juhe.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSimEveryModeAndMethod checks that every mode and method gets exactly
// the simulator's rule (juhesim.Expect): the encoding, the endpoint and the
// URL encoding of the parameters all agree with a faithful server.
func TestSimEveryModeAndMethod(t *testing.T) {
	_, srv := newSim(t)
	mobiles := juhesim.Population(200)
	dates := []string{"20150101", "20160229", "20190615", "20241231"}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, mode := range juhe.Modes {
			t.Run(method+"/"+string(mode), func(t *testing.T) {
				c := simClient(t, srv.URL, func(cfg *juhe.Config) { cfg.Method, cfg.Mode = method, mode })
				seen := map[string]bool{}
				for i, m := range mobiles {
					date := dates[i%len(dates)]
					a, err := c.Query(t.Context(), m, date)
					if err != nil {
						t.Fatalf("Query(%s, %s): %v", m, date, err)
					}
					code, res := juhesim.Expect(m, date)
					if a.Code != code || a.Res != res || a.NoRecord != (code == juhe.CodeNoRecord) || a.Attempts != 1 {
						t.Fatalf("Query(%s, %s) = %+v, want code %d res %d", m, date, a, code, res)
					}
					if code == 0 && len(a.OrderID) != 23 {
						t.Errorf("order id %q", a.OrderID)
					}
					seen[a.Status()] = true
				}
				if len(seen) != 4 {
					t.Errorf("statuses seen: %v, want all four", seen)
				}
			})
		}
	}
}

func TestSimWrongOpenIDBecomesFatal(t *testing.T) {
	_, srv := newSim(t)
	mobiles := juhesim.Population(20)
	for _, mode := range []juhe.Mode{juhe.ModeAES, juhe.ModeMD5AES, juhe.ModeSHA256AES} {
		t.Run(string(mode), func(t *testing.T) {
			c := simClient(t, srv.URL, func(cfg *juhe.Config) {
				cfg.Mode = mode
				cfg.OpenID = "not-the-account-openid"
				cfg.BadParamFatalAfter = 10
			})
			for i, m := range mobiles[:9] {
				if _, err := c.Query(t.Context(), m, "20200101"); !juhe.IsRecord(err) {
					t.Fatalf("query %d: %v, want a record error (dead-letter)", i+1, err)
				}
			}
			_, err := c.Query(t.Context(), mobiles[9], "20200101")
			if !juhe.IsFatal(err) {
				t.Fatalf("query 10: %v, want fatal", err)
			}
			want := "juhe: 10 bad-parameter answers in a row: the provider cannot read the numbers; check juhe.mode (" +
				string(mode) + ") and juhe.openid"
			if err.Error() != want {
				t.Errorf("message:\n got %q\nwant %q", err, want)
			}
			if c.BreakerState() != juhe.BreakerClosed {
				t.Errorf("breaker %s: bad parameters are not provider faults", c.BreakerState())
			}
		})
	}
}

func TestSimOutageOpensAndClosesTheBreaker(t *testing.T) {
	sim, srv := newSim(t)
	c := simClient(t, srv.URL, func(cfg *juhe.Config) {
		cfg.Breaker = juhe.BreakerConfig{Failures: 3, OpenFor: 10 * time.Millisecond}
	})
	mobile := juhesim.Population(20)[15]
	if _, err := c.Query(t.Context(), mobile, "20200101"); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	if err := sim.SetFaults(juhesim.Faults{Outage: juhesim.Outage503}); err != nil {
		t.Fatal(err)
	}
	a, err := c.Query(t.Context(), mobile, "20200101")
	if !juhe.IsTransport(err) || a.Attempts != 3 {
		t.Fatalf("outage: %+v, %v; want a transport error after 3 attempts", a, err)
	}
	if s := c.BreakerState(); s != juhe.BreakerOpen {
		t.Fatalf("breaker %s after 3 HTTP 503, want open", s)
	}
	before := sim.Stats().Requests
	if _, err := c.Query(t.Context(), mobile, "20200101"); !juhe.IsUnavailable(err) {
		t.Fatalf("while open: %v, want unavailable", err)
	}
	if after := sim.Stats().Requests; after != before {
		t.Errorf("%d requests reached the simulator while the breaker was open", after-before)
	}

	if err := sim.SetFaults(juhesim.Faults{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "half-open", func() bool { return c.BreakerState() == juhe.BreakerHalfOpen })
	a, err = c.Query(t.Context(), mobile, "20200101")
	if err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	if code, res := juhesim.Expect(mobile, "20200101"); a.Code != code || a.Res != res {
		t.Errorf("answer %+v, want code %d res %d", a, code, res)
	}
	if s := c.BreakerState(); s != juhe.BreakerClosed {
		t.Errorf("breaker %s after a successful trial, want closed", s)
	}
}

// TestSimFaults checks the classes of the simulator's other faults.
func TestSimFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults juhesim.Faults
		class  juhe.Class
		tries  int
	}{
		{"garbage", juhesim.Faults{Outage: juhesim.OutageGarbage}, juhe.ClassTransport, 3},
		{"reset", juhesim.Faults{Outage: juhesim.OutageReset}, juhe.ClassTransport, 3},
		{"hang", juhesim.Faults{Outage: juhesim.OutageHang}, juhe.ClassTransport, 3},
		{"data source timeout", juhesim.Faults{ErrorRates: map[int]float64{232701: 1}}, juhe.ClassTransient, 3},
		{"unknown code", juhesim.Faults{ErrorRates: map[int]float64{424242: 1}}, juhe.ClassUnknown, 3},
		{"key limit", juhesim.Faults{ErrorRates: map[int]float64{10012: 1}}, juhe.ClassQuota, 1},
		{"banned key", juhesim.Faults{ErrorRates: map[int]float64{10009: 1}}, juhe.ClassFatal, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, srv := newSim(t)
			if err := sim.SetFaults(tt.faults); err != nil {
				t.Fatal(err)
			}
			c := simClient(t, srv.URL, func(cfg *juhe.Config) { cfg.Timeout = 50 * time.Millisecond })
			a, err := c.Query(t.Context(), juhesim.Population(20)[15], "20200101")
			if class, ok := juhe.ClassOf(err); !ok || class != tt.class || a.Attempts != tt.tries {
				t.Fatalf("%+v, %v; want class %s after %d attempts", a, err, tt.class, tt.tries)
			}
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		_, srv := newSim(t)
		c := simClient(t, srv.URL, func(cfg *juhe.Config) { cfg.Key = "not-the-key" })
		_, err := c.Query(t.Context(), juhesim.Population(20)[15], "20200101")
		if !juhe.IsFatal(err) {
			t.Fatalf("%v, want fatal", err)
		}
	})
}

// TestSimEveryCode sends every error code of the provider's document through
// the simulator and checks the class DESIGN.md's table gives it, and whether
// the record is answered (no record) rather than failed.
func TestSimEveryCode(t *testing.T) {
	want := map[int]juhe.Class{
		232701: juhe.ClassTransient, 232702: juhe.ClassRecord, 232704: juhe.ClassTransient,
		10001: juhe.ClassFatal, 10002: juhe.ClassFatal, 10003: juhe.ClassFatal, 10004: juhe.ClassFatal,
		10005: juhe.ClassFatal, 10007: juhe.ClassFatal, 10008: juhe.ClassFatal, 10009: juhe.ClassFatal,
		10011: juhe.ClassQuota, 10012: juhe.ClassQuota, 10013: juhe.ClassQuota,
		10014: juhe.ClassTransient, 10020: juhe.ClassTransient, 10021: juhe.ClassFatal,
	}
	for _, code := range juhesim.Codes() {
		t.Run(juhesim.Reason(code), func(t *testing.T) {
			sim, srv := newSim(t)
			if err := sim.SetFaults(juhesim.Faults{ErrorRates: map[int]float64{code: 1}}); err != nil {
				t.Fatal(err)
			}
			c := simClient(t, srv.URL, nil)
			a, err := c.Query(t.Context(), juhesim.Population(20)[15], "20200101")
			if code == juhe.CodeNoRecord {
				if err != nil || !a.NoRecord || a.Status() != "no_record" {
					t.Fatalf("232703: %+v, %v; want a no_record answer", a, err)
				}
				return
			}
			class, ok := juhe.ClassOf(err)
			if !ok || class != want[code] {
				t.Fatalf("code %d: %v (class %v); want class %v", code, err, class, want[code])
			}
			if e := new(juhe.Error); !errors.As(err, &e) || e.Code != code {
				t.Errorf("Error.Code = %d, want %d", e.Code, code)
			}
		})
	}
}
