package processor

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The ledger's hand-written encoders write what encoding/json writes for
// its record types (without HTML escaping), so that readers, which decode
// with encoding/json, and the records of older versions agree.
func TestLedgerEncodingMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	smp := newLedgerSamples(1)
	rnd, at, pick, fact := smp.rnd, smp.at, smp.pick, smp.fact
	for i := range 500 {
		call := LedgerCall{
			Key: "ab12", Day: "20261129", At: at.Add(time.Duration(i) * time.Millisecond), Date: "20240102",
			Status: StatusRecycled, Res: rnd.IntN(4), Code: []int{0, 232703}[rnd.IntN(2)],
			OrderID: pick(sampleOrderIDs), Mode: pick(sampleModes), Instance: "run-" + pick(sampleOrderIDs),
		}
		if got, want := call.appendJSON(nil), marshal(t, call); !bytes.Equal(got, want) {
			t.Fatalf("call:\n got %s\nwant %s", got, want)
		}
		k := Knowledge{Lower: fact(FactAfter), Upper: fact(FactNotAfter), Short: fact(FactNoRecord), BoundsAt: at}
		if i%3 == 0 {
			k.StaleBefore = at.Add(-time.Hour)
		}
		if i%50 == 0 {
			k = Knowledge{} // nothing known: every fact omitted, a zero time
		}
		want := marshal(t, ledgerKnowledge{
			V: ledgerVersion, Instance: call.Instance,
			After: refLedgerFact(k.Lower), NotAfter: refLedgerFact(k.Upper), Short: refLedgerFact(k.Short),
			BoundsAt: k.BoundsAt.UTC(), StaleBefore: k.StaleBefore.UTC(),
		})
		if got := appendLedgerKnowledge(nil, call.Instance, k); !bytes.Equal(got, want) {
			t.Fatalf("knowledge:\n got %s\nwant %s", got, want)
		}
	}
}

// Order ids and modes for the ledger's encoding tests: some written as
// they are, some escaped, some not valid UTF-8.
var (
	sampleOrderIDs = []string{"", "JH1234567890", `q"uo\te`, "ctl\x01\n\t", "中文", "bad\xffutf8", "js\u2028\u2029", "<&>", "a/b"}
	sampleModes    = []string{"", "plain", "md5", "aes", "sha256+aes", "other"}
)

// ledgerSamples draws the facts of the ledger's encoding tests.
type ledgerSamples struct {
	rnd *rand.Rand
	at  time.Time
}

func newLedgerSamples(seed uint64) *ledgerSamples {
	return &ledgerSamples{rnd: rand.New(rand.NewPCG(seed, seed+1)), at: time.Date(2026, 11, 29, 4, 5, 6, 789, time.FixedZone("CST", 8*3600))}
}

func (s *ledgerSamples) pick(v []string) string { return v[s.rnd.IntN(len(v))] }

// fact returns a fact of kind, or none (one time in three).
func (s *ledgerSamples) fact(kind FactKind) Fact {
	if s.rnd.IntN(3) == 0 {
		return Fact{}
	}
	return Fact{Kind: kind, Date: "20240102", OrderID: s.pick(sampleOrderIDs), Mode: s.pick(sampleModes), At: s.at.Add(time.Duration(s.rnd.IntN(1e9)))}
}

