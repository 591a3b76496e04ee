package processor

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// The ledger's hand-written encoders write what encoding/json writes for
// its record types (without HTML escaping), so that readers, which decode
// with encoding/json, and the records of older versions agree.
func TestLedgerEncodingMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	orderIDs := []string{"", "JH1234567890", `q"uo\te`, "ctl\x01\n\t", "中文", "bad\xffutf8", "js\u2028\u2029", "<&>", "a/b"}
	modes := []string{"", "plain", "md5", "aes"}
	at := time.Date(2026, 11, 29, 4, 5, 6, 789, time.FixedZone("CST", 8*3600))
	rnd := rand.New(rand.NewPCG(1, 2))
	pick := func(s []string) string { return s[rnd.IntN(len(s))] }
	fact := func(kind FactKind) Fact {
		if rnd.IntN(3) == 0 {
			return Fact{}
		}
		return Fact{Kind: kind, Date: "20240102", OrderID: pick(orderIDs), Mode: pick(modes), At: at.Add(time.Duration(rnd.IntN(1e9)))}
	}
	for i := range 500 {
		call := LedgerCall{
			Key: "ab12", Day: "20261129", At: at.Add(time.Duration(i) * time.Millisecond), Date: "20240102",
			Status: StatusRecycled, Res: rnd.IntN(4), Code: []int{0, 232703}[rnd.IntN(2)],
			OrderID: pick(orderIDs), Mode: pick(modes), Instance: "run-" + pick(orderIDs),
		}
		if got, want := call.appendJSON(nil), marshal(t, call); !bytes.Equal(got, want) {
			t.Fatalf("call:\n got %s\nwant %s", got, want)
		}
		k := Knowledge{Lower: fact(FactAfter), Upper: fact(FactNotAfter), Short: fact(FactNoRecord), BoundsAt: at}
		if i%50 == 0 {
			k = Knowledge{} // nothing known: every fact omitted, a zero time
		}
		want := marshal(t, ledgerKnowledge{
			V: ledgerVersion, Instance: call.Instance,
			After: refLedgerFact(k.Lower), NotAfter: refLedgerFact(k.Upper), Short: refLedgerFact(k.Short),
			BoundsAt: k.BoundsAt.UTC(),
		})
		if got := appendLedgerKnowledge(nil, call.Instance, k); !bytes.Equal(got, want) {
			t.Fatalf("knowledge:\n got %s\nwant %s", got, want)
		}
	}
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

// The follower skips this instance's own call records by their key alone;
// decode agrees on which records are its own.
func TestLedgerOwnCall(t *testing.T) {
	l := &ledger{instance: "run.0a1b2c", instanceBytes: []byte("run.0a1b2c")}
	for _, tt := range []struct {
		key  string
		want bool
	}{
		{"c/20240101/run.0a1b2c/JH20240101120000123", true},
		{"c/20240101/run.0a1b2c/n7", true},
		{"c/20240101/run.0a1b2cd/JH1", false}, // another instance, ours as a prefix
		{"c/20240101/run.0a1b/JH1", false},
		{"c/20240101/other.ffffff/JH1", false},
		{"c/20240101/run.0a1b2c/", false}, // no id
		{"c/20240101/run.0a1b2c", false},
		{"c/2024010/run.0a1b2c/JH1", false},
		{"k/run.0a1b2c/JH1", false},
		{"", false},
	} {
		if got := l.ownCall([]byte(tt.key)); got != tt.want {
			t.Errorf("ownCall(%q) = %v, want %v", tt.key, got, tt.want)
		}
		if !tt.want {
			continue
		}
		if rec, ok := l.decode([]byte(tt.key), []byte(`{}`)); !ok || !rec.own {
			t.Errorf("decode(%q) = own %v, ok %v; want an own call record", tt.key, rec.own, ok)
		}
	}
}
