package validate

// The alert rules and dashboard queries a review found wrong (twenty-second
// session): each test evaluates a rule or a panel's query with Prometheus'
// engine on synthetic series shaped like the ones a real "twosell run"
// exposes (names and labels as scraped from /metrics). The comments numbered
// 1-7 describe what each rule or panel did before its fix.

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	promqlengine "github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// reviewBase is t=0 of the synthetic series; samples are 15 s apart, the
// scrape interval of deploy/prometheus/prometheus.yml.
var reviewBase = time.Unix(1_700_000_000, 0)

const reviewStep = 15 * time.Second

// reviewSeries builds a series from promqltest's notation, e.g.
// `twosell_ready{instance="a"} 0x39 1x80` (sample i at reviewBase+i*15s,
// "_" for no sample), shifted to begin at start.
func reviewSeries(t *testing.T, start time.Duration, desc string) storage.Series {
	t.Helper()
	p := promql.(interface {
		ParseSeriesDesc(string) (labels.Labels, []parser.SequenceValue, error)
	})
	lbls, vals, err := p.ParseSeriesDesc(desc)
	if err != nil {
		t.Fatalf("series %q: %v", desc, err)
	}
	var samples []chunks.Sample
	for i, v := range vals {
		if v.Omitted {
			continue
		}
		samples = append(samples, floatSample{reviewBase.Add(start + time.Duration(i)*reviewStep).UnixMilli(), v.Value})
	}
	return storage.NewListSeries(lbls, samples)
}

func reviewEngine() *promqlengine.Engine {
	return promqlengine.NewEngine(promqlengine.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
}

// reviewInstant evaluates expr at reviewBase+at.
func reviewInstant(t *testing.T, series []storage.Series, expr string, at time.Duration) promqlengine.Vector {
	t.Helper()
	q, err := reviewEngine().NewInstantQuery(context.Background(), mockQueryable(series), nil, expr, reviewBase.Add(at))
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	v, err := q.Exec(context.Background()).Vector()
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	return v
}

// alertRule is an alerting rule of alerts.yml.
func alertRule(t *testing.T, name string) rulefmt.Rule {
	t.Helper()
	groups, errs := rulefmt.ParseFile(repoPath("deploy/prometheus/alerts.yml"), false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == name {
				return r
			}
		}
	}
	t.Fatalf("no alert %s", name)
	return rulefmt.Rule{}
}

// reviewFiring evaluates a rule every 15 s (evaluation_interval) from 0 to
// until, as Prometheus' rule manager does: an output series becomes pending
// when it first appears, is dropped when it is absent from an evaluation,
// and fires once it has been present for the rule's for: duration. It
// returns the first time it fires (-1 if never) and the value then.
func reviewFiring(t *testing.T, series []storage.Series, r rulefmt.Rule, until time.Duration) (time.Duration, float64) {
	t.Helper()
	hold := time.Duration(r.For)
	active := map[uint64]time.Duration{}
	for at := time.Duration(0); at <= until; at += reviewStep {
		v := reviewInstant(t, series, r.Expr, at)
		seen := map[uint64]bool{}
		for _, s := range v {
			h := s.Metric.DropMetricName().Hash()
			seen[h] = true
			since, ok := active[h]
			if !ok {
				active[h], since = at, at
			}
			if at-since >= hold {
				return at, s.F
			}
		}
		for h := range active {
			if !seen[h] {
				delete(active, h)
			}
		}
	}
	return -1, math.NaN()
}

// reviewPanel returns a panel of the dashboard by title.
func reviewPanel(t *testing.T, title string) panel {
	t.Helper()
	for _, p := range loadDashboard(t).allPanels() {
		if p.Title == title {
			return p
		}
	}
	t.Fatalf("no panel %q", title)
	return panel{}
}

// reviewGrafana substitutes Grafana's variables as Grafana does for a
// 15 s scrape interval ($__rate_interval = 4 x scrape interval).
var reviewGrafana = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$__range", "1h")

