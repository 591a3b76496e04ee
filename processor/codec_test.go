package processor

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

func newTestCodec(t testing.TB, cfg CodecConfig) *Codec {
	t.Helper()
	if cfg.Location == nil {
		cfg.Location = shanghai(t)
	}
	c, err := NewCodec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testEnrichment is a full enrichment and testMember what it encodes to.
var (
	testEnrichment = Enrichment{
		Status:    StatusRecycled,
		Res:       1,
		Date:      "20240102",
		OrderID:   "JH123",
		Source:    "api",
		CheckedAt: time.Date(2024, 1, 2, 11, 4, 5, 999_000_000, time.FixedZone("CST", 8*3600)),
		Mode:      "plain",
	}
	testMember = `"twosell":{"schema":1,"status":"recycled","res":1,"date":"20240102","order_id":"JH123","source":"api","checked_at":"2024-01-02T03:04:05Z","mode":"plain"}`
)

func TestNewCodec(t *testing.T) {
	sh := shanghai(t)
	c, err := NewCodec(CodecConfig{Location: sh})
	if err != nil {
		t.Fatal(err)
	}
	if c.mobileField != "mobile" || c.dateField != "registered_at" || c.idField != "event_id" || c.outputField != "twosell" || c.dateSource != DateSourceField {
		t.Errorf("defaults not applied: %+v", c)
	}

	bad := []struct {
		name string
		cfg  CodecConfig
		want string
	}{
		{"no location", CodecConfig{}, "time zone"},
		{"unknown date source", CodecConfig{Location: sh, DateSource: "header"}, `"header"`},
		{"output over mobile", CodecConfig{Location: sh, OutputField: "mobile"}, "mobile field and the output field"},
		{"id over mobile", CodecConfig{Location: sh, IDField: "phone", MobileField: "phone"}, `"phone"`},
		{"date over default id", CodecConfig{Location: sh, DateField: "event_id"}, "date field and the id field"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewCodec(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewCodec(%+v) error = %v, want one mentioning %q", tc.cfg, err, tc.want)
			}
		})
	}
}

