package main

// The daily budget and juhe.qps count requests, the juhe client's retries
// included, and a request whose outcome is unknown counts as paid (a review
// found both counting lookups: the budget gave back the unit of a request
// the provider may have billed, and retries went out without a rate token).
// No network: the juhe client's Transport is a fake provider, and the tests
// run in a synctest bubble (fake time).

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/processor"
)

// billingProvider is a fake juhe endpoint behind a RoundTripper. Every
// request it receives is billed (the provider read it and made its query:
// an order id exists on its side). reply decides what the client gets.
type billingProvider struct {
	mu     sync.Mutex
	billed int
	at     []time.Time       // when each request arrived (fake time)
	seen   map[string]int    // requests per mobile
	reply  func(n int) reply // n: the mobile's request number, from 1
}

type reply struct {
	body     string
	breakOff bool // the reply breaks off after its first bytes (a reset, a proxy's timeout)
}

func (p *billingProvider) RoundTrip(r *http.Request) (*http.Response, error) {
	_ = r.ParseForm() // reads the form-encoded body (POST) and the query (GET)
	mobile := r.Form.Get("mobile")
	if mobile == "" {
		mobile = r.URL.Query().Get("mobile")
	}
	p.mu.Lock()
	p.billed++
	p.at = append(p.at, time.Now())
	if p.seen == nil {
		p.seen = map[string]int{}
	}
	p.seen[mobile]++
	n := p.seen[mobile]
	p.mu.Unlock()
	rep := p.reply(n)
	var body io.Reader = strings.NewReader(rep.body)
	if rep.breakOff {
		body = io.MultiReader(strings.NewReader(rep.body[:10]), errReader{io.ErrUnexpectedEOF})
	}
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   io.NopCloser(body), ContentLength: -1, Request: r,
	}, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func paidReply(n int) string {
	return fmt.Sprintf(`{"reason":"成功","result":{"res":2,"orderid":"JH%06d"},"error_code":0}`, n)
}

func fakeProviderClient(t *testing.T, rt http.RoundTripper, retries int) *juhe.Client {
	t.Helper()
	c, err := juhe.New(juhe.Config{
		BaseURL: "http://juhe.invalid", AllowInsecure: true, Key: "test-key", Mode: juhe.ModePlain,
		Retries: retries, Backoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second, // the defaults of juhe.retries and juhe.backoff
		Breaker:   juhe.BreakerConfig{Failures: 1000}, // keep the breaker out of the way
		Transport: rt,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A reply that breaks off after the request was written may have been
// answered and billed (README, "A retry can cost a second query"): its
// budget unit is spent, not given back. With a budget of 1, a record whose
// replies break off makes one request, retries and later tries included,
// and is then held back for the budget (it made 9 requests before, with the
// budget still at 1 left; with juhe.retries 0, 3).
func TestBudgetCountsRequestsThatMayBeBilled(t *testing.T) {
	for _, tt := range []struct {
		name    string
		retries int
	}{{"retries=2", 2}, {"retries=0", -1}} { // -1: the client's "none", as newJuheClient maps juhe.retries: 0
		t.Run(tt.name, func(t *testing.T) { budgetBrokenReplies(t, tt.retries) })
	}
}

func budgetBrokenReplies(t *testing.T, retries int) {
	synctest.Test(t, func(t *testing.T) {
		p := &billingProvider{reply: func(n int) reply { return reply{body: paidReply(n), breakOff: true} }}
		cost, err := processor.NewCostControl(juheEnricher{fakeProviderClient(t, p, retries)}, processor.CostConfig{
			Secret: []byte("s"), DailyBudget: 1, Mode: "plain",
			Now: func() time.Time { return time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC) },
		})
		if err != nil {
			t.Fatal(err)
		}
		l := processor.Lookup{Mobile: "17312345678", Date: "20240101"}
		for range 3 { // the processor holds the record back and tries again
			_, err := cost.Enrich(context.Background(), l)
			if processor.DispositionOf(err) != processor.DispositionUnavailable {
				t.Fatalf("lookup: %v, want Unavailable (held back and tried again)", err)
			}
		}
		s := cost.CostStats()
		t.Logf("requests the provider received (and may have billed): %d; budget remaining: %d", p.billed, s.BudgetRemaining)
		if p.billed > 1 {
			t.Errorf("daily_budget 1: the provider received %d requests whose replies broke off (README: such a request "+
				"may have been billed), and the budget still has %d of 1 left", p.billed, s.BudgetRemaining)
		}
	})
}

// DESIGN.md, Cost controls: "a request rate limit for the whole consumer
// group"; README's settings table: "juhe.qps: request rate to the provider
// for the whole consumer group", and "set juhe.qps to the plan's limit to
// avoid the refusals". The limiter is taken once per lookup, outside the
// client's retries: a lookup whose first attempt the provider answers
// 232701 (data source timeout, a fast answer) sends its retry about 0-100
// ms later without waiting for the rate. With juhe.qps 1, the provider gets
// two requests within a tenth of a second, twice what its plan allows, and
// answers 10012 under a real plan.
func TestQPSLimitsRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &billingProvider{reply: func(n int) reply {
			if n == 1 {
				return reply{body: `{"reason":"数据源超时","result":null,"error_code":232701}`}
			}
			return reply{body: paidReply(n)}
		}}
		cost, err := processor.NewCostControl(juheEnricher{fakeProviderClient(t, p, 2)}, processor.CostConfig{
			Secret: []byte("s"), QPS: 1, Mode: "plain",
			Now: func() time.Time { return time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC) },
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, err := cost.Enrich(context.Background(), processor.Lookup{Mobile: fmt.Sprintf("173123456%02d", i), Date: "20240101"}); err != nil {
				t.Fatalf("lookup %d: %v", i, err)
			}
		}
		for i := 1; i < len(p.at); i++ {
			// (x/time/rate's float arithmetic gives a nanosecond early.)
			if gap := p.at[i].Sub(p.at[i-1]); gap < time.Second-time.Microsecond {
				t.Errorf("juhe.qps 1: requests %d and %d reached the provider %v apart (want at least 1s); request times from the start: %v",
					i, i+1, gap, offsets(p.at))
				break
			}
		}
	})
}

