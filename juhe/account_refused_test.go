package juhe_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
)

// inFlight queries c in the background and cancels the query once the
// simulator has its request (waiting out its latency); it returns the
// query's answer and error.
func inFlight(t *testing.T, c *juhe.Client, sim *juhesim.Sim, mobile string) (juhe.Answer, error) {
	t.Helper()
	before := sim.Stats().Requests
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		a   juhe.Answer
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := c.Query(ctx, mobile, "20240102")
		done <- result{a, err}
	}()
	for sim.Stats().Requests == before {
		select {
		case r := <-done:
			t.Fatalf("the query ended before the simulator had it: %+v, %v", r.a, r.err)
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	r := <-done
	return r.a, r.err
}

// Found by a walkthrough: with a wrong key, the requests in flight when
// the first 10001 stopped the processor (its context canceled) counted as
// requests that may have been billed: written to the ledger, spent from
// the daily budget, at every start of a crash-looping deployment. The
// provider refuses the account for every request sent after one it
// refused: such a request, its outcome unknown, was not billed. Before
// any refusal, a request whose outcome is unknown may have been.
func TestRequestsAfterTheAccountIsRefusedAreNotBilled(t *testing.T) {
	sim, srv := newSim(t)
	if err := sim.SetFaults(juhesim.Faults{Latency: time.Minute}); err != nil { // cut off by the cancel
		t.Fatal(err)
	}
	mobiles := juhesim.Population(3)

	good := simClient(t, srv.URL, nil)
	a, err := inFlight(t, good, sim, mobiles[0])
	if !errors.Is(err, context.Canceled) || a.Billable != 1 {
		t.Fatalf("a request cut off, before any refusal: %+v, %v; want canceled, billable", a, err)
	}

	wrong := simClient(t, srv.URL, func(cfg *juhe.Config) { cfg.Key = "wrong-key-5e0b" })
	if err := sim.SetFaults(juhesim.Faults{}); err != nil {
		t.Fatal(err)
	}
	a, err = wrong.Query(t.Context(), mobiles[1], "20240102")
	if !juhe.IsFatal(err) || a.Code != 10001 || a.Billable != 0 {
		t.Fatalf("a wrong key: %+v, %v; want 10001, fatal, not billable", a, err)
	}
	if err := sim.SetFaults(juhesim.Faults{Latency: time.Minute}); err != nil {
		t.Fatal(err)
	}
	a, err = inFlight(t, wrong, sim, mobiles[2])
	if !errors.Is(err, context.Canceled) || a.Billable != 0 || a.BillableRequests != 0 {
		t.Errorf("a request cut off after the account was refused: %+v, %v; want canceled, not billable", a, err)
	}
}
