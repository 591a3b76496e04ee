package juhe_test

import (
	"errors"
	"testing"

	"github.com/twosell/twosell/juhe"
)

func TestParseReply(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		want  juhe.Answer
		class juhe.Class // when an error is expected
		err   bool
	}{
		{"doc example", `{"reason":"成功","result":{"res":2,"orderid":"JH327201911081525223306"},"error_code":0}`,
			juhe.Answer{Res: 2, OrderID: "JH327201911081525223306"}, 0, false},
		{"res 1", `{"reason":"成功","result":{"res":1,"orderid":"JH1"},"error_code":0}`, juhe.Answer{Res: 1, OrderID: "JH1"}, 0, false},
		{"res 3 no orderid", `{"result":{"res":3},"error_code":0}`, juhe.Answer{Res: 3}, 0, false},
		{"extra fields", `{"reason":"成功","result":{"res":1,"orderid":"JH1","x":[1]},"error_code":0,"extra":{}}`, juhe.Answer{Res: 1, OrderID: "JH1"}, 0, false},
		{"no record", `{"reason":"查无记录","result":null,"error_code":232703}`, juhe.Answer{NoRecord: true, Code: 232703}, 0, false},
		{"no record with a string result", `{"reason":"查无记录","result":"","error_code":232703}`, juhe.Answer{NoRecord: true, Code: 232703}, 0, false},
		{"bad parameter", `{"reason":"参数异常","result":null,"error_code":232702}`, juhe.Answer{}, juhe.ClassRecord, true},
		{"error with a string result", `{"reason":"错误的请求KEY","result":"","error_code":10001}`, juhe.Answer{}, juhe.ClassFatal, true},
		{"unknown code", `{"reason":"?","result":null,"error_code":31337}`, juhe.Answer{}, juhe.ClassUnknown, true},
		{"empty", ``, juhe.Answer{}, juhe.ClassTransport, true},
		{"html", `<html></html>`, juhe.Answer{}, juhe.ClassTransport, true},
		{"array", `[]`, juhe.Answer{}, juhe.ClassTransport, true},
		{"no error_code", `{"reason":"成功","result":{"res":1}}`, juhe.Answer{}, juhe.ClassTransport, true},
		{"null error_code", `{"reason":"成功","result":{"res":1},"error_code":null}`, juhe.Answer{}, juhe.ClassTransport, true},
		{"string error_code", `{"result":{"res":1},"error_code":"0"}`, juhe.Answer{}, juhe.ClassTransport, true},
		{"no result", `{"error_code":0}`, juhe.Answer{}, juhe.ClassTransport, true},
		{"null result", `{"result":null,"error_code":0}`, juhe.Answer{}, juhe.ClassTransport, true},
		{"no res", `{"result":{"orderid":"JH1"},"error_code":0}`, juhe.Answer{}, juhe.ClassTransport, true},
		{"res 0", `{"result":{"res":0},"error_code":0}`, juhe.Answer{}, juhe.ClassTransport, true},
		{"res 4", `{"result":{"res":4},"error_code":0}`, juhe.Answer{}, juhe.ClassTransport, true},
		{"res string", `{"result":{"res":"1"},"error_code":0}`, juhe.Answer{}, juhe.ClassTransport, true},
		{"res float", `{"result":{"res":1.5},"error_code":0}`, juhe.Answer{}, juhe.ClassTransport, true},
		{"trailing garbage", `{"result":{"res":1},"error_code":0} x`, juhe.Answer{}, juhe.ClassTransport, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := juhe.ParseReply([]byte(tt.body))
			if !tt.err {
				if err != nil || a != tt.want {
					t.Errorf("ParseReply = %+v, %v; want %+v", a, err, tt.want)
				}
				return
			}
			var e *juhe.Error
			if !errors.As(err, &e) || e.Class != tt.class {
				t.Errorf("ParseReply error = %v, want class %v", err, tt.class)
			}
		})
	}
}

func TestAnswerStatus(t *testing.T) {
	for a, want := range map[juhe.Answer]string{
		{Res: 1}:         "recycled",
		{Res: 2}:         "not_recycled",
		{Res: 3}:         "no_activation_date",
		{NoRecord: true}: "no_record",
		{}:               "",
		{Res: 9}:         "",
	} {
		if got := a.Status(); got != want {
			t.Errorf("%+v.Status() = %q, want %q", a, got, want)
		}
	}
}

// FuzzParseReply checks that any body yields either a well-formed answer or
// a classified *Error, and never panics.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		`{"reason":"成功","result":{"res":2,"orderid":"JH327201911081525223306"},"error_code":0}`,
		`{"reason":"查无记录","result":null,"error_code":232703}`,
		`{"reason":"参数异常","result":null,"error_code":232702}`,
		`{"error_code":0,"result":{"res":7}}`,
		`{"error_code":10012}`,
		`garbage`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := juhe.ParseReply(body)
		if err != nil {
			if _, ok := juhe.ClassOf(err); !ok {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if a.NoRecord != (a.Code == juhe.CodeNoRecord) || (!a.NoRecord && (a.Res < 1 || a.Res > 3)) || a.Status() == "" {
			t.Fatalf("malformed answer %+v", a)
		}
	})
}