func offsets(at []time.Time) []time.Duration {
	var d []time.Duration
	for _, t := range at {
		d = append(d, t.Sub(at[0]).Round(time.Millisecond))
	}
	return d
}

// A lookup's first request, just before midnight, is refused with a known
// code (232701: not billed); its retry, after midnight, breaks off (its
// outcome unknown: may be billed). The one request that may have been
// billed was sent on the new day, and counts there: the budget took the
// first requests as the billable ones, and counted it on the day before,
// leaving the new day's budget whole (found by review). The juhe client
// says which requests may have been billed (Answer.BillableRequests).
func TestBudgetCountsAnUncertainRetryOnItsDay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &billingProvider{reply: func(n int) reply {
			if n == 1 {
				time.Sleep(100 * time.Millisecond) // answered after midnight: the retry comes after it
				return reply{body: `{"reason":"数据源超时","result":null,"error_code":232701}`}
			}
			return reply{body: paidReply(n), breakOff: true}
		}}
		start, bubble := time.Date(2024, 6, 1, 23, 59, 59, 950_000_000, time.UTC), time.Now()
		now := func() time.Time { return start.Add(time.Since(bubble)) }
		cost, err := processor.NewCostControl(juheEnricher{fakeProviderClient(t, p, 1)}, processor.CostConfig{
			Secret: []byte("s"), DailyBudget: 10, Mode: "plain", Now: now,
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cost.Enrich(context.Background(), processor.Lookup{Mobile: "17312345678", Date: "20240101"})
		if processor.DispositionOf(err) != processor.DispositionUnavailable || p.billed != 2 {
			t.Fatalf("lookup: %v after %d requests; want unavailable after 2", err, p.billed)
		}
		if !p.at[0].Before(bubble.Add(50*time.Millisecond)) || p.at[1].Before(bubble.Add(50*time.Millisecond)) {
			t.Fatalf("the requests were sent at %v from 23:59:59.95; want the retry after midnight", offsets(p.at))
		}
		if s := cost.CostStats(); s.BudgetSpentToday != 1 {
			t.Errorf("on 20240602, the day the uncertain retry was sent, the budget counts %d spent; want 1", s.BudgetSpentToday)
		}
	})
}