// TestCodecRoundTrip proves that everything but the added member survives
// byte for byte: the output with the member cut out is the input.
func TestCodecRoundTrip(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	tests := []struct {
		name, in string
		id       string
	}{
		{"minimal", `{"mobile":"17312345678","registered_at":"2024-01-02"}`, ""},
		{"design example", `{"event_id": "e-1", "user_id": "u-9", "mobile": "17312345678", "registered_at": "2024-01-02T03:04:05+08:00"}`, "e-1"},
		{"big numbers", `{"n": 123456789012345678901234567890, "f": 1.00000000000000000000001, "e": -1.5E+308, "z": -0, "mobile": 17312345678, "registered_at": 20240102}`, ""},
		{"escapes", `{"s": "a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00 \u2028", "raw": "é😀", "mobile": "+86 173-1234-5678", "registered_at": "2024-01-02"}`, ""},
		{"nested", `{"a": {"b": [1, {"c": null}, [], {}], "d": {"e": {"f": [true, false]}}}, "mobile": "17312345678", "registered_at": "2024-01-02", "tail": [[[]]]}`, ""},
		{"pretty", "{\n  \"mobile\" : \"17312345678\" ,\n\t\"registered_at\":\"2024-01-02\"\r\n}\n", ""},
		{"key order kept", `{"z":1,"registered_at":"2024-01-02","a":2,"mobile":"17312345678","m":3}`, ""},
		{"leading whitespace", " \t{\"mobile\":\"17312345678\",\"registered_at\":\"2024-01-02\"}", ""},
		{"numeric id", `{"event_id": 42, "mobile":"17312345678","registered_at":"2024-01-02"}`, "42"},
		{"escaped id", `{"event_id": "e\u002d1", "mobile":"17312345678","registered_at":"2024-01-02"}`, "e-1"},
		{"object id ignored", `{"event_id": {"x":1}, "mobile":"17312345678","registered_at":"2024-01-02"}`, ""},
		{"similar names are other fields", `{"mobile ":"2","mobil":1,"twosell ":3,"twosel":4,"mobile":"17312345678","registered_at":"2024-01-02"}`, ""},
		{"UTF-8 in another field", `{"name":"张三","mobile":"17312345678","registered_at":"2024-01-02","note":"é😀 "}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := c.Decode([]byte(tc.in), time.Time{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if ev.Mobile != "17312345678" || ev.Date != "20240102" || ev.ID != tc.id {
				t.Errorf("event = {ID:%q Mobile:%q Date:%q}, want {ID:%q Mobile:17312345678 Date:20240102}", ev.ID, ev.Mobile, ev.Date, tc.id)
			}
			out, err := c.Encode(ev, testEnrichment)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if n := strings.Count(string(out), testMember); n != 1 {
				t.Fatalf("output %s has the member %d times, want once", out, n)
			}
			rest := strings.Replace(string(out), ","+testMember, "", 1)
			if rest != tc.in {
				t.Errorf("output minus the member differs from the input:\n got %q\nwant %q", rest, tc.in)
			}
			checkOutput(t, out)
		})
	}
}

// checkOutput checks that out is valid JSON and that its twosell member is
// exactly testEnrichment.
func checkOutput(t *testing.T, out []byte) {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("output is not valid JSON: %s", out)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("output does not decode: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(doc["twosell"], &got); err != nil {
		t.Fatalf("twosell member does not decode: %v", err)
	}
	want := map[string]any{
		"schema": 1.0, "status": "recycled", "res": 1.0, "date": "20240102", "order_id": "JH123",
		"source": "api", "checked_at": "2024-01-02T03:04:05Z", "mode": "plain",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("twosell = %v, want %v", got, want)
	}
}

func TestCodecReplacesOutputField(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	const m, d = `"mobile":"17312345678"`, `"registered_at":"2024-01-02"`
	tests := []struct{ name, in, want string }{
		{"last", `{` + m + `,` + d + `,"twosell":{"old":true}}`, `{` + m + `,` + d + `,` + testMember + `}`},
		{"first", `{"twosell":1,` + m + `,` + d + `}`, `{` + m + `,` + d + `,` + testMember + `}`},
		{"middle", `{` + m + `, "twosell": [1,2] ,` + d + `}`, `{` + m + ` ,` + d + `,` + testMember + `}`},
		{"first two", `{"twosell":1, "twosell":2, ` + m + `,` + d + `}`, `{` + m + `,` + d + `,` + testMember + `}`},
		{"last two", `{` + m + `,` + d + `, "twosell":1 , "twosell":2 }`, `{` + m + `,` + d + `,` + testMember + ` }`},
		{"everywhere", `{"twosell":1,` + m + `,"twosell":2,` + d + `,"twosell":3}`, `{` + m + `,` + d + `,` + testMember + `}`},
		{"escaped name", `{` + m + `,"two\u0073ell":null,` + d + `}`, `{` + m + `,` + d + `,` + testMember + `}`},
		{"pretty", "{\n  \"twosell\": {},\n  " + m + ",\n  " + d + "\n}\n", "{\n  " + m + ",\n  " + d + "," + testMember + "\n}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := c.Decode([]byte(tc.in), time.Time{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			out, err := c.Encode(ev, testEnrichment)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if string(out) != tc.want {
				t.Errorf("Encode\n got %s\nwant %s", out, tc.want)
			}
			checkOutput(t, out)
		})
	}
}

// TestEncodeLayout covers objects that Decode rejects (no mobile) but whose
// layout must still encode right: the empty object and objects that are
// empty once the old output members are cut. It goes through scan, the
// layout half of Decode.
func TestEncodeLayout(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	tests := []struct{ name, in, want string }{
		{"empty object", `{}`, `{` + testMember + `}`},
		{"empty object with spaces", " { \n }\n", " {" + testMember + " \n }\n"},
		{"only the output field", `{"twosell":1}`, `{` + testMember + `}`},
		{"only output fields, spaced", `{ "twosell":1 , "twosell" : {"a":[]} }`, `{` + testMember + `  }`},
		{"one other member", `{"a":1}`, `{"a":1,` + testMember + `}`},
		{"output field then another", `{"twosell":1,"a":1}`, `{"a":1,` + testMember + `}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := &Event{raw: []byte(tc.in)}
			if _, err := c.scan(ev.raw, ev); err != nil {
				t.Fatalf("scan: %v", err)
			}
			out, err := c.Encode(ev, testEnrichment)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if string(out) != tc.want {
				t.Errorf("Encode\n got %s\nwant %s", out, tc.want)
			}
			checkOutput(t, out)
		})
	}
}