// 1. TwosellNotReady says "A twosell instance has not been ready for 15
// minutes", but min(twosell_ready) == 0 loses which instance is unready: a
// rolling restart (each new instance unready while it loads the ledger,
// one after the other) keeps the minimum at 0 for longer than 15 minutes
// although no instance was unready for more than 10.
func TestNotReadyIsPerInstance(t *testing.T) {
	r := alertRule(t, "TwosellNotReady")
	series := []storage.Series{
		// a: unready 0-10m (loading the ledger after a restart), then ready.
		reviewSeries(t, 0, `twosell_ready{job="twosell",instance="10.0.0.1:9464"} 0x39 1x80`),
		// b: ready, restarted at 8m: unready 8-18m, then ready.
		reviewSeries(t, 0, `twosell_ready{job="twosell",instance="10.0.0.2:9464"} 1x31 0x39 1x50`),
	}
	if at, v := reviewFiring(t, series, r, 30*time.Minute); at >= 0 {
		t.Errorf("TwosellNotReady (%s) fires at %v (value %v) although no instance was unready for more than 10 minutes: min() merges instances, so for: %v measures the time some instance or other was unready",
			strings.TrimSpace(r.Expr), at, v, time.Duration(r.For))
	}
}

// 2. TwosellCrashLooping is documented as "more than 2 restarts in 30
// min", but increase() extrapolates to the window's edges: a pod that had
// restarted before and restarts twice in the window gives 2.0168 > 2.
func TestCrashLoopingCountsRestartsExactly(t *testing.T) {
	r := alertRule(t, "TwosellCrashLooping")
	// 60 minutes of kube-state-metrics samples: 5 earlier restarts, one more
	// at 40m and one at 50m: two restarts in the last 30 minutes.
	series := []storage.Series{reviewSeries(t, 0,
		`kube_pod_container_status_restarts_total{job="kube-state-metrics",namespace="default",pod="twosell-7d9f-abcde",container="twosell"} 5x159 6x39 7x40`)}
	v := reviewInstant(t, series, r.Expr, 60*time.Minute)
	if len(v) > 0 {
		t.Errorf("TwosellCrashLooping (%s) fires on 2 restarts in 30 minutes (value %v, its summary says %q); the README says more than 2",
			strings.TrimSpace(r.Expr), v[0].F, strings.ReplaceAll(r.Annotations["summary"], "{{ $value }}", fmt.Sprint(v[0].F)))
	}
}

// 3. TwosellInputRecordsDeleted's summary says "{{ $value }} input records
// were deleted", but `A or B` of two label-less sums keeps only A when
// both have a value: when a running instance finds a loss (100) while a
// new instance (a KEDA scale-up, after lag) finds one at its start (500),
// the summary reports ~100, not 600; and A is increase()'s extrapolation,
// not a count.
func TestDeletedAlertValueIsTheWholeLoss(t *testing.T) {
	r := alertRule(t, "TwosellInputRecordsDeleted")
	series := []storage.Series{
		// a: running since 0, finds 100 deleted at 10m.
		reviewSeries(t, 0, `twosell_records_deleted_total{job="twosell",instance="10.0.0.1:9464"} 0x39 100x40`),
		// b: started at 12m, found 500 deleted before its first scrape.
		reviewSeries(t, 12*time.Minute, `twosell_records_deleted_total{job="twosell",instance="10.0.0.2:9464"} 500x32`),
	}
	v := reviewInstant(t, series, r.Expr, 14*time.Minute)
	if len(v) != 1 {
		t.Fatalf("TwosellInputRecordsDeleted at 14m: %v, want it firing", v)
	}
	if v[0].F != 600 {
		t.Errorf("TwosellInputRecordsDeleted fires with value %v: its summary says %q, but 600 records were deleted (100 + 500 found by a new instance at its start)",
			v[0].F, strings.ReplaceAll(r.Annotations["summary"], "{{ $value }}", fmt.Sprint(v[0].F)))
	}
}

