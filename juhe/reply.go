package juhe

import (
	"bytes"
	"encoding/json"
	"fmt"
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
	Mode     Mode   // how the mobile was sent
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
