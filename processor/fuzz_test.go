package processor

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// mobilePattern is the contract's pattern, checked here with regexp as an
// oracle independent of the hand-written check.
var mobilePattern = regexp.MustCompile(`^1[3-9]\d{9}$`)

// FuzzDecode holds Decode and Encode to their contract on any bytes: an
// *InputError or an Event whose encoding is valid JSON with exactly one
// output member; invalid_json exactly when encoding/json says the value is
// invalid; the fields it extracts are the ones encoding/json sees; and
// everything but the added member survives byte for byte.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"event_id": "e-1", "user_id": "u-9", "mobile": "17312345678", "registered_at": "2024-01-02T03:04:05+08:00"}`,
		`{"mobile": 8617312345678, "registered_at": 1704124800000, "n": 123456789012345678901234567890}`,
		`{"twosell": {"schema": 1}, "mobile": "+86 173-1234-5678", "registered_at": "20240102", "twosell": 2}`,
		`{"mob\u0069le": "１７３１２３４５６７８", "registered_at": null}`,
		"{\n \"mobile\" : \"0086 17312345678\" ,\n \"registered_at\" : \"2024-01-02\" , \"a\" : [ {} , [ ] ] \n}\n",
		`{}`, `[]`, `"x"`, `null`, ``, `{"a":1,}`, `{"a"`, `{"mobile":"17312345678","registered_at":"2024-01-02"} x`,
		`{"event_id":"\ud83d\ude00","mobile":"17312345678","registered_at":"2024-01-02"}`,
	} {
		f.Add([]byte(seed), int64(1704124800000), uint8(0))
	}
	f.Add([]byte(`{"mobile":"17312345678"}`), int64(1704124800000), uint8(1))
	f.Add([]byte(`{"mobile":"17312345678","registered_at":null}`), int64(-1), uint8(2))

	sh := shanghai(f)
	var codecs [3]*Codec
	for i, src := range []DateSource{DateSourceField, DateSourceTimestamp, DateSourceFieldOrTimestamp} {
		codecs[i] = newTestCodec(f, CodecConfig{DateSource: src, Location: sh})
	}
	f.Fuzz(func(t *testing.T, value []byte, recordMillis int64, source uint8) {
		c := codecs[int(source)%len(codecs)]
		var recordTime time.Time
		if recordMillis != 0 {
			recordTime = time.UnixMilli(recordMillis)
		}
		in := bytes.Clone(value)
		ev, err := c.Decode(value, recordTime)
		if !bytes.Equal(in, value) {
			t.Fatal("Decode modified its input")
		}
		valid := json.Valid(value) && utf8.Valid(value) // JSON is UTF-8 (RFC 8259); encoding/json does not check
		if err != nil {
			ie, ok := AsInputError(err)
			if !ok {
				t.Fatalf("Decode error %T %v is not an *InputError", err, err)
			}
			if ev != nil {
				t.Fatal("Decode returned an event and an error")
			}
			if (ie.Class == ClassInvalidJSON) == valid {
				t.Fatalf("class %s but json.Valid = %v (reason %q)", ie.Class, valid, ie.Reason)
			}
			if ie.Reason == "" {
				t.Fatal("empty reason")
			}
			return
		}
		if !valid {
			t.Fatalf("Decode accepted invalid JSON %q", value)
		}
		if !mobilePattern.MatchString(ev.Mobile) {
			t.Fatalf("Mobile %q does not match the pattern", ev.Mobile)
		}
		if _, err := time.Parse("20060102", ev.Date); err != nil || len(ev.Date) != 8 {
			t.Fatalf("Date %q is not yyyymmdd: %v", ev.Date, err)
		}

		// The fields are those encoding/json sees (a map: exact keys, the
		// last duplicate wins).
		var m map[string]json.RawMessage
		if err := json.Unmarshal(value, &m); err != nil {
			t.Fatalf("encoding/json rejects a value Decode accepted: %v", err)
		}
		var mobile string
		if json.Unmarshal(m["mobile"], &mobile) != nil {
			mobile = string(m["mobile"]) // an integer
		}
		if want, err := NormalizeMobile(mobile); err != nil || want != ev.Mobile {
			t.Fatalf("Mobile %q, but the field %s normalizes to %q, %v", ev.Mobile, m["mobile"], want, err)
		}
		// And a consumer decoding into a struct (keys in any case, the last
		// wins) reads the very member that was checked.
		var st struct {
			Mobile json.RawMessage `json:"mobile"`
		}
		if err := json.Unmarshal(value, &st); err != nil || !bytes.Equal(st.Mobile, m["mobile"]) {
			t.Fatalf("a struct reads mobile %s, the map %s (%v)", st.Mobile, m["mobile"], err)
		}
		var id string
		if raw, ok := m["event_id"]; ok && json.Unmarshal(raw, &id) != nil {
			id = ""
			if raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9') {
				id = string(raw)
			}
		}
		if id != ev.ID {
			t.Fatalf("ID %q, encoding/json says %q", ev.ID, id)
		}

		e := Enrichment{Status: StatusRecycled, Res: 1, OrderID: "JH\"1\u2028", Source: "api", CheckedAt: time.Unix(1704124800, 0), Mode: "plain"}
		out, err := c.AppendEncode(make([]byte, 0, 8), ev, e)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("Encode output is not valid JSON:\n in %q\nout %q", value, out)
		}
		// The output has one member a struct consumer reads as "twosell",
		// the added one, last: members named like it, in any case
		// encoding/json folds, are cut.
		keys := topLevelKeys(t, out)
		n := 0
		for _, k := range keys {
			if foldsToOutputField(k) { // the key itself, or a case variant: "0twosell" is another member
				n++
			}
		}
		if n != 1 || keys[len(keys)-1] != "twosell" {
			t.Fatalf("output keys %q: want one twosell, last, and no case variant of it", keys)
		}
		cut := false
		for k := range m {
			cut = cut || foldsToOutputField(k)
		}
		if !cut {
			member := c.appendMember(nil, ev, &e)
			if rest := bytes.Replace(out, member, nil, 1); !bytes.Equal(rest, value) {
				t.Fatalf("output minus the member is not the input:\n in %q\nout %q", value, out)
			}
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			if !foldsToOutputField(k) && !bytes.Equal(doc[k], v) {
				t.Fatalf("member %q changed: %s -> %s", k, v, doc[k])
			}
		}
	})
}

