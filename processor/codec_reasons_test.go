package processor_test

// Dead-letter reasons a review of the data contract found wrong (each test
// failed before its fix).

import (
	"strings"
	"testing"
	"time"

	"github.com/twosell/twosell/processor"
)

func decodeError(t *testing.T, value string) *processor.InputError {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	c, err := processor.NewCodec(processor.CodecConfig{Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Decode([]byte(value), time.Time{})
	ie, ok := processor.AsInputError(err)
	if !ok {
		t.Fatalf("Decode(%s) = %v, want an *InputError", value, err)
	}
	return ie
}

// README "Dead letters": "`twosell-error` | a sentence saying what is wrong
// and what would be valid, mobile masked". (Brief: no mobile in clear in
// reasons.) The date reason masked a mobile that the mobile field would
// accept and hid one written as a plain run of digits, but showed it in
// clear when it was written with spaces, dashes or full-width digits next to
// any other character (fields swapped or shifted, as date.go's fail expects).
func TestDateReasonHidesAMobileWrittenWithSeparators(t *testing.T) {
	for _, date := range []string{
		`"tel: 173-1234-5678"`,
		`"173 1234 5678 (cell)"`,
		`"mobile 173 1234 5678"`,
		`"１７３１２３４５６７８x"`,
		`"(173) 1234-5678"`, `"173/1234/5678"`, `"tel:(173)12345678"`,
	} {
		ie := decodeError(t, `{"mobile":"17312345678","registered_at":`+date+`}`)
		if ie.Class != processor.ClassInvalidDate {
			t.Errorf("%s: class %q, want %q", date, ie.Class, processor.ClassInvalidDate)
		}
		if strings.Contains(processor.DigitsOf(ie.Reason), "17312345678") {
			t.Errorf("date %s: the reason shows the mobile in clear: %q", date, ie.Reason)
		}
	}
}

// README "Input": "A field present only in another case is `missing_field`,
// and the reason names the key that is there"; "An event with the mobile or
// the date field **twice** (the same key, or keys that differ in case only,
// such as `mobile` and `Mobile`) is dead-lettered (`duplicate_field`)".
// DESIGN "Dead letters": "`twosell-error` (a human sentence)". With the field
// only in two other cases, the reason says the configured field itself
// "appears more than once" (it does not appear at all) and names only one of
// the two keys that are there.
func TestCaseOnlyDuplicateReasonNamesBothKeys(t *testing.T) {
	for _, tc := range []struct{ value, field, a, b string }{
		{`{"Mobile":"17312345678","MOBILE":"17312345679","registered_at":"2024-01-02"}`, "mobile", `"Mobile"`, `"MOBILE"`},
		{`{"mobile":"17312345678","Registered_at":"2024-01-02","REGISTERED_AT":"2024-01-03"}`, "registered_at", `"Registered_at"`, `"REGISTERED_AT"`},
	} {
		ie := decodeError(t, tc.value)
		if strings.Contains(ie.Reason, `"`+tc.field+`" appears more than once`) {
			t.Errorf("%s: reason %q says %q appears more than once; it does not appear at all", tc.value, ie.Reason, tc.field)
		}
		if !strings.Contains(ie.Reason, tc.a) || !strings.Contains(ie.Reason, tc.b) || !strings.Contains(ie.Reason, "case-sensitive") || ie.Class != processor.ClassDuplicateField {
			t.Errorf("%s: %s, reason %q, want it to name both keys that are there, %s and %s", tc.value, ie.Class, ie.Reason, tc.a, tc.b)
		}
	}
	// The field itself and another case: as before.
	ie := decodeError(t, `{"mobile":"17312345678","Mobile":"17312345679","registered_at":"2024-01-02"}`)
	if !strings.Contains(ie.Reason, `"mobile" appears more than once, also as "Mobile"`) {
		t.Errorf("reason %q", ie.Reason)
	}
}

// DESIGN "Dead letters": "`twosell-error` (a human sentence)"; README: "a
// sentence saying what is wrong and what would be valid". A value of JSON
// whitespace only (3 bytes) is dead-lettered as "the value is empty (a
// tombstone?)": it is neither empty nor a tombstone, and the dead letter
// carries its bytes.
func TestWhitespaceValueReasonSaysWhitespace(t *testing.T) {
	for _, v := range []string{"   ", "\n", "\r\n\t "} {
		ie := decodeError(t, v)
		if ie.Class != processor.ClassInvalidJSON {
			t.Errorf("%q: class %q, want %q", v, ie.Class, processor.ClassInvalidJSON)
		}
		if strings.Contains(ie.Reason, "is empty") || strings.Contains(ie.Reason, "tombstone") || !strings.Contains(ie.Reason, "only white space") {
			t.Errorf("%q (%d bytes of whitespace): reason %q", v, len(v), ie.Reason)
		}
	}
	if ie := decodeError(t, ""); !strings.Contains(ie.Reason, "empty (a tombstone?)") {
		t.Errorf("an empty value: reason %q", ie.Reason)
	}
}

// A date that is not one is shown in its reason, unless it may hold a
// mobile: a date-time, even with separators, is shown.
func TestDateReasonShowsADateThatHoldsNoMobile(t *testing.T) {
	for _, date := range []string{`"2024-13-45 12:34:56"`, `"tel: 010-1234-5678"`, `"1 3"`} {
		ie := decodeError(t, `{"mobile":"17312345678","registered_at":`+date+`}`)
		if !strings.Contains(ie.Reason, date[1:len(date)-1]) {
			t.Errorf("date %s: the reason does not show it: %q", date, ie.Reason)
		}
	}
}