// 4. The panel "Input records deleted before they were read" says it shows
// the losses of TwosellInputRecordsDeleted, but its increase() cannot see
// the loss a new instance finds at its start (its series begins above 0):
// the alert fires and the panel shows 0 for the whole time.
func TestDeletedPanelShowsLossFoundAtStart(t *testing.T) {
	p := reviewPanel(t, "Input records deleted before they were read")
	r := alertRule(t, "TwosellInputRecordsDeleted")
	series := []storage.Series{
		reviewSeries(t, 0, `twosell_records_deleted_total{job="twosell",instance="10.0.0.1:9464"} 0x120`),
		reviewSeries(t, 10*time.Minute, `twosell_records_deleted_total{job="twosell",instance="10.0.0.2:9464"} 500x80`),
	}
	if v := reviewInstant(t, series, r.Expr, 12*time.Minute); len(v) == 0 {
		t.Fatalf("the alert does not fire")
	}
	expr := reviewGrafana.Replace(p.Targets[0].Expr)
	shown := 0.0
	for at := time.Duration(0); at <= 30*time.Minute; at += reviewStep {
		for _, s := range reviewInstant(t, series, expr, at) {
			shown = max(shown, s.F)
		}
	}
	if shown == 0 {
		t.Errorf("panel %q (%s) shows 0 at every step from 0 to 30m while TwosellInputRecordsDeleted fires for 500 records a new instance found deleted at its start (description: %q)",
			p.Title, expr, p.Description)
	}
}

// 5. The "Circuit breaker" panel's description says "The breaker's state
// per instance", but max(twosell_breaker_state) is one number for all.
func TestBreakerPanelIsPerInstance(t *testing.T) {
	p := reviewPanel(t, "Circuit breaker")
	series := []storage.Series{
		reviewSeries(t, 0, `twosell_breaker_state{job="twosell",instance="10.0.0.1:9464"} 2x20`),
		reviewSeries(t, 0, `twosell_breaker_state{job="twosell",instance="10.0.0.2:9464"} 0x20`),
		reviewSeries(t, 0, `twosell_breaker_state{job="twosell",instance="10.0.0.3:9464"} 1x20`),
	}
	v := reviewInstant(t, series, p.Targets[0].Expr, 4*time.Minute)
	if len(v) != 3 {
		t.Errorf("panel %q: description %q, but its query %q gives %d series for 3 instances: %v",
			p.Title, p.Description, p.Targets[0].Expr, len(v), v)
	}
}

// 6. "Breaker transitions and refusals" counts the transitions over 5
// minutes, as its legend says, and its description says so too (found by
// review: it said both series were per minute).
func TestBreakerTransitionsPanelSaysItsWindow(t *testing.T) {
	p := reviewPanel(t, "Breaker transitions and refusals")
	// One transition to open every minute (every 4th scrape), for 30 minutes.
	var vals []string
	for i := range 120 {
		vals = append(vals, fmt.Sprint(i/4))
	}
	series := []storage.Series{
		reviewSeries(t, 0, `twosell_breaker_transitions_total{job="twosell",instance="10.0.0.1:9464",to="open"} `+strings.Join(vals, " ")),
	}
	expr := reviewGrafana.Replace(p.Targets[0].Expr)
	v := reviewInstant(t, series, expr, 29*time.Minute)
	if len(v) != 1 || math.Abs(v[0].F-5) > 0.5 || !strings.Contains(p.Description, "over 5 minutes") || !strings.Contains(p.Targets[0].LegendFormat, "(5m)") {
		t.Errorf("panel %q: description %q, legend %q; one transition a minute, and %q shows %v: want about 5, said to be over 5 minutes",
			p.Title, p.Description, p.Targets[0].LegendFormat, expr, v)
	}
}