// foldsToOutputField reports whether encoding/json reads a member named k
// into a struct field named "twosell" (keys match in any case it folds).
func foldsToOutputField(k string) bool {
	doc, err := json.Marshal(map[string]int{k: 1})
	if err != nil {
		return false
	}
	var st struct {
		Twosell int `json:"twosell"`
	}
	return json.Unmarshal(doc, &st) == nil && st.Twosell == 1
}

// topLevelKeys lists the keys of a JSON object in order, duplicates included.
func topLevelKeys(t *testing.T, doc []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %v %v", tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dec.Token(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return keys
}

// FuzzNormalizeMobile: a result always matches the pattern, is the last 11
// digits of the input, and normalizes to itself; a failure is an
// *InputError that does not repeat the input's digits.
func FuzzNormalizeMobile(f *testing.F) {
	for _, seed := range []string{
		"17312345678", "+86 173-1234-5678", "0086 17312345678", "8617312345678", "86 173 1234 5678",
		"１７３１２３４５６７８", "＋８６１７３１２３４５６７８", "173\u30001234\u30005678", "173\u20141234\u20145678",
		"1731234567", "173123456789", "12312345678", "10312345678", "23312345678", "173a2345678", "",
		"86123456789", "+1 555 123 4567", "+", "\xff",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeMobile(s)
		if err != nil {
			ie, ok := AsInputError(err)
			if !ok || ie.Class != ClassInvalidMobile || ie.Reason == "" {
				t.Fatalf("error %#v is not an invalid_mobile InputError", err)
			}
			if len(s) >= 8 && strings.Trim(s, "0123456789") == "" && strings.Contains(ie.Reason, s) {
				t.Fatalf("reason %q repeats the digits of %q", ie.Reason, s)
			}
			return
		}
		if !mobilePattern.MatchString(got) {
			t.Fatalf("NormalizeMobile(%q) = %q does not match the pattern", s, got)
		}
		if digits := digitsOf(s); !strings.HasSuffix(digits, got) {
			t.Fatalf("NormalizeMobile(%q) = %q is not the end of its digits %q", s, got, digits)
		}
		if again, err := NormalizeMobile(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, got, again, err)
		}
	})
}

// digitsOf is the input's digits, full-width ones as ASCII.
func digitsOf(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= '０' && r <= '９':
			b.WriteRune('0' + r - '０')
		}
	}
	return b.String()
}

// FuzzParseDate: a day in 1990–2100 or an invalid_date InputError, never a
// panic; and the same day as time.Parse for what both accept.
func FuzzParseDate(f *testing.F) {
	for _, seed := range []string{
		`"2024-01-02T03:04:05+08:00"`, `"2024-01-01T16:00:00Z"`, `"2024-01-01T15:59:59.999999999Z"`,
		`"2024-01-02"`, `"20240102"`, `20240102`, `1704124800`, `1704124800000`, `"1704124800"`,
		`1704124799.5`, `null`, `"2024-02-30"`, `"1989-12-31"`, `1704124800000000`, `"2024-01-02T03:04:05"`,
		`-1`, `1e9`, `"2024\u002d01\u002d02"`, `{}`, `""`, ``,
	} {
		f.Add([]byte(seed))
	}
	sh := shanghai(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := ParseDate(raw, sh)
		if err != nil {
			ie, ok := AsInputError(err)
			if !ok || ie.Class != ClassInvalidDate || ie.Reason == "" {
				t.Fatalf("error %#v is not an invalid_date InputError", err)
			}
			return
		}
		day, perr := time.Parse("20060102", got)
		if perr != nil || day.Year() < 1990 || day.Year() > 2100 {
			t.Fatalf("ParseDate(%q) = %q: not a day in 1990–2100 (%v)", raw, got, perr)
		}
		var s string
		if json.Unmarshal(raw, &s) == nil && utf8.ValidString(s) {
			if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
				if want := DayOf(ts, sh); want != got {
					t.Fatalf("ParseDate(%s) = %s, time.Parse says %s", raw, got, want)
				}
			}
		}
	})
}