func TestCodecInputErrors(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	tests := []struct {
		name, in string
		class    string
		field    string
		reason   []string
	}{
		{"empty", ``, ClassInvalidJSON, "", []string{"empty"}},
		{"only spaces", " \n", ClassInvalidJSON, "", []string{"only white space"}},
		{"truncated", `{"mobile":"173`, ClassInvalidJSON, "", []string{"not valid JSON", "unexpected end of JSON input", "after 14 of 14 bytes"}},
		// Not JSON (RFC 8259), though encoding/json reads it: carried
		// through, strict parsers refused the output.
		{"not UTF-8", "{\"x\":\"\xff\xfe\",\"mobile\":\"17312345678\",\"registered_at\":\"2024-01-02\"}", ClassInvalidJSON, "", []string{"not UTF-8", "byte 6 (0xFF)", "2 bytes are not", "RFC 8259"}},
		{"not UTF-8 in a key", "{\"\xc3\":1,\"mobile\":\"17312345678\",\"registered_at\":\"2024-01-02\"}", ClassInvalidJSON, "", []string{"not UTF-8", "byte 2 (0xC3)"}},
		{"trailing garbage", `{"mobile":"17312345678","registered_at":"2024-01-02"} x`, ClassInvalidJSON, "", []string{"invalid character 'x' after top-level value"}},
		{"two objects", `{}{}`, ClassInvalidJSON, "", []string{"after top-level value"}},
		{"trailing comma", `{"a":1,}`, ClassInvalidJSON, "", []string{"invalid character '}'"}},
		{"single quotes", `{'a':1}`, ClassInvalidJSON, "", []string{"invalid character '\\''"}},
		{"bad escape", `{"a":"\x"}`, ClassInvalidJSON, "", []string{"invalid character 'x' in string escape code"}},
		{"bad nested", `{"a":[1,2}`, ClassInvalidJSON, "", []string{"not valid JSON"}},
		{"control char in string", "{\"a\":\"\x01\"}", ClassInvalidJSON, "", []string{"invalid character"}},
		{"leading zero", `{"a":01}`, ClassInvalidJSON, "", []string{"not valid JSON"}},
		{"array", `[{"mobile":"17312345678"}]`, ClassNotObject, "", []string{"is a JSON array", `expected a JSON object such as {"mobile": "17312345678", "registered_at":`}},
		{"string", `"17312345678"`, ClassNotObject, "", []string{"is a JSON string"}},
		{"number", ` 17312345678 `, ClassNotObject, "", []string{"is a JSON number"}},
		{"null", `null`, ClassNotObject, "", []string{"is null"}},
		{"bool", `true`, ClassNotObject, "", []string{"is a JSON boolean"}},
		{"bad array", `[1,]`, ClassInvalidJSON, "", []string{"not valid JSON"}},
		{"no mobile", `{"registered_at":"2024-01-02"}`, ClassMissingField, "mobile", []string{`field "mobile" is missing; set input.mobile_field`}},
		{"no date", `{"mobile":"17312345678"}`, ClassMissingField, "registered_at", []string{`field "registered_at" is missing; set input.date_field to the field that holds the registration date, or input.date_source: field_or_timestamp to fall back to the record timestamp`}},
		{"bad mobile", `{"mobile":"1731234567","registered_at":"2024-01-02"}`, ClassInvalidMobile, "mobile", []string{`field "mobile" ("173****") has 10 digits`}},
		{"mobile null", `{"mobile":null,"registered_at":"2024-01-02"}`, ClassInvalidMobile, "mobile", []string{`field "mobile" is null; expected the mobile as a string`}},
		{"mobile bool", `{"mobile":true,"registered_at":"2024-01-02"}`, ClassInvalidMobile, "mobile", []string{"is a JSON boolean"}},
		{"mobile object", `{"mobile":{"n":"17312345678"},"registered_at":"2024-01-02"}`, ClassInvalidMobile, "mobile", []string{"is a JSON object"}},
		{"mobile array", `{"mobile":["17312345678"],"registered_at":"2024-01-02"}`, ClassInvalidMobile, "mobile", []string{"is a JSON array"}},
		{"mobile float", `{"mobile":1.7312345678e10,"registered_at":"2024-01-02"}`, ClassInvalidMobile, "mobile", []string{"fraction or an exponent"}},
		{"mobile decimal", `{"mobile":17312345678.0,"registered_at":"2024-01-02"}`, ClassInvalidMobile, "mobile", []string{"fraction or an exponent"}},
		{"mobile negative", `{"mobile":-17312345678,"registered_at":"2024-01-02"}`, ClassInvalidMobile, "mobile", []string{"negative"}},
		{"mobile number too short", `{"mobile":1731234567,"registered_at":"2024-01-02"}`, ClassInvalidMobile, "mobile", []string{"has 10 digits"}},
		{"mobile escaped junk", `{"mobile":"173\u00001234567","registered_at":"2024-01-02"}`, ClassInvalidMobile, "mobile", []string{`'\x00'`}},
		{"bad date", `{"mobile":"17312345678","registered_at":"2024-02-30"}`, ClassInvalidDate, "registered_at", []string{`field "registered_at" ("2024-02-30") is not a valid calendar day`}},
		{"date null", `{"mobile":"17312345678","registered_at":null}`, ClassInvalidDate, "registered_at", []string{`field "registered_at" is null`, "RFC 3339"}},
		{"date ms mix-up", `{"mobile":"17312345678","registered_at":1704124800000000}`, ClassInvalidDate, "registered_at", []string{"microseconds"}},
		{"mobile checked before date", `{"mobile":"1","registered_at":"x"}`, ClassInvalidMobile, "mobile", nil},
		{"JSON checked before fields", `{"mobile":"1","registered_at":"x",}`, ClassInvalidJSON, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := c.Decode([]byte(tc.in), time.Now())
			if err == nil {
				t.Fatalf("Decode(%s) = %+v, want an error", tc.in, ev)
			}
			ie, ok := AsInputError(err)
			if !ok {
				t.Fatalf("Decode error %T %v is not an *InputError", err, err)
			}
			if ie.Class != tc.class || ie.Field != tc.field {
				t.Errorf("class, field = %q, %q; want %q, %q (reason %q)", ie.Class, ie.Field, tc.class, tc.field, ie.Reason)
			}
			for _, want := range tc.reason {
				if !strings.Contains(ie.Reason, want) {
					t.Errorf("reason %q does not contain %q", ie.Reason, want)
				}
			}
			if ie.Error() != ie.Reason {
				t.Errorf("Error() = %q, want the reason", ie.Error())
			}
			// The scanner must agree with encoding/json on validity, and
			// take only UTF-8 for JSON (RFC 8259).
			if valid := json.Valid([]byte(tc.in)) && utf8.ValidString(tc.in); valid == (ie.Class == ClassInvalidJSON) {
				t.Errorf("json.Valid and utf8.Valid = %v but class is %s", valid, ie.Class)
			}
		})
	}
}

