package validate

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// TwosellInputRecordsDeleted fires for a loss found by a new instance at
// its first fetch, before its first scrape (its series begins above 0,
// where increase() sees nothing), as for one that grows while it runs; not
// for none.
func TestDeletedRecordsAlert(t *testing.T) {
	expr := alertExpr(t, "TwosellInputRecordsDeleted")
	base := reviewBase
	series := func(value func(i int) float64) []chunks.Sample {
		var out []chunks.Sample
		for i := range 120 { // every 15 s for 30 minutes
			out = append(out, floatSample{base.Add(time.Duration(i) * 15 * time.Second).UnixMilli(), value(i)})
		}
		return out
	}
	for _, tt := range []struct {
		name    string
		samples []chunks.Sample
		at      []time.Duration
		fires   bool
	}{
		{"found at start", series(func(int) float64 { return 500 }), []time.Duration{time.Minute, 5 * time.Minute, 14 * time.Minute}, true},
		{"found while running", series(func(i int) float64 {
			if i < 40 {
				return 0
			}
			return 500
		}), []time.Duration{11 * time.Minute, 20 * time.Minute}, true},
		{"none", series(func(int) float64 { return 0 }), []time.Duration{time.Minute, 20 * time.Minute}, false},
	} {
		lbls := labels.FromStrings("__name__", "twosell_records_deleted_total", "job", "twosell", "instance", "10.0.0.7:9464")
		for _, at := range tt.at {
			v := reviewInstant(t, []storage.Series{storage.NewListSeries(lbls, tt.samples)}, expr, at)
			if fired := len(v) > 0; fired != tt.fires {
				t.Errorf("%s, at %v: fired %v, want %v (%v)", tt.name, at, fired, tt.fires, v)
			}
		}
	}
}

// alertExpr returns the expression of the alert named in alerts.yml.
func alertExpr(t *testing.T, name string) string {
	t.Helper()
	return alertRule(t, name).Expr
}

// floatSample is a float sample of a series in memory.
type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }

// seriesList is a storage.SeriesSet of series in memory.
type seriesList struct {
	s []storage.Series
	i int
}

func (l *seriesList) Next() bool                        { l.i++; return l.i <= len(l.s) }
func (l *seriesList) At() storage.Series                { return l.s[l.i-1] }
func (l *seriesList) Err() error                        { return nil }
func (l *seriesList) Warnings() annotations.Annotations { return nil }

// mockQueryable serves series from memory, selected by the matchers.
func mockQueryable(series []storage.Series) storage.Queryable {
	return &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			var out []storage.Series
			for _, s := range series {
				ok := true
				for _, m := range ms {
					ok = ok && m.Matches(s.Labels().Get(m.Name))
				}
				if ok {
					out = append(out, s)
				}
			}
			return &seriesList{s: out}
		},
	}}
}
