package processor

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func dateReason(t *testing.T, value string) string {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCodec(CodecConfig{Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Decode([]byte(value), time.Time{})
	ie, ok := AsInputError(err)
	if !ok {
		t.Fatalf("Decode(%s) = %v, want an *InputError", value, err)
	}
	if ie.Class != ClassInvalidDate {
		t.Fatalf("Decode(%s): class %q, want %q (%s)", value, ie.Class, ClassInvalidDate, ie.Reason)
	}
	return ie.Reason
}

// A date-time is not taken for a mobile: its colons and offset cut its
// runs (found by review: with every character but a letter passed over, a
// time of day from 13:00 with a fraction and an offset read as 1[3-9] and
// nine more digits, and an invalid date's reason hid its value).
func TestDateTimeIsNotTakenForAMobile(t *testing.T) {
	for _, date := range []string{
		"1970-01-01T13:45:12.345+08:00", // RFC 3339, year out of range
		"2124-06-30T15:04:05.123456Z",   // RFC 3339, year out of range
		"2024-13-45 12:34:56.789",       // the brief's example
		"2024-01-31 13:45:12.345",       // an SQL datetime, not an accepted format
	} {
		reason := dateReason(t, `{"mobile":"17312345678","registered_at":"`+date+`"}`)
		if !strings.Contains(reason, date) {
			t.Errorf("date %q: the reason does not show it: %q", date, reason)
		}
	}
	key := "2024-01-31T13:45:12.345+08:00"
	if got, err := spanKey(&kgo.Record{Key: []byte(key)}); got != key || err != nil {
		t.Errorf("spanKey(%q) = %q, %v; want the key as it is", key, got, err)
	}
}

// A mobile written in another script's decimal digits (Arabic-Indic,
// Devanagari, mathematical bold: unicode.Nd) is found too (found by review:
// they were passed over, and the reason and spans showed it in clear).
func TestMobileInOtherScriptsDigitsIsNotShown(t *testing.T) {
	for _, date := range []string{"tel:١٧٣١٢٣٤٥٦٧٨", "手机 १७३१२३४५६७८", "𝟏𝟕𝟑𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖 (cell)"} {
		reason := dateReason(t, `{"mobile":"17312345678","registered_at":"`+date+`"}`)
		if strings.Contains(reason, date) {
			t.Errorf("date %q: the reason shows the mobile in clear: %q", date, reason)
		}
		if got, err := spanKey(&kgo.Record{Key: []byte(date)}); got == date || err == nil {
			t.Errorf("spanKey(%q) = %q, %v; want it left out", date, got, err)
		}
	}
}