func TestCodecDateSources(t *testing.T) {
	sh := shanghai(t)
	recordTime := time.Date(2024, 1, 1, 16, 0, 0, 0, time.UTC) // 2024-01-02 in Shanghai
	tests := []struct {
		name   string
		source DateSource
		in     string
		rt     time.Time
		want   string // the date, or the error class
		reason string
	}{
		{"field", DateSourceField, `{"mobile":"17312345678","registered_at":"2023-05-06"}`, recordTime, "20230506", ""},
		{"field ignores the timestamp when missing", DateSourceField, `{"mobile":"17312345678"}`, recordTime, ClassMissingField, "input.date_source: field_or_timestamp"},
		{"timestamp", DateSourceTimestamp, `{"mobile":"17312345678"}`, recordTime, "20240102", ""},
		{"timestamp ignores the field", DateSourceTimestamp, `{"mobile":"17312345678","registered_at":"garbage"}`, recordTime, "20240102", ""},
		{"timestamp boundary", DateSourceTimestamp, `{"mobile":"17312345678"}`, recordTime.Add(-time.Nanosecond), "20240101", ""},
		{"timestamp zero", DateSourceTimestamp, `{"mobile":"17312345678"}`, time.Time{}, ClassInvalidDate, "input.date_source is timestamp, but the record has no timestamp"},
		{"timestamp -1 ms (none in Kafka)", DateSourceTimestamp, `{"mobile":"17312345678"}`, time.UnixMilli(-1), ClassInvalidDate, "the record has no timestamp"},
		{"timestamp 1970", DateSourceTimestamp, `{"mobile":"17312345678"}`, time.UnixMilli(1000), ClassInvalidDate, "record timestamp (1970-01-01T08:00:01+08:00) is in the year 1970; expected 1990–2100"},
		{"fallback: field present", DateSourceFieldOrTimestamp, `{"mobile":"17312345678","registered_at":"2023-05-06"}`, recordTime, "20230506", ""},
		{"fallback: field missing", DateSourceFieldOrTimestamp, `{"mobile":"17312345678"}`, recordTime, "20240102", ""},
		{"fallback: field null", DateSourceFieldOrTimestamp, `{"mobile":"17312345678","registered_at":null}`, recordTime, "20240102", ""},
		{"fallback: field invalid is not replaced", DateSourceFieldOrTimestamp, `{"mobile":"17312345678","registered_at":"2023-02-30"}`, recordTime, ClassInvalidDate, "not a valid calendar day"},
		{"fallback: no timestamp either", DateSourceFieldOrTimestamp, `{"mobile":"17312345678"}`, time.Time{}, ClassInvalidDate, `field "registered_at" is missing or null and input.date_source is field_or_timestamp, but the record has no timestamp`},
		{"duplicate date: refused", DateSourceField, `{"registered_at":"2020-01-01","mobile":"17312345678","registered_at":"2023-05-06"}`, recordTime, ClassDuplicateField, `"registered_at" appears more than once`},
		{"date in another case: refused", DateSourceFieldOrTimestamp, `{"mobile":"17312345678","Registered_At":"2023-05-06"}`, recordTime, ClassMissingField, `"registered_at" is missing, but there is "Registered_At": field names are case-sensitive`},
		{"date in another case, date from the timestamp", DateSourceTimestamp, `{"mobile":"17312345678","Registered_At":"2023-05-06"}`, recordTime, "20240102", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCodec(t, CodecConfig{DateSource: tc.source, Location: sh})
			ev, err := c.Decode([]byte(tc.in), tc.rt)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if ev.Date != tc.want {
					t.Errorf("Date = %s, want %s", ev.Date, tc.want)
				}
				return
			}
			ie, ok := AsInputError(err)
			if !ok || ie.Class != tc.want || !strings.Contains(ie.Reason, tc.reason) {
				t.Fatalf("Decode error = %v (%#v), want class %s with %q", err, err, tc.want, tc.reason)
			}
		})
	}
}

