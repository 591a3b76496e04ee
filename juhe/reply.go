package juhe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// maxReplyBytes caps how much of a reply is read: a real reply is about a
// hundred bytes, and a hostile or broken peer must not exhaust memory.
const maxReplyBytes = 64 << 10

// Answer is the provider's answer for one mobile and date.
type Answer struct {
	Res      int    // 1 re-issued after the date, 2 not re-issued, 3 no activation date; 0 with NoRecord
	OrderID  string // the provider's order id (for reconciling its bill), if it gave one
	NoRecord bool   // the provider has no record of the number (232703)
	Code     int    // the reply's error_code: 0, or 232703 with NoRecord
	Attempts int    // provider calls made, retries included; 0 if none was sent
	// Billable counts the attempts the provider may have billed: the one
	// that answered (a result or no record), and each whose outcome is
	// unknown (a timeout or a broken reply after the request may have been
	// read; an unknown error code). An attempt the provider refused with a
	// known error code, or that never reached it (a refused connection),
	// is not billable.
	Billable int
	// BillableRequests says which attempts Billable counts: bit i for the
	// (i+1)th (the first, then each retry), of the first 64. A caller that
	// counts each request on a day of its own (a budget whose day changes
	// between a request and its retry) settles each by its bit.
	BillableRequests uint64
	// Resent counts the requests net/http's Transport wrote again on its
	// own (behind a proxy, or with Config.Transport, for GET: it takes a
	// GET for safe to repeat when a reused connection ends after the
	// request was written and before a byte of reply). Each such request
	// written before may have been billed, and is in no attempt: a caller
	// that counts requests counts these too. 0 on the fast path and for
	// POST, which are never sent again but by a retry.
	Resent int
	Mode   Mode // how the mobile was sent
}

// Status returns the answer as the output contract names it: "recycled"
// (res 1), "not_recycled" (res 2), "no_activation_date" (res 3) or
// "no_record"; "" for an Answer that is none of these.
func (a Answer) Status() string {
	if a.NoRecord {
		return "no_record"
	}
	switch a.Res {
	case 1:
		return "recycled"
	case 2:
		return "not_recycled"
	case 3:
		return "no_activation_date"
	}
	return ""
}

// reply is the provider's JSON envelope. Pointers tell a missing field from
// a zero one; result stays raw because error replies put anything there.
type reply struct {
	Reason    string          `json:"reason"`
	Result    json.RawMessage `json:"result"`
	ErrorCode *int            `json:"error_code"`
}

type replyResult struct {
	Res     *int   `json:"res"`
	OrderID string `json:"orderid"`
}

// ParseReply decodes a reply body. It returns an Answer for error_code 0
// and for 232703 (NoRecord), and a classified *Error for every other code.
// A body that is not the provider's JSON (no error_code, or on code 0 no
// result with res 1, 2 or 3) is a ClassTransport error: the reply came from
// something other than the API, or was cut short.
//
// Attempts and Mode are left zero; Query fills them in.
func ParseReply(body []byte) (Answer, error) { return parseReply(body, nil) }

// parseReply is ParseReply with a redactor for the provider's own reason,
// applied before the reason is quoted and cut to length: redacting after
// would miss a secret that quoting escaped or the cut split in two.
func parseReply(body []byte, redact func(string) string) (Answer, error) {
	if q, ok := quickReply(body); ok {
		return q.answer(redact)
	}
	return parseReplyJSON(body, redact)
}

// parseReplyJSON is parseReply by encoding/json, for every body that
// quickReply leaves to it.
func parseReplyJSON(body []byte, redact func(string) string) (Answer, error) {
	var r reply
	if err := json.Unmarshal(body, &r); err != nil {
		return Answer{}, undecodable("the body is not JSON", err)
	}
	if r.ErrorCode == nil {
		return Answer{}, undecodable("it has no error_code", nil)
	}
	switch code := *r.ErrorCode; code {
	case CodeOK:
		if len(r.Result) == 0 || bytes.Equal(r.Result, []byte("null")) {
			return Answer{}, undecodable("error_code 0 without a result", nil)
		}
		var res replyResult
		if err := json.Unmarshal(r.Result, &res); err != nil {
			return Answer{}, undecodable("its result is not an object with res and orderid", err)
		}
		if res.Res == nil {
			return Answer{}, undecodable("error_code 0 without result.res", nil)
		}
		if *res.Res < 1 || *res.Res > 3 {
			return Answer{}, undecodable(fmt.Sprintf("result.res is %d, not 1, 2 or 3", *res.Res), nil)
		}
		return Answer{Res: *res.Res, OrderID: res.OrderID, Code: CodeOK}, nil
	case CodeNoRecord:
		// The document gives no result for 232703; keep an order id if one
		// comes, for reconciling the bill, and ignore anything else there.
		var res replyResult
		_ = json.Unmarshal(r.Result, &res)
		return Answer{NoRecord: true, OrderID: res.OrderID, Code: CodeNoRecord}, nil
	default:
		reason := r.Reason
		if redact != nil {
			reason = redact(reason)
		}
		return Answer{}, codeError(code, reason)
	}
}

