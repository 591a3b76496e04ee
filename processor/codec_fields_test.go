package processor

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Found by review of the duplicate check. 257 "mobile" members counted as
// one (a uint8 that wrapped), and the check was skipped: the last
// occurrence was checked, while a first-wins parser reads the first.
func TestCodecDuplicateCountDoesNotWrap(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	ev, err := c.Decode(mobileThenMany("mobile"), time.Time{})
	if ie, ok := AsInputError(err); !ok || ie.Class != ClassDuplicateField {
		t.Fatalf("257 mobile members: Decode err = %v, checked mobile %s (the first member, which first-wins parsers read, is 13900000001); want duplicate_field", err, ev.Mobile)
	}
}

// mobileThenMany is an event with "mobile", then 256 more members named
// key, with another number.
func mobileThenMany(key string) []byte {
	var b strings.Builder
	b.WriteString(`{"mobile":"13900000001"`)
	for range 256 {
		b.WriteString(`,"` + key + `":"17300000002"`)
	}
	b.WriteString(`,"registered_at":"2024-01-02"}`)
	return []byte(b.String())
}

// The same with keys in another case: 256 "Mobile" plus "mobile".
func TestCodecDuplicateCaseCountDoesNotWrap(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	value := mobileThenMany("Mobile")
	ev, err := c.Decode(value, time.Time{})
	var st struct {
		Mobile string `json:"mobile"`
	}
	_ = json.Unmarshal(value, &st)
	if err == nil {
		t.Fatalf("Decode checked %s, a Go struct consumer reads %s; want duplicate_field", ev.Mobile, st.Mobile)
	}
}

// With input.date_source: timestamp the date field is ignored (carried
// through, like any other member): a record with it twice is enriched.
func TestCodecTimestampSourceIgnoresDateDuplicates(t *testing.T) {
	c := newTestCodec(t, CodecConfig{DateSource: DateSourceTimestamp})
	rt := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, in := range []string{
		`{"mobile":"17312345678","registered_at":"2020-01-01","registered_at":"2023-05-06"}`,
		`{"mobile":"17312345678","registered_at":"2020-01-01","Registered_At":"2023-05-06"}`,
	} {
		ev, err := c.Decode([]byte(in), rt)
		if err != nil || ev.Date != "20240102" {
			t.Errorf("%s: %v; want the record timestamp's day (the date field is ignored)", in, err)
		}
	}
}

// Only k and s have folds of another UTF-8 length among ASCII letters; other
// names' folds may be longer or shorter. For a Cyrillic mobile field,
// "телефᲂн" (U+1C82, CYRILLIC SMALL LETTER WIDE O, folds to о) is one
// byte longer, and encoding/json reads it as the field.
func TestCodecNonASCIIFieldFolds(t *testing.T) {
	c := newTestCodec(t, CodecConfig{MobileField: "телефон"})
	value := []byte(`{"телефон":"13900000001","телефᲂн":"17300000002","registered_at":"2024-01-02"}`)
	var st struct {
		M string `json:"телефон"`
	}
	if err := json.Unmarshal(value, &st); err != nil {
		t.Fatal(err)
	}
	ev, err := c.Decode(value, time.Time{})
	if ie, ok := AsInputError(err); !ok || ie.Class != ClassDuplicateField {
		t.Fatalf("Decode err = %v (checked %s; encoding/json reads %s); want duplicate_field", err, ev.Mobile, st.M)
	}
}

// An input member that differs from the output field in case only
// ("TwoSell") is cut, as the exact one is: left before the added one, a
// consumer decoding into a Go struct (keys in any case, the last wins)
// decoded both into the same struct, and kept the input's members that the
// added one omits (res, order_id, source): a forged verdict.
func TestCodecOutputFieldInAnotherCaseIsCut(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	ev, err := c.Decode([]byte(`{"mobile":"17312345678","registered_at":"2024-01-02","TwoSell":{"res":2,"order_id":"JHforged","source":"api"}}`), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Encode(ev, Enrichment{Status: StatusUnavailable, CheckedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Mode: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	var consumer struct {
		Twosell struct {
			Status  string `json:"status"`
			Res     int    `json:"res"`
			OrderID string `json:"order_id"`
			Source  string `json:"source"`
		} `json:"twosell"`
	}
	if err := json.Unmarshal(out, &consumer); err != nil {
		t.Fatal(err)
	}
	if v := consumer.Twosell; v.Res != 0 || v.OrderID != "" || v.Source != "" {
		t.Errorf("a Go consumer reads %+v from %s; want only what twosell wrote (status unavailable, no res, order id or source)", v, out)
	}
}
