package juhesim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
)

func adminDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminFaults(t *testing.T) {
	initial := juhesim.Faults{Latency: 5 * time.Millisecond, ErrorRates: map[int]float64{232701: 0.5}}
	sim, srv := newSim(t, func(c *juhesim.Config) { c.Faults = initial })

	status, body := adminDo(t, http.MethodGet, srv.URL+"/sim/faults", "")
	var got juhesim.Faults
	if err := json.Unmarshal([]byte(body), &got); status != http.StatusOK || err != nil || !reflect.DeepEqual(got, initial) {
		t.Fatalf("GET /sim/faults: HTTP %d %s (%v), want %+v", status, body, err, initial)
	}
	if !strings.Contains(body, `"latency": "5ms"`) {
		t.Errorf("latency not written as a duration string: %s", body)
	}

	put := `{"latency":"50ms","jitter":"1.5s","error_rates":{"232701":0.25,"10012":1},` +
		`"outage":"garbage","qps":5,"ip_qps":2,"after_requests":7}`
	want := juhesim.Faults{
		Latency: 50 * time.Millisecond, Jitter: 1500 * time.Millisecond,
		ErrorRates: map[int]float64{232701: 0.25, 10012: 1},
		Outage:     juhesim.OutageGarbage, QPS: 5, IPQPS: 2, AfterRequests: 7,
	}
	if status, body := adminDo(t, http.MethodPut, srv.URL+"/sim/faults", put); status != http.StatusOK {
		t.Fatalf("PUT /sim/faults: HTTP %d %s", status, body)
	}
	if got := sim.Faults(); !reflect.DeepEqual(got, want) {
		t.Errorf("after PUT: %+v, want %+v", got, want)
	}

	// A PUT replaces the faults whole: absent fields are zero.
	if status, body := adminDo(t, http.MethodPut, srv.URL+"/sim/faults", `{"outage":"503"}`); status != http.StatusOK {
		t.Fatalf("PUT: HTTP %d %s", status, body)
	}
	if got := sim.Faults(); !reflect.DeepEqual(got, juhesim.Faults{Outage: juhesim.Outage503}) {
		t.Errorf("after PUT {outage:503}: %+v", got)
	}

	for _, bad := range []string{
		`{"latncy":"5ms"}`,
		`{"latency":"5 parsecs"}`,
		`{"latency":5}`,
		`{"error_rates":{"232701":1.5}}`,
		`{"error_rates":{"x":0.5}}`,
		`{"outage":"flood"}`,
		`{"qps":-1}`,
		`not json`,
	} {
		if status, _ := adminDo(t, http.MethodPut, srv.URL+"/sim/faults", bad); status != http.StatusBadRequest {
			t.Errorf("PUT %s: HTTP %d, want 400", bad, status)
		}
	}
	if got := sim.Faults(); !reflect.DeepEqual(got, juhesim.Faults{Outage: juhesim.Outage503}) {
		t.Errorf("a rejected PUT changed the faults: %+v", got)
	}
}

func TestAdminStats(t *testing.T) {
	sim, srv := newSim(t, nil)
	ask(t, srv, http.MethodGet, juhe.PathQuery, params(testKey, "17312345678", testDate))
	ask(t, srv, http.MethodPost, juhe.PathQueryEncry, params(testKey, juhe.MD5Hex("17312345678"), testDate))
	ask(t, srv, http.MethodGet, juhe.PathQuery, params("wrong", "17312345678", testDate))
	adminDo(t, http.MethodGet, srv.URL+"/sim/faults", "") // not counted

	status, body := adminDo(t, http.MethodGet, srv.URL+"/sim/stats", "")
	var got juhesim.Stats
	if err := json.Unmarshal([]byte(body), &got); status != http.StatusOK || err != nil {
		t.Fatalf("GET /sim/stats: HTTP %d %s (%v)", status, body, err)
	}
	want := juhesim.Stats{
		Requests: 3,
		ByCode:   map[int]int64{0: 2, 10001: 1},
		ByMode:   map[string]int64{"plain": 1, "md5": 1},
		ByMethod: map[string]int64{"GET": 2, "POST": 1},
		ByOutage: map[string]int64{},
	}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(sim.Stats(), want) {
		t.Errorf("stats %+v (Stats() %+v), want %+v", got, sim.Stats(), want)
	}
}

func TestFaultsJSONRoundTrip(t *testing.T) {
	for _, f := range []juhesim.Faults{
		{},
		{Latency: time.Second, Jitter: 3 * time.Millisecond, ErrorRates: map[int]float64{10012: 1}, Outage: "hang", QPS: 0.5, IPQPS: 3, AfterRequests: 30},
	} {
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		var back juhesim.Faults
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !reflect.DeepEqual(back, f) {
			t.Errorf("%s read back as %+v, want %+v", b, back, f)
		}
	}
}
