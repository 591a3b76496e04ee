package juhe

import (
	"errors"
	"fmt"
	"time"
)

// Class says what a failed query means for the caller: retry, back off,
// dead-letter the record, or stop.
type Class int

// The classes of the design's error-code table. The zero value is
// ClassUnknown, which is handled like a transient fault.
const (
	// ClassUnknown is an error_code the provider's document does not list.
	// It is retried like ClassTransient, and logged with its code.
	ClassUnknown Class = iota
	// ClassRecord is 232702 (bad parameter): this record cannot be
	// answered; dead-letter it. Not a breaker failure.
	ClassRecord
	// ClassTransient is 232701, 232704, 10014 or 10020: retried with
	// backoff inside Query; a breaker failure.
	ClassTransient
	// ClassQuota is 10011, 10012 or 10013 (request limits): not retried
	// inside Query; pause and try later. A breaker failure.
	ClassQuota
	// ClassFatal is a fault of the account or the configuration (10001–10005,
	// 10007–10009, 10021, or a run of 232702): stop consuming.
	ClassFatal
	// ClassTransport is an HTTP status other than 2xx, an attempt that timed
	// out, a connection error or an undecodable reply: retried like
	// ClassTransient.
	ClassTransport
	// ClassUnavailable is the breaker refusing the call (open, or half-open
	// with its trial calls already running). No request was sent.
	ClassUnavailable
)

