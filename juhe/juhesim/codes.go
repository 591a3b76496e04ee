package juhesim

import "slices"

// The codes the simulator's own logic answers; the others are reached only
// through Faults.
const (
	codeOK            = 0
	codeBadParam      = 232702 // 参数异常
	codeNoRecord      = 232703 // 查无记录
	codeBadKey        = 10001  // 错误的请求KEY
	codeIPLimit       = 10011  // 当前IP请求超过限制
	codeRequestsLimit = 10012  // 请求超过次数限制
)

// reasons is the document's text for every code, verbatim: clients and tests
// may match on it, and a paraphrase would hide a client that does.
var reasons = map[int]string{
	0:      "成功",
	232701: "数据源超时",
	232702: "参数异常",
	232703: "查无记录",
	232704: "查询失败",
	10001:  "错误的请求KEY",
	10002:  "该KEY无请求权限",
	10003:  "KEY过期",
	10004:  "错误的OPENID",
	10005:  "应用未审核超时，请提交认证",
	10007:  "未知的请求源",
	10008:  "被禁止的IP",
	10009:  "被禁止的KEY",
	10011:  "当前IP请求超过限制",
	10012:  "请求超过次数限制",
	10013:  "测试KEY超过请求限制",
	10014:  "系统内部异常(调用充值类业务时，请务必联系客服或通过订单查询接口检测订单，避免造成损失)",
	10020:  "接口维护",
	10021:  "接口停用",
}

// unknownReason is the reason of a code the document does not list, which
// only an injected fault can produce.
const unknownReason = "未知错误"

// Codes returns every error code of the provider's document (not 0), in
// ascending order: the service codes 232701–232704 and the system codes
// 10001–10021.
func Codes() []int {
	codes := make([]int, 0, len(reasons)-1)
	for c := range reasons {
		if c != codeOK {
			codes = append(codes, c)
		}
	}
	slices.Sort(codes)
	return codes
}

// Reason returns the document's text for code ("成功" for 0), or "未知错误"
// for a code the document does not list.
func Reason(code int) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	return unknownReason
}
