package processor

import (
	"bytes"
	"encoding/json"
	"time"
)

// decodeLedgerKnowledge decodes a knowledge record's value into lk. Values
// in the very form appendLedgerKnowledge writes, with strings that need no
// unescaping, are read by a scanner of that form (encoding/json took 5.7
// µs a record, most of an instance's start on a large ledger); anything
// else (other spacing or order, escapes, older versions) by encoding/json.
// Both give the same result: FuzzLedgerKnowledge holds them to it.
func decodeLedgerKnowledge(value []byte, lk *ledgerKnowledge) error {
	if s := (ledgerScan{b: value}); s.knowledge(lk) {
		return nil
	}
	*lk = ledgerKnowledge{}
	return json.Unmarshal(value, lk)
}

// decodeLedgerCall decodes a call record's value into c: by a scanner of
// the form LedgerCall.appendJSON writes, as decodeLedgerKnowledge, else by
// encoding/json.
func decodeLedgerCall(value []byte, c *LedgerCall) error {
	if s := (ledgerScan{b: value}); s.call(c) {
		return nil
	}
	*c = LedgerCall{}
	return json.Unmarshal(value, c)
}

// The strings of a fact that repeat in every record, returned without a
// new string each.
var (
	factKindNames = []string{string(StatusRecycled), string(StatusNotRecycled), string(StatusNoActivationDate), string(StatusNoRecord)}
	ledgerModes   = []string{"plain", "md5", "sha256", "aes", "md5+aes", "sha256+aes"}
)

// callStatuses are the statuses a call record holds.
var callStatuses = append([]string{string(StatusUnavailable), string(StatusSkipped)}, factKindNames...)

// ledgerScan reads a value written by appendLedgerKnowledge or
// LedgerCall.appendJSON; any step that
// does not find what it wrote fails, and the value goes to encoding/json.
type ledgerScan struct {
	b   []byte
	bad bool
}

// lit consumes s, if the value continues with it.
func (s *ledgerScan) lit(lit string) bool {
	if s.bad || !bytes.HasPrefix(s.b, []byte(lit)) {
		return false
	}
	s.b = s.b[len(lit):]
	return true
}

// expect consumes lit, or fails the scan.
func (s *ledgerScan) expect(lit string) {
	if !s.lit(lit) {
		s.bad = true
	}
}

// str consumes a string without escapes and printable ASCII only (what
// needs no unescaping nor UTF-8 checking), and returns it; known, if one
// of them is equal, is returned instead of a new string.
func (s *ledgerScan) str(known ...string) string {
	if s.bad || len(s.b) == 0 || s.b[0] != '"' {
		s.bad = true
		return ""
	}
	for i := 1; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			v := s.b[1:i]
			s.b = s.b[i+1:]
			for _, k := range known {
				if string(v) == k {
					return k
				}
			}
			return string(v)
		case c < 0x20 || c == '\\' || c >= 0x80:
			s.bad = true
			return ""
		}
	}
	s.bad = true
	return ""
}

// time consumes a quoted time, as time.Time's UnmarshalJSON reads it.
func (s *ledgerScan) time() time.Time {
	if s.bad || len(s.b) == 0 || s.b[0] != '"' {
		s.bad = true
		return time.Time{}
	}
	end := bytes.IndexByte(s.b[1:], '"')
	var t time.Time
	if end < 0 || t.UnmarshalJSON(s.b[:end+2]) != nil {
		s.bad = true
		return time.Time{}
	}
	s.b = s.b[end+2:]
	return t
}

// fact consumes name and a fact after it, if the value continues with
// name; nil otherwise.
func (s *ledgerScan) fact(name string) *ledgerFact {
	if !s.lit(name) {
		return nil
	}
	f := new(ledgerFact)
	s.expect(`{"kind":`)
	f.Kind = s.str(factKindNames...)
	s.expect(`,"date":`)
	f.Date = s.str()
	if s.lit(`,"order_id":`) {
		f.OrderID = s.str()
	}
	if s.lit(`,"mode":`) {
		f.Mode = s.str(ledgerModes...)
	}
	s.expect(`,"at":`)
	f.At = s.time()
	s.expect(`}`)
	return f
}

func (s *ledgerScan) knowledge(lk *ledgerKnowledge) bool {
	s.expect(`{"v":`)
	lk.V = s.integer()
	s.expect(`,"instance":`)
	lk.Instance = s.str()
	lk.After = s.fact(`,"after":`)
	lk.NotAfter = s.fact(`,"not_after":`)
	if s.lit(`,"older_not_after":[`) {
		for {
			lk.Tighter = append(lk.Tighter, s.fact(""))
			if !s.lit(",") {
				break
			}
		}
		s.expect("]")
	}
	lk.Short = s.fact(`,"short":`)
	s.expect(`,"bounds_at":`)
	lk.BoundsAt = s.time()
	if s.lit(`,"stale_before":`) {
		lk.StaleBefore = s.time()
	}
	s.expect(`}`)
	return !s.bad && len(s.b) == 0
}

// integer consumes a JSON integer of at most 9 digits.
func (s *ledgerScan) integer() int {
	i, v, neg := 0, 0, false
	if s.bad {
		return 0
	}
	if len(s.b) > 0 && s.b[0] == '-' {
		neg, s.b = true, s.b[1:]
	}
	for ; i < len(s.b) && i < 9 && '0' <= s.b[i] && s.b[i] <= '9'; i++ {
		v = v*10 + int(s.b[i]-'0')
	}
	if i == 0 || (i > 1 && s.b[0] == '0') || (i < len(s.b) && '0' <= s.b[i] && s.b[i] <= '9') {
		s.bad = true // no digits, a leading zero (not JSON), or too many: encoding/json says
		return 0
	}
	s.b = s.b[i:]
	if neg {
		return -v
	}
	return v
}

func (s *ledgerScan) call(c *LedgerCall) bool {
	s.expect(`{"key":`)
	c.Key = s.str()
	s.expect(`,"day":`)
	c.Day = s.str()
	s.expect(`,"at":`)
	c.At = s.time()
	s.expect(`,"date":`)
	c.Date = s.str()
	s.expect(`,"status":`)
	c.Status = Status(s.str(callStatuses...))
	if s.lit(`,"res":`) {
		c.Res = s.integer()
	}
	s.expect(`,"code":`)
	c.Code = s.integer()
	if s.lit(`,"order_id":`) {
		c.OrderID = s.str()
	}
	s.expect(`,"mode":`)
	c.Mode = s.str(ledgerModes...)
	s.expect(`,"instance":`)
	c.Instance = s.str()
	s.expect(`}`)
	return !s.bad && len(s.b) == 0
}
