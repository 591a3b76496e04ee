package validate

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// dashboard is the part of Grafana's dashboard JSON the checks read.
type dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Type        string  `json:"type"`
	Title       string  `json:"title"`
	Description string  `json:"description"`
	Panels      []panel `json:"panels"` // a collapsed row's
	Datasource  *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
		Datasource   *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

// loadDashboard reads deploy/grafana/dashboards/twosell.json.
func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readRepoFile(t, "deploy/grafana/dashboards/twosell.json"), &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	return d
}

// allPanels flattens rows.
func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// dashboardDatasourceUIDs lists the datasource uid of every panel and query.
func dashboardDatasourceUIDs(t *testing.T) []string {
	t.Helper()
	var uids []string
	for _, p := range loadDashboard(t).allPanels() {
		if p.Datasource != nil {
			uids = append(uids, p.Datasource.UID)
		}
		for _, q := range p.Targets {
			if q.Datasource != nil {
				uids = append(uids, q.Datasource.UID)
			}
		}
	}
	return uids
}

// grafanaVars are the variables Grafana substitutes before Prometheus sees
// a query.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

var promql = parser.NewParser(parser.Options{})

// metricsOf parses a PromQL expression and returns the metric names it
// selects.
func metricsOf(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := promql.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q: %v", where, expr, err)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel {
					name = m.Value
				}
			}
			names = append(names, name)
		}
		return nil
	})
	if len(names) == 0 {
		t.Errorf("%s: %q selects no metric", where, expr)
	}
	return names
}

// synthetic are the series Prometheus makes itself for every target, and
// kube-state-metrics' of the pod: they are never on twosell's /metrics page.
var synthetic = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true,
	"kube_pod_container_status_restarts_total": true}

// The dashboard and the alert rules parse (Prometheus' rule parser and
// PromQL parser), cover what operators need, and query only metrics that a
// real "twosell run" exposes on /metrics, which also serves the probe paths.
func TestDashboardAndAlerts(t *testing.T) {
	queried := map[string][]string{} // metric -> where

	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("the dashboard has no uid or title")
	}
	var titles []string
	for _, p := range d.allPanels() {
		titles = append(titles, strings.ToLower(p.Title))
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 || p.Description == "" {
			t.Errorf("panel %q has no query or no description", p.Title)
		}
		for _, q := range p.Targets {
			for _, m := range metricsOf(t, "panel "+p.Title, grafanaVars.Replace(q.Expr)) {
				queried[m] = append(queried[m], "panel "+p.Title)
			}
		}
	}
	for _, want := range []string{"throughput", "lag", "statuses", "latency", "errors", "breaker", "spend"} {
		if !slices.ContainsFunc(titles, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("no dashboard panel about %s (panels %q)", want, titles)
		}
	}

	groups, errs := rulefmt.ParseFile(repoPath("deploy/prometheus/alerts.yml"), false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("alert rules: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s has no severity or summary", r.Alert)
			}
			for _, m := range metricsOf(t, "alert "+r.Alert, r.Expr) {
				queried[m] = append(queried[m], "alert "+r.Alert)
			}
		}
	}
	for _, want := range []string{"TwosellConsumerLagGrowing", "TwosellBreakerOpen", "TwosellFatal", "TwosellDeadLetterRate", "TwosellBudgetNearlySpent", "TwosellInputRecordsDeleted", "TwosellLedgerSecretMismatch", "TwosellLedgerFailing"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s (have %v)", want, alerts)
		}
	}

	want := map[string]bool{}
	for m := range queried {
		if !synthetic[m] {
			want[m] = true
		}
	}
	exposed := scrapeUntil(t, want)
	var names []string
	for m := range queried {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		if !exposed[m] && !synthetic[m] {
			t.Errorf("%s is queried by %v but not exposed", m, queried[m])
		}
	}
	t.Logf("%d metrics queried by the dashboard and the alerts, all exposed by twosell run: %v", len(names), names)

	// The probe paths of the manifests are served by the same server.
	base := runningTwosell(t)
	if code, _ := get(t, base, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d, want 200", code)
	}
	if code, body := get(t, base, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz of a running twosell: %d %s, want 200", code, body)
	}
	// No series carries a secret.
	if _, body := get(t, base, "/metrics"); strings.Contains(body, "twosell-dev-key") {
		t.Errorf("/metrics carries the key")
	}
}
