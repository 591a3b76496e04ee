package juhe

import (
	"reflect"
	"testing"
)

// quickBodies are bodies quickReply must accept, and tricky neighbours it
// must leave to encoding/json.
var quickBodies = []string{
	`{"reason":"成功","result":{"res":2,"orderid":"JH327201911081525223306"},"error_code":0}`,
	` { "error_code" : 0 , "result" : { "orderid" : "JH1" , "res" : 1 } , "reason" : "成功" } ` + "\n",
	`{"reason":"查无记录","result":null,"error_code":232703}`,
	`{"reason":"查无记录","result":{"orderid":"JH9"},"error_code":232703}`,
	`{"reason":"参数异常","result":null,"error_code":232702}`,
	`{"reason":"echo","result":null,"error_code":-4242}`,
	`{"result":{},"error_code":0}`,
	`{"result":null,"error_code":0}`,
	`{"error_code":0}`,
	`{"result":{"res":0},"error_code":0}`,
	`{"result":{"res":-0},"error_code":0}`,
	`{"result":{"res":4},"error_code":0}`,
	`{"reason":"x","error_code":10012}`,
	// Left to encoding/json:
	`{"reason":"成功","result":{"res":1,"orderid":"JH1"},"error_code":0,"extra":1}`,
	`{"Reason":"x","error_code":4242}`,
	`{"ERROR_CODE":0,"result":{"res":1}}`,
	`{"error_code":0,"result":{"res":1},"error_code":null}`,
	`{"reason":"a\"b","error_code":4242}`,
	`{"reason":"\u6210\u529f","error_code":4242}`,
	"{\"reason\":\"\xff\",\"error_code\":4242}",
	`{"result":{"res":1.0},"error_code":0}`,
	`{"result":{"res":1e0},"error_code":0}`,
	`{"result":{"res":01},"error_code":0}`,
	`{"result":{"res":1},"error_code":00}`,
	`{"result":{"res":1},"error_code":1234567890}`,
	`{"result":{"res":"1"},"error_code":0}`,
	`{"result":"","error_code":10001}`,
	`{"result":{"res":1,"orderid":null},"error_code":0}`,
	`{"result":{"res":1},"error_code":0} x`,
	`{"result":{"res":1},"error_code":0`,
	`{"result":{"res":1},,"error_code":0}`,
	`{"result":{"res":1,},"error_code":0}`,
	`{"error_code":-}`,
	`{}`, `[]`, ``, `null`,
}

func TestQuickReplyAgreesWithJSON(t *testing.T) {
	accepted := 0
	for _, b := range quickBodies {
		if _, ok := quickReply([]byte(b)); ok {
			accepted++
		}
		checkQuickReply(t, []byte(b))
	}
	if accepted != 13 {
		t.Errorf("quickReply accepted %d of the bodies, want the first 13", accepted)
	}
}

// FuzzQuickReply: wherever quickReply accepts a body, parseReply's answer
// or error is exactly encoding/json's.
func FuzzQuickReply(f *testing.F) {
	for _, b := range quickBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkQuickReply(t, body) })
}

func checkQuickReply(t *testing.T, body []byte) {
	t.Helper()
	redact := func(s string) string { return "[" + s + "]" }
	a, err := parseReply(body, redact)
	wa, werr := parseReplyJSON(body, redact)
	if a != wa || (err == nil) != (werr == nil) || err != nil && !reflect.DeepEqual(err, werr) && err.Error() != werr.Error() {
		t.Fatalf("%q:\nparseReply     %+v, %v\nencoding/json  %+v, %v", body, a, err, wa, werr)
	}
	if err != nil {
		e, we := err.(*Error), werr.(*Error)
		if e.Class != we.Class || e.Code != we.Code || e.Reason != we.Reason {
			t.Fatalf("%q: error %+v, encoding/json's %+v", body, e, we)
		}
	}
}