func marshal(t *testing.T, v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// refLedgerFact is what the ledger encoded with encoding/json.
func refLedgerFact(f Fact) *ledgerFact {
	if f.Kind == 0 {
		return nil
	}
	return &ledgerFact{Kind: f.Kind.String(), Date: f.Date, OrderID: f.OrderID, Mode: f.Mode, At: f.At.UTC()}
}

// The follower skips this instance's own records, calls and knowledge,
// without decoding them; another instance's are decoded and applied, and an
// earlier run's calls (written without the header) count as another's.
func TestLedgerSkipsItsOwnRecords(t *testing.T) {
	var applied []ledgerRecord
	l := &ledger{log: slog.New(slog.DiscardHandler), instance: "run.0a1b2c", instanceBytes: []byte("run.0a1b2c"), apply: func(r ledgerRecord) { applied = append(applied, r) }}
	header := func(instance string) []kgo.RecordHeader {
		return []kgo.RecordHeader{{Key: ledgerInstanceHeader, Value: []byte(instance)}}
	}
	for _, tt := range []struct {
		name    string
		rec     *kgo.Record
		applied bool
	}{
		{"own call", &kgo.Record{Key: []byte("c/20240101/run.0a1b2c/JH1"), Value: []byte(`{}`), Headers: header("run.0a1b2c")}, false},
		{"own knowledge, even undecodable", &kgo.Record{Key: []byte("k/x"), Value: []byte(`not json`), Headers: header("run.0a1b2c")}, false},
		{"another instance's call", &kgo.Record{Key: []byte("c/20240101/run.0a1b2cd/JH1"), Value: []byte(`{}`), Headers: header("run.0a1b2cd")}, true},
		{"an earlier run's call, no header", &kgo.Record{Key: []byte("c/20240101/old.ffffff/JH1"), Value: []byte(`{}`)}, true},
	} {
		applied = nil
		l.bad.Store(0)
		l.handle(tt.rec)
		if l.bad.Load() != 0 {
			t.Errorf("%s: decoded, and found not to be twosell's", tt.name)
		}
		if got := len(applied) == 1; got != tt.applied {
			t.Errorf("%s: applied %v, want %v", tt.name, got, tt.applied)
		}
		if tt.applied && applied[0].own {
			t.Errorf("%s: decoded as this instance's own", tt.name)
		}
	}
}

// The scanner of knowledge records reads what appendLedgerKnowledge writes
// as encoding/json reads it, and takes every value without escapes itself.
func TestLedgerKnowledgeScanMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	smp := newLedgerSamples(3)
	rnd, at, pick, fact := smp.rnd, smp.at, smp.pick, smp.fact
	scanned := 0
	for i := range 1000 {
		k := Knowledge{Lower: fact(FactAfter), Upper: fact(FactNotAfter), Short: fact([]FactKind{FactNoRecord, FactNoActivationDate}[rnd.IntN(2)]), BoundsAt: at}
		if i%3 == 0 {
			k.StaleBefore = at.Add(-time.Duration(rnd.Int64N(1e12)))
		}
		if i%50 == 0 {
			k = Knowledge{}
		}
		v := appendLedgerKnowledge(nil, "run."+pick(sampleOrderIDs), k)
		var plain ledgerKnowledge
		escapes := bytes.ContainsFunc(v, func(r rune) bool { return r == '\\' || r >= 0x80 })
		if ok := (&ledgerScan{b: v}).knowledge(&plain); ok == escapes {
			t.Fatalf("scanned %v, want %v: %s", ok, !escapes, v)
		} else if ok {
			scanned++
		}
		checkLedgerKnowledge(t, v)
	}
	if scanned < 100 {
		t.Errorf("the scanner took %d values of 1000", scanned)
	}
	// Values that are not the encoder's, each a step of the scan away.
	good := string(appendLedgerKnowledge(nil, "run.1", Knowledge{Upper: Fact{Kind: FactNotAfter, Date: "20240102", OrderID: "JH1", Mode: "md5", At: at}, BoundsAt: at}))
	for _, v := range []string{
		good + " ", good + "x", good + "}", good[:len(good)-1], " " + good,
		strings.Replace(good, `"v":1`, `"v":01`, 1), strings.Replace(good, `"v":1`, `"v":-1`, 1),
		strings.Replace(good, `"v":1`, `"v":1.0`, 1), strings.Replace(good, `"v":1`, `"v":99999999999`, 1),
		strings.Replace(good, `"not_after":{`, `"not_after":null,"x":{`, 1),
		strings.Replace(good, `"not_after"`, `"after"`, 1), strings.Replace(good, `"mode":"md5"`, `"mode":"MD5"`, 1),
		strings.Replace(good, `,"order_id":"JH1"`, ``, 1), strings.Replace(good, `"date":"20240102"`, `"date":20240102`, 1),
		strings.Replace(good, `Z"}`, `Z"`, 1), strings.Replace(good, `"bounds_at":"`, `"bounds_at":"x`, 1),
		strings.Replace(good, `"bounds_at":`, `"bounds_at":null,"bounds_at":`, 1),
		strings.Replace(good, `"instance":"run.1"`, `"instance":"run\u002e1"`, 1),
		strings.Replace(good, `"bounds_at":"`, `"bounds_at": "`, 1),
	} {
		checkLedgerKnowledge(t, []byte(v))
	}
}

// checkLedgerKnowledge checks that decodeLedgerKnowledge decodes v as
// encoding/json does.
func checkLedgerKnowledge(t *testing.T, v []byte) {
	t.Helper()
	var got, want ledgerKnowledge
	gotErr, wantErr := decodeLedgerKnowledge(v, &got), json.Unmarshal(v, &want)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%q: error %v, encoding/json's %v", v, gotErr, wantErr)
	}
	if wantErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", v, got, want)
	}
}

func FuzzLedgerKnowledge(f *testing.F) {
	at := time.Date(2026, 11, 29, 4, 5, 6, 789, time.UTC)
	for _, k := range []Knowledge{
		{},
		{Upper: Fact{Kind: FactNotAfter, Date: "20240102", OrderID: "JH1", Mode: "plain", At: at}, BoundsAt: at},
		{Lower: Fact{Kind: FactAfter, Date: "20240102", At: at}, Short: Fact{Kind: FactNoRecord, Date: "20240103", Mode: "md5", At: at}, BoundsAt: at},
		{Lower: Fact{Kind: FactAfter, Date: "20240102", At: at}, BoundsAt: at, StaleBefore: at.Add(-time.Hour)},
		{Upper: Fact{Kind: FactNotAfter, Date: "20240102", OrderID: "JH1", Mode: "plain", At: at}, BoundsAt: at,
			Tighter: [maxUppers - 1]Fact{{Kind: FactNotAfter, Date: "20230102", OrderID: "JH2", Mode: "plain", At: at.Add(-time.Hour)},
				{Kind: FactNotAfter, Date: "20220102", OrderID: "JH3", At: at.Add(-2 * time.Hour)}}},
	} {
		f.Add(appendLedgerKnowledge(nil, "run.ab12", k))
	}
	f.Add([]byte(`{"v":1,"instance":"x","bounds_at":"2026-11-29T04:05:06Z"} `))
	f.Add([]byte(`{"v":01,"instance":"x","bounds_at":"2026-11-29T04:05:06Z"}`))
	f.Add([]byte(`{"v":1,"instance":"x","bounds_at":"2026-11-29T04:05:06Z"}x`))
	f.Fuzz(func(t *testing.T, v []byte) { checkLedgerKnowledge(t, v) })
}