func TestCodecConfiguredNames(t *testing.T) {
	c := newTestCodec(t, CodecConfig{MobileField: "phone", DateField: "ts", IDField: "id", OutputField: `two"sell`})
	in := `{"id":"x","phone":8617312345678,"ts":1704124800,"mobile":"1","registered_at":"bad","twosell":0,"two\"sell":1}`
	ev, err := c.Decode([]byte(in), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "x" || ev.Mobile != "17312345678" || ev.Date != "20240102" {
		t.Errorf("event = %+v", ev)
	}
	out, err := c.Encode(ev, Enrichment{Status: StatusNoRecord, CheckedAt: time.Unix(0, 0).Add(24 * time.Hour), Mode: "md5"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"x","phone":8617312345678,"ts":1704124800,"mobile":"1","registered_at":"bad","twosell":0,"two\"sell":{"schema":1,"status":"no_record","date":"20240102","checked_at":"1970-01-02T00:00:00Z","mode":"md5"}}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

// A mobile or a date sent twice, or in two cases, is refused: parsers
// differ in which one they read (encoding/json: the last, in any case; many
// others: the first, exact case only), and the output's consumer must read
// the number that was checked. The id field's last occurrence wins.
func TestCodecDuplicateFields(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	for _, in := range []string{
		`{"mobile":"bad","mobile":"13912345678","registered_at":"2024-01-02"}`,
		`{"mobile":"13912345678","mobile":"13912345678","registered_at":"2024-01-02"}`,
		`{"mobile":"13912345678","mob\u0069le":"17312345678","registered_at":"2024-01-02"}`, // escaped: the same key
		`{"mobile":"13912345678","Mobile":"17312345678","registered_at":"2024-01-02"}`,
		`{"MOBILE":"13912345678","mobile":"17312345678","registered_at":"2024-01-02"}`,
		`{"mobile":"13912345678","registered_at":"2024-01-02","REGISTERED_AT":"2020-01-01"}`,
		"{\"mobile\":\"13912345678\",\"registered_at\":\"2024-01-02\",\"regi\u017ftered_at\":\"2020-01-01\"}", // U+017F folds to 's'
	} {
		_, err := c.Decode([]byte(in), time.Time{})
		ie, ok := AsInputError(err)
		if !ok || ie.Class != ClassDuplicateField || !strings.Contains(ie.Reason, "appears more than once") || strings.Contains(ie.Reason, "1391") || strings.Contains(ie.Reason, "1731") {
			t.Errorf("%s: %v, want a duplicate_field error without the numbers", in, err)
		}
	}
	_, err := c.Decode([]byte(`{"mobile":"13912345678","Mobile":"17312345678","registered_at":"2024-01-02"}`), time.Time{})
	if ie, _ := AsInputError(err); ie == nil || ie.Field != "mobile" || !strings.Contains(ie.Reason, `also as "Mobile"`) {
		t.Errorf("err = %v, want it to name the other key", err)
	}
	// In another case only: missing, and the error says what is there.
	_, err = c.Decode([]byte(`{"Mobile":"13912345678","registered_at":"2024-01-02"}`), time.Time{})
	if ie, _ := AsInputError(err); ie == nil || ie.Class != ClassMissingField || !strings.Contains(ie.Reason, `there is "Mobile"`) {
		t.Errorf("err = %v, want missing_field naming \"Mobile\"", err)
	}
	// Keys like the field but not it, and the id twice, are fine.
	ev, err := c.Decode([]byte(`{"mobile":"13912345678","mobiles":"x","mobil":"y","event_id":"a","event_id":"b","registered_at":"2024-01-02"}`), time.Time{})
	if err != nil || ev.Mobile != "13912345678" || ev.ID != "b" {
		t.Errorf("got %+v, %v", ev, err)
	}
}

func TestEncodeEscapesAndOmits(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	ev, err := c.Decode([]byte(`{"mobile":"17312345678","registered_at":"2024-01-02"}`), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		e      Enrichment
		member string
	}{
		{"minimal, date from the event", Enrichment{Status: StatusSkipped, CheckedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
			`"twosell":{"schema":1,"status":"skipped","date":"20240102","checked_at":"2024-01-02T03:04:05Z","mode":""}`},
		{"offset converted to UTC, fraction dropped", Enrichment{Status: StatusNotRecycled, Res: 2, Source: "cache", Date: "20230101",
			CheckedAt: time.Date(2024, 1, 2, 0, 30, 0, 123, time.FixedZone("", 8*3600)), Mode: "sha256+aes"},
			`"twosell":{"schema":1,"status":"not_recycled","res":2,"date":"20230101","source":"cache","checked_at":"2024-01-01T16:30:00Z","mode":"sha256+aes"}`},
		{"escaping", Enrichment{Status: StatusRecycled, Res: 1, OrderID: "JH\"\\\n\x01</>&\u2028\u2029é\xff", CheckedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Mode: "plain"},
			`"twosell":{"schema":1,"status":"recycled","res":1,"date":"20240102","order_id":"JH\"\\\n\u0001</>&\u2028\u2029é\ufffd","checked_at":"2024-01-02T03:04:05Z","mode":"plain"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.Encode(ev, tc.e)
			if err != nil {
				t.Fatal(err)
			}
			want := `{"mobile":"17312345678","registered_at":"2024-01-02",` + tc.member + `}`
			if string(out) != want {
				t.Errorf("got  %s\nwant %s", out, want)
			}
			var v struct {
				Twosell struct {
					OrderID string `json:"order_id"`
				} `json:"twosell"`
			}
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatal(err)
			}
			if want := strings.ToValidUTF8(tc.e.OrderID, "\ufffd"); v.Twosell.OrderID != want {
				t.Errorf("order_id decodes to %q, want %q", v.Twosell.OrderID, want)
			}
		})
	}
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", "é😀", "\x00\x1f\x7f", "a\u2028b\u2029c", "\xff", "\xed\xa0\x80", `"\`, "\t\r\n\b\f",
		"a longer plain string, eight bytes at a time", "12345678\"", "1234567\x01tail of it", "abcdefgh\xffabcdefgh", "abcdefgé😀hijklmnop"}
	// Random strings over the bytes that matter, long enough for the
	// eight-bytes-at-a-time path to start and stop anywhere.
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("ab7 ~\"\\\x00\x1f\x7f\x80\xc3\xa9\xe2\x80\xa8\xff")
	for range 2000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[i] = 'a' + byte(rng.IntN(26))
			}
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		got := appendJSONString(nil, s)
		// encoding/json writes \b and \f as \u0008 and \u000c too, but the
		// decoded text is what matters.
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: %v", s, got, err)
		}
		var wantBack string
		if err := json.Unmarshal(want.Bytes(), &wantBack); err != nil {
			t.Fatal(err)
		}
		if back != wantBack {
			t.Errorf("appendJSONString(%q) decodes to %q, encoding/json's to %q", s, back, wantBack)
		}
	}
}

func TestAppendEncode(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	ev, err := c.Decode([]byte(`{"mobile":"17312345678","registered_at":"2024-01-02"}`), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	dst := []byte("prefix|")
	out, err := c.AppendEncode(dst, ev, testEnrichment)
	if err != nil {
		t.Fatal(err)
	}
	want := `prefix|{"mobile":"17312345678","registered_at":"2024-01-02",` + testMember + `}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		out, _ = c.AppendEncode(out[:0], ev, testEnrichment)
	}); allocs != 0 {
		t.Errorf("AppendEncode into a buffer with room: %v allocs, want 0", allocs)
	}
}

func TestEncodeErrors(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	ev, err := c.Decode([]byte(`{"mobile":"17312345678","registered_at":"2024-01-02"}`), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ev   *Event
		e    Enrichment
	}{
		{"nil event", nil, testEnrichment},
		{"hand-made event", &Event{Mobile: "17312345678"}, testEnrichment},
		{"no status", ev, Enrichment{CheckedAt: time.Now()}},
		{"no time", ev, Enrichment{Status: StatusRecycled}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := c.Encode(tc.ev, tc.e); err == nil {
				t.Fatalf("Encode = %s, want an error", out)
			} else if _, ok := AsInputError(err); ok {
				t.Fatalf("Encode error %v is an InputError; it is a programming error", err)
			}
		})
	}
}

func TestDecodeNesting(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	// encoding/json allows 10000 levels; the scanner must agree exactly.
	for _, depth := range []int{9999, 10000, 10001} {
		inner := depth - 1 // the top-level object is one level
		in := `{"mobile":"17312345678","registered_at":"2024-01-02","deep":` + strings.Repeat("[", inner) + strings.Repeat("]", inner) + `}`
		_, err := c.Decode([]byte(in), time.Time{})
		valid := json.Valid([]byte(in))
		if (err == nil) != valid {
			t.Errorf("depth %d: Decode error %v, json.Valid %v", depth, err, valid)
		}
		// Too deep says so: encoding/json's own words, "invalid
		// character '['", told of a fault the value does not have (a
		// walkthrough).
		if ie, ok := AsInputError(err); err != nil && (!ok || ie.Class != ClassInvalidJSON ||
			!strings.Contains(ie.Reason, "nests arrays and objects more than 10000 levels deep") || strings.Contains(ie.Reason, "invalid character")) {
			t.Errorf("depth %d: %v; want invalid_json saying it nests too deep", depth, err)
		}
	}
}

func TestDecodeAllocations(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	in := []byte(`{"event_id":"e-1","user_id":"u-9","mobile":"+86 173-1234-5678","registered_at":"2024-01-02T03:04:05+08:00","n":123456789012345678901234567890,"nested":{"a":[1,2,3]}}`)
	if allocs := testing.AllocsPerRun(100, func() {
		if _, err := c.Decode(in, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}); allocs > 2 {
		t.Errorf("Decode: %v allocs, want at most 2 (the Event and its strings)", allocs)
	}
}

func TestEventLookup(t *testing.T) {
	ev := &Event{Mobile: "17312345678", Date: "20240102"}
	if got := ev.Lookup(); got != (Lookup{Mobile: "17312345678", Date: "20240102"}) {
		t.Errorf("Lookup = %+v", got)
	}
}

// TestHasSpecialByte checks the word-at-a-time test against the byte table
// for every byte value at every position, next to plain and high bytes
// (where a borrow could leak into a neighbour).
func TestHasSpecialByte(t *testing.T) {
	for _, fill := range []byte{'a', 0x7f, 0x80, 0xff, ' ', '#', ']'} {
		for pos := 0; pos < 8; pos++ {
			for b := 0; b < 256; b++ {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[pos] = byte(b)
				x := binary.LittleEndian.Uint64(w[:])
				want := !plainStringByte[b] || !plainStringByte[fill]
				if got := hasSpecialByte(x); got != want {
					t.Fatalf("hasSpecialByte(% x) = %v, want %v", w, got, want)
				}
			}
		}
	}
}

// TestSpecialBytesFirst checks that specialBytes' lowest flag is the first
// special byte of the word, for random words rich in special and high bytes
// (scanString jumps to it).
func TestSpecialBytesFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{'a', ' ', '"', '\\', 0x00, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xc3, 0xff, '#', 0x01}
	for range 200000 {
		var w [8]byte
		for i := range w {
			w[i] = alphabet[rng.IntN(len(alphabet))]
		}
		first := 8
		for i, b := range w {
			if !plainStringByte[b] {
				first = i
				break
			}
		}
		m := specialBytes(binary.LittleEndian.Uint64(w[:]))
		got := 8
		if m != 0 {
			got = bits.TrailingZeros64(m) >> 3
		}
		if got != first {
			t.Fatalf("specialBytes(% x): first flag at %d, want %d", w, got, first)
		}
	}
}

// A mobile in the date's field (fields swapped or shifted) is masked in the
// invalid_date reason, as mobiles are in every reason; and a UTF-8 byte
// order mark is named as such. (Found by review: the number was shown
// whole, and the mark as "invalid character 'ï'".)
func TestReasonsMaskMobilesAndNameTheBOM(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	for _, in := range []string{
		`{"mobile":"17312345678","registered_at":"13912345678"}`,
		`{"mobile":"17312345678","registered_at":13912345678}`,
		`{"mobile":"17312345678","registered_at":"+86 139 1234 5678"}`,
	} {
		_, err := c.Decode([]byte(in), time.Time{})
		ie, ok := AsInputError(err)
		if !ok || ie.Class != ClassInvalidDate {
			t.Fatalf("%s: err = %v, want invalid_date", in, err)
		}
		if strings.Contains(ie.Reason, "12345678") || strings.Contains(ie.Reason, "1234 5678") || !strings.Contains(ie.Reason, "****") {
			t.Errorf("%s: reason %q does not mask the number", in, ie.Reason)
		}
	}
	_, err := c.Decode([]byte("\xef\xbb\xbf{\"mobile\":\"17312345678\",\"registered_at\":\"2024-01-02\"}"), time.Time{})
	if ie, ok := AsInputError(err); !ok || ie.Class != ClassInvalidJSON || !strings.Contains(ie.Reason, "byte order mark") {
		t.Errorf("BOM: %v, want invalid_json naming the byte order mark", err)
	}
}

// checked_at comes from the last second written when it can
// (appendCheckedAt): every output still has its own instant's second,
// whatever order seconds come in, from many dispatchers at once, outside
// 1970–9999 too; and res is written as it is, one digit or more.
func TestEncodeCheckedAtAndRes(t *testing.T) {
	t.Parallel()
	c := newTestCodec(t, CodecConfig{})
	ev, err := c.Decode([]byte(`{"mobile":"17312345678","registered_at":"2024-01-02"}`), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 30, 23, 59, 58, 0, time.UTC)
	var times []time.Time
	for _, d := range []time.Duration{0, 400 * time.Millisecond, 999999999, time.Second, 2 * time.Second, -time.Second, 0, 24 * time.Hour} {
		times = append(times, base.Add(d))
	}
	times = append(times, time.Date(1969, 12, 31, 23, 59, 59, 500, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 500, time.UTC), base.In(time.FixedZone("", 8*3600)), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC))
	check := func(tm time.Time, res int) error {
		out, err := c.Encode(ev, Enrichment{Status: StatusRecycled, Res: res, CheckedAt: tm, Mode: "plain"})
		if err != nil {
			return err
		}
		var v struct {
			Twosell struct {
				Res       int    `json:"res"`
				CheckedAt string `json:"checked_at"`
			} `json:"twosell"`
		}
		if err := json.Unmarshal(out, &v); err != nil {
			return fmt.Errorf("%s: %v", out, err)
		}
		if want := tm.UTC().Format(time.RFC3339); v.Twosell.CheckedAt != want || v.Twosell.Res != res {
			return fmt.Errorf("%v, res %d: %s; want checked_at %s", tm, res, out, want)
		}
		return nil
	}
	for i, tm := range times {
		if err := check(tm, []int{1, 2, 3, 9, 10, 12, 100}[i%7]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				if err := check(base.Add(time.Duration(g*7+i%5)*time.Second), 1+i%3); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// The member's words written from constants are what appendJSONString
// writes, and other strings still go through it.
func TestAppendWordString(t *testing.T) {
	t.Parallel()
	words := []string{"recycled", "not_recycled", "no_activation_date", "no_record", "unavailable", "skipped",
		"cache", "api", "plain", "md5+aes", "", "pla\"in", "a\\b", "\u2028", "\xff"}
	for _, w := range words {
		if got, want := string(appendWordString([]byte("x"), w)), string(appendJSONString([]byte("x"), w)); got != want {
			t.Errorf("%q: %s, want %s", w, got, want)
		}
	}
}

// Keys are compared in case only when their first byte may fold to the
// name's (foldRange.lead): the folds that begin outside ASCII still are, as
// encoding/json folds them (the Kelvin sign to k, the long s to s).
func TestCodecCaseVariantsOfTheFirstLetter(t *testing.T) {
	t.Parallel()
	c := newTestCodec(t, CodecConfig{MobileField: "kontakt", DateField: "sent_at"})
	for _, in := range []string{
		"{\"kontakt\":\"13912345678\",\"\u212aontakt\":\"17312345678\",\"sent_at\":\"2024-01-02\"}",
		`{"kontakt":"13912345678","Kontakt":"17312345678","sent_at":"2024-01-02"}`,
		"{\"kontakt\":\"13912345678\",\"sent_at\":\"2024-01-02\",\"\u017fent_at\":\"2020-01-01\"}",
		`{"kontakt":"13912345678","sent_at":"2024-01-02","Sent_At":"2020-01-01"}`,
	} {
		var v struct {
			Kontakt string `json:"kontakt"`
			SentAt  string `json:"sent_at"`
		}
		if err := json.Unmarshal([]byte(in), &v); err != nil || v.Kontakt != "17312345678" && v.SentAt != "2020-01-01" {
			t.Fatalf("%s: encoding/json reads %+v, %v: not a case variant", in, v, err)
		}
		if _, err := c.Decode([]byte(in), time.Time{}); err == nil || !strings.Contains(err.Error(), "more than once") {
			t.Errorf("%s: %v, want a duplicate_field error", in, err)
		}
	}
	ev, err := c.Decode([]byte(`{"kontakt":"13912345678","xontakt":"17312345678","sent_at":"2024-01-02","xent_at":"2020-01-01"}`), time.Time{})
	if err != nil || ev.Mobile != "13912345678" || ev.Date != "20240102" {
		t.Errorf("keys of the names' lengths that are not their variants: %+v, %v", ev, err)
	}
}