// undecodable is the ClassTransport error for a reply that ParseReply
// cannot read.
func undecodable(why string, err error) *Error {
	return &Error{
		Class:  ClassTransport,
		Reason: "juhe: undecodable reply: " + why,
		Err:    err,
	}
}

// quick is a reply as quickReply read it.
type quick struct {
	reason             []byte // raw: no escapes, valid UTF-8
	code               int
	result, resultNull bool // a result came; it was null
	res                int
	hasRes             bool
	orderID            []byte // raw, as reason
}

// quickReply reads the provider's usual replies without encoding/json, which
// was most of the allocations of a call: an object with only reason, result
// and error_code, each at most once, whose result is null or an object with
// only res and orderid, each at most once; strings without escapes; integers
// of at most 9 digits, with no fraction or exponent. It reports false for
// anything else (including every invalid body), and parseReply gives that to
// encoding/json: on the bodies quickReply accepts, the two agree
// (FuzzQuickReply).
func quickReply(b []byte) (q quick, ok bool) {
	s := jsonScan{b: b}
	var seenReason, seenCode bool
	if !s.next('{') {
		return q, false
	}
	for {
		key, ok := s.str()
		if !ok || !s.next(':') {
			return q, false
		}
		switch string(key) {
		case "reason":
			if seenReason {
				return q, false
			}
			seenReason = true
			q.reason, ok = s.str()
		case "error_code":
			if seenCode {
				return q, false
			}
			seenCode = true
			q.code, ok = s.int()
		case "result":
			if q.result {
				return q, false
			}
			q.result = true
			if q.resultNull = s.null(); !q.resultNull {
				ok = s.result(&q)
			}
		default:
			return q, false
		}
		if !ok {
			return q, false
		}
		if s.next('}') {
			break
		}
		if !s.next(',') {
			return q, false
		}
	}
	s.space()
	return q, seenCode && s.i == len(b)
}

// answer is parseReplyJSON's outcome for q.
func (q *quick) answer(redact func(string) string) (Answer, error) {
	switch q.code {
	case CodeOK:
		if !q.result || q.resultNull {
			return Answer{}, undecodable("error_code 0 without a result", nil)
		}
		if !q.hasRes {
			return Answer{}, undecodable("error_code 0 without result.res", nil)
		}
		if q.res < 1 || q.res > 3 {
			return Answer{}, undecodable(fmt.Sprintf("result.res is %d, not 1, 2 or 3", q.res), nil)
		}
		return Answer{Res: q.res, OrderID: string(q.orderID), Code: CodeOK}, nil
	case CodeNoRecord:
		return Answer{NoRecord: true, OrderID: string(q.orderID), Code: CodeNoRecord}, nil
	default:
		reason := string(q.reason)
		if redact != nil {
			reason = redact(reason)
		}
		return Answer{}, codeError(q.code, reason)
	}
}

// jsonScan reads the few JSON forms quickReply accepts.
type jsonScan struct {
	b []byte
	i int
}

func (s *jsonScan) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// next consumes c, after any white space, if it comes next.
func (s *jsonScan) next(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *jsonScan) null() bool {
	s.space()
	if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// str reads a string without escapes, and returns its raw bytes.
func (s *jsonScan) str() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	for j := s.i; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			v := s.b[s.i:j]
			s.i = j + 1
			return v, utf8.Valid(v)
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// int reads an optional minus and 1 to 9 digits. A fraction or an exponent
// after them fails the caller, which expects ',' or '}' next; so does a
// leading zero followed by more digits.
func (s *jsonScan) int() (int, bool) {
	s.space()
	neg := s.i < len(s.b) && s.b[s.i] == '-'
	if neg {
		s.i++
	}
	n, digits := 0, 0
	for ; s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9'; s.i++ {
		if digits == 9 || digits == 1 && n == 0 {
			return 0, false
		}
		n = n*10 + int(s.b[s.i]-'0')
		digits++
	}
	if neg {
		n = -n
	}
	return n, digits > 0
}

// result reads an object with only res and orderid, each at most once.
func (s *jsonScan) result(q *quick) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	var seenOrderID bool
	for {
		key, ok := s.str()
		if !ok || !s.next(':') {
			return false
		}
		switch string(key) {
		case "res":
			if q.hasRes {
				return false
			}
			q.hasRes = true
			q.res, ok = s.int()
		case "orderid":
			if seenOrderID {
				return false
			}
			seenOrderID = true
			q.orderID, ok = s.str()
		default:
			return false
		}
		if !ok {
			return false
		}
		if s.next('}') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}