// 7. TwosellBreakerOpen's max_over_time(...[2m]) assumes half-open lasts
// a trial call. But gobreaker moves open -> half-open lazily when asked,
// and the gauge's callback asks at every scrape: after juhe.breaker.open_for
// (30 s) the state shows half-open (1) until the next lookup that needs a
// call. With sparse lookups (on_unavailable: emit, little traffic, or
// lookups answered from the cache) every trial fails but the breaker sits
// half-open for minutes between them: the alert never fires during an
// outage of an hour.
func TestBreakerOpenFiresThroughLingeringHalfOpen(t *testing.T) {
	r := alertRule(t, "TwosellBreakerOpen")
	// Repeating for an hour: open 30 s (2 scrapes), then half-open for 3
	// minutes (12 scrapes) until the next lookup's trial fails and opens it.
	var vals []string
	for i := range 240 {
		if i%14 < 2 {
			vals = append(vals, "2")
		} else {
			vals = append(vals, "1")
		}
	}
	series := []storage.Series{
		reviewSeries(t, 0, `twosell_breaker_state{job="twosell",instance="10.0.0.1:9464"} `+strings.Join(vals, " ")),
	}
	if at, _ := reviewFiring(t, series, r, 60*time.Minute); at < 0 {
		t.Errorf("TwosellBreakerOpen (%s, for %v) never fires in an hour in which every trial failed and the breaker reopened every 3.5 minutes",
			strings.TrimSpace(r.Expr), time.Duration(r.For))
	}
}

// The rules fixed above still fire when they should, and not when they
// should not.
func TestFixedRulesStillFire(t *testing.T) {
	never := time.Duration(-1)
	for _, tt := range []struct {
		name, rule string
		series     []string
		until      time.Duration
		fires      bool
	}{
		{"one instance unready for 20 minutes", "TwosellNotReady", []string{
			`twosell_ready{job="twosell",instance="10.0.0.1:9464"} 1x10 0x80 1x10`,
			`twosell_ready{job="twosell",instance="10.0.0.2:9464"} 1x100`,
		}, 25 * time.Minute, true},
		{"an old pod restarting 3 times in 30 minutes", "TwosellCrashLooping", []string{
			`kube_pod_container_status_restarts_total{container="twosell",pod="p"} 5x159 6x39 7x20 8x20`,
		}, 60 * time.Minute, true},
		{"a new pod restarting 3 times", "TwosellCrashLooping", []string{
			`kube_pod_container_status_restarts_total{container="twosell",pod="p"} 1x10 2x10 3x10`,
		}, 8 * time.Minute, true},
		{"a new pod restarting twice", "TwosellCrashLooping", []string{
			`kube_pod_container_status_restarts_total{container="twosell",pod="p"} 1x10 2x30`,
		}, 10 * time.Minute, false},
		{"a breaker open for good", "TwosellBreakerOpen", []string{
			`twosell_breaker_state{job="twosell",instance="a"} 0x4 2x60`,
		}, 15 * time.Minute, true},
		{"a breaker that opened and closed within a minute, again and again", "TwosellBreakerOpen", []string{
			`twosell_breaker_state{job="twosell",instance="a"} 0x2 2 1 0 0 2 1 0 0 2 1 0 0 2 1 0 0 2 1 0 0 2 1 0 0 2 1 0 0 2 1 0 0 2 1 0 0 2 1 0 0 2 1 0 0 2 1 0 0 2 1 0 0 2 1 0 0 2 1 0 0`,
		}, 15 * time.Minute, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var series []storage.Series
			for _, s := range tt.series {
				series = append(series, reviewSeries(t, 0, s))
			}
			r := alertRule(t, tt.rule)
			if at, _ := reviewFiring(t, series, r, tt.until); (at != never) != tt.fires {
				t.Errorf("%s (%s): fires at %v; want firing %v", tt.rule, strings.TrimSpace(r.Expr), at, tt.fires)
			}
		})
	}

	// A breaker left half-open after an outage, with no lookup to close it,
	// stops the alert 10 minutes after it was last open.
	var vals []string
	for i := range 160 { // open 10 minutes, then half-open for 30
		if i < 40 {
			vals = append(vals, "2")
		} else {
			vals = append(vals, "1")
		}
	}
	series := []storage.Series{reviewSeries(t, 0, `twosell_breaker_state{job="twosell",instance="a"} `+strings.Join(vals, " "))}
	r := alertRule(t, "TwosellBreakerOpen")
	if v := reviewInstant(t, series, r.Expr, 30*time.Minute); len(v) != 0 {
		t.Errorf("TwosellBreakerOpen at 30 minutes, 20 after the breaker was last open: %v; want none", v)
	}
}