// String returns the class's name as written in logs and dead-letter
// headers: unknown, record, transient, quota, fatal, transport, unavailable.
func (c Class) String() string {
	switch c {
	case ClassUnknown:
		return "unknown"
	case ClassRecord:
		return "record"
	case ClassTransient:
		return "transient"
	case ClassQuota:
		return "quota"
	case ClassFatal:
		return "fatal"
	case ClassTransport:
		return "transport"
	case ClassUnavailable:
		return "unavailable"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// retryable reports whether Query retries the class itself.
func (c Class) retryable() bool {
	return c == ClassTransient || c == ClassTransport || c == ClassUnknown
}

// providerFault reports whether the class counts as a breaker failure.
func (c Class) providerFault() bool {
	return c.retryable() || c == ClassQuota || c == ClassFatal
}

// The provider's error_code values that callers may need by name; the
// others are classified by ClassOf.
const (
	CodeOK                = 0      // success
	CodeDataSourceTimeout = 232701 // 数据源超时
	CodeBadParam          = 232702 // 参数异常
	CodeNoRecord          = 232703 // 查无记录
	CodeQueryFailed       = 232704 // 查询失败
)

// Error is a failed query, classified. Its message is safe to log: it never
// contains the key, the openid or the mobile.
type Error struct {
	Class      Class  // what to do about it
	Code       int    // the provider's error_code; 0 when it gave none
	Reason     string // a sentence a person can act on, starting "juhe: "
	HTTPStatus int    // the reply's HTTP status, if one arrived
	Op         string // the request, e.g. "POST /twoSellTel/query"; empty if none was sent
	Err        error  // the underlying cause, if any (already redacted)
	// RetryIn is, for ClassUnavailable, when the breaker lets a call
	// through again: the rest of Breaker.OpenFor while it is open, a
	// moment (breakerTrialWait) while its trial calls run; 0 if unknown.
	RetryIn time.Duration
	// whole: the reply arrived whole and was not the API's (its status,
	// or its body); not a reply cut off or timed out after its head.
	whole bool
}

// Error returns the reason, followed by the underlying cause if there is one.
func (e *Error) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the class of the first *Error in err's chain, and false
// if there is none (nil, the caller's context error, or a foreign error).
func ClassOf(err error) (Class, bool) {
	if e, ok := errors.AsType[*Error](err); ok { // AsType, unlike As, does not allocate
		return e.Class, true
	}
	return 0, false
}

func isClass(err error, classes ...Class) bool {
	c, ok := ClassOf(err)
	if !ok {
		return false
	}
	for _, want := range classes {
		if c == want {
			return true
		}
	}
	return false
}

// IsRecord reports whether err means this record cannot be answered
// (dead-letter it).
func IsRecord(err error) bool { return isClass(err, ClassRecord) }

// IsTransient reports whether err is a fault worth retrying later:
// ClassTransient, ClassTransport or ClassUnknown. Query has already retried
// it Config.Retries times.
func IsTransient(err error) bool {
	return isClass(err, ClassTransient, ClassTransport, ClassUnknown)
}

// IsQuota reports whether err is a provider request limit (pause).
func IsQuota(err error) bool { return isClass(err, ClassQuota) }

// IsFatal reports whether err is an account or configuration fault that
// retrying cannot fix (stop).
func IsFatal(err error) bool { return isClass(err, ClassFatal) }

// IsUnavailable reports whether the breaker refused the call.
func IsUnavailable(err error) bool { return isClass(err, ClassUnavailable) }

// IsTransport reports whether err is an HTTP-level fault: a non-2xx status,
// an attempt timeout, a connection error or an undecodable reply.
func IsTransport(err error) bool { return isClass(err, ClassTransport) }

// codeInfo is one row of the provider's error-code table.
type codeInfo struct {
	class Class
	text  string // the provider's own description, as in its document
	what  string // what happened, in words
	fix   string // what to do, if the operator can do something
}

// codeTable is the provider's error-code table (reference/juhe-twosell-api.txt)
// with the design's classes. 232703 is absent: it is an answer.
var codeTable = map[int]codeInfo{
	232701: {ClassTransient, "数据源超时", "the provider's data source timed out", ""},
	232702: {ClassRecord, "参数异常", "the provider rejected the request parameters", ""},
	232704: {ClassTransient, "查询失败", "the provider's query failed", ""},
	10001:  {ClassFatal, "错误的请求KEY", "the provider rejected the API key", "check juhe.key"},
	10002:  {ClassFatal, "该KEY无请求权限", "the API key has no permission for this API", "check juhe.key and the account's subscriptions"},
	10003:  {ClassFatal, "KEY过期", "the API key has expired", "renew the subscription or check juhe.key"},
	10004:  {ClassFatal, "错误的OPENID", "the provider rejected the openid", "check juhe.openid"},
	10005:  {ClassFatal, "应用未审核超时，请提交认证", "the account's application is not verified", "complete the verification in the provider's console"},
	10007:  {ClassFatal, "未知的请求源", "the provider does not recognise the request source", "check the account's settings in the provider's console"},
	10008:  {ClassFatal, "被禁止的IP", "the provider banned this IP address", "check the account's IP allow-list"},
	10009:  {ClassFatal, "被禁止的KEY", "the provider banned the API key", "contact the provider or check juhe.key"},
	10011:  {ClassQuota, "当前IP请求超过限制", "this IP address exceeded the provider's request limit", ""},
	10012:  {ClassQuota, "请求超过次数限制", "the API key exceeded its request limit", ""},
	10013:  {ClassQuota, "测试KEY超过请求限制", "the test key exceeded its request limit", ""},
	10014:  {ClassTransient, "系统内部异常", "the provider had an internal error", ""},
	10020:  {ClassTransient, "接口维护", "the API is under maintenance", ""},
	10021:  {ClassFatal, "接口停用", "the provider stopped the API", "check the account's subscription"},
}

// codeError classifies a provider error_code (not 0, not 232703). reason is
// the reply's own reason, used only for codes the table does not know.
func codeError(code int, reason string) *Error {
	if info, ok := codeTable[code]; ok {
		msg := fmt.Sprintf("juhe: %s (%d %s)", info.what, code, info.text)
		if info.fix != "" {
			msg += ": " + info.fix
		}
		return &Error{Class: info.class, Code: code, Reason: msg}
	}
	msg := fmt.Sprintf("juhe: the provider answered with error code %d, which its document does not list", code)
	if reason != "" {
		msg += fmt.Sprintf(" (%.200q)", reason)
	}
	return &Error{Class: ClassUnknown, Code: code, Reason: msg}
}