// The scanner of call records reads what LedgerCall.appendJSON writes as
// encoding/json reads it, and takes every value without escapes itself.
func TestLedgerCallScanMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	smp := newLedgerSamples(4)
	rnd, at, pick := smp.rnd, smp.at, smp.pick
	statuses := []Status{StatusRecycled, StatusNotRecycled, StatusNoActivationDate, StatusNoRecord, "other"}
	scanned := 0
	for range 1000 {
		c := LedgerCall{
			Key: "ab12", Day: "20261129", At: at.Add(time.Duration(rnd.IntN(1e9))), Date: "20240102",
			Status: statuses[rnd.IntN(len(statuses))], Res: rnd.IntN(4), Code: []int{0, 232703}[rnd.IntN(2)],
			OrderID: pick(sampleOrderIDs), Mode: pick(sampleModes), Instance: "run." + pick(sampleOrderIDs),
		}
		v := c.appendJSON(nil)
		var plain LedgerCall
		escapes := bytes.ContainsFunc(v, func(r rune) bool { return r == '\\' || r >= 0x80 })
		if ok := (&ledgerScan{b: v}).call(&plain); ok == escapes {
			t.Fatalf("scanned %v, want %v: %s", ok, !escapes, v)
		} else if ok {
			scanned++
		}
		checkLedgerCall(t, v)
	}
	if scanned < 100 {
		t.Errorf("the scanner took %d values of 1000", scanned)
	}
	// Values that are not the encoder's, each a step of the scan away.
	good := string((&LedgerCall{Key: "ab", Day: "20240601", At: at, Date: "20240102", Status: StatusRecycled, Res: 1,
		OrderID: "JH1", Mode: "md5", Instance: "run.1"}).appendJSON(nil))
	for _, v := range []string{
		good + " ", good + "x", good + "}", good[:len(good)-1], " " + good,
		strings.Replace(good, `"res":1`, `"res":01`, 1), strings.Replace(good, `"res":1`, `"res":-1`, 1),
		strings.Replace(good, `"res":1`, `"res":-0`, 1), strings.Replace(good, `"res":1`, `"res":-`, 1),
		strings.Replace(good, `"res":1`, `"res":1.0`, 1), strings.Replace(good, `"res":1`, `"res":1e2`, 1),
		strings.Replace(good, `"res":1`, `"res":99999999999`, 1), strings.Replace(good, `"res":1`, `"res":"1"`, 1),
		strings.Replace(good, `,"res":1`, ``, 1), strings.Replace(good, `,"order_id":"JH1"`, ``, 1),
		strings.Replace(good, `"code":0`, `"code":232703`, 1), strings.Replace(good, `"mode":"md5"`, `"mode":"MD5"`, 1),
		strings.Replace(good, `"date":"20240102"`, `"date":20240102`, 1), strings.Replace(good, `"at":"`, `"at":"x`, 1),
		strings.Replace(good, `"key":"ab"`, `"key":"a\u0062"`, 1), strings.Replace(good, `"key":`, `"key": `, 1),
		strings.Replace(good, `"status":"recycled"`, `"status":"recycled","status":"not_recycled"`, 1),
	} {
		checkLedgerCall(t, []byte(v))
	}
}

// checkLedgerCall checks that decodeLedgerCall decodes v as encoding/json
// does.
func checkLedgerCall(t *testing.T, v []byte) {
	t.Helper()
	var got, want LedgerCall
	gotErr, wantErr := decodeLedgerCall(v, &got), json.Unmarshal(v, &want)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("%q: error %v, encoding/json's %v", v, gotErr, wantErr)
	}
	if wantErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", v, got, want)
	}
}

func FuzzLedgerCall(f *testing.F) {
	at := time.Date(2026, 11, 29, 4, 5, 6, 789, time.UTC)
	f.Add((&LedgerCall{Key: "ab", Day: "20240601", At: at, Date: "20240102", Status: StatusRecycled, Res: 1, OrderID: "JH1", Mode: "plain", Instance: "run.1"}).appendJSON(nil))
	f.Add((&LedgerCall{Key: "ab", Day: "20240601", At: at, Date: "20240102", Status: StatusNoRecord, Code: 232703, Mode: "aes", Instance: "run.1"}).appendJSON(nil))
	f.Add([]byte(`{"key":"ab","res":-0}`))
	f.Fuzz(func(t *testing.T, v []byte) { checkLedgerCall(t, v) })
}
