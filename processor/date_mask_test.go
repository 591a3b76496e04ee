package processor

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A mobile in the date field (fields swapped or shifted) is meant to be shown
// masked in the reason, which goes to the log and to the dead letter's
// twosell-error header (date.go, dateValue.fail). It was masked only when
// the text was a mobile exactly as NormalizeMobile takes it; written as a
// JSON number with a fraction or an exponent (how float-typed producers
// write a big integer), or with a character NormalizeMobile refuses, all its
// digits were shown. The mobile field itself never shows such a number
// ("Never show it: 1.7312345678e10 is a whole mobile", codec.go). (Found by
// review.) A date that is not one is still shown.
func TestDateReasonMasksMobile(t *testing.T) {
	c := newTestCodec(t, CodecConfig{})
	for _, date := range []string{
		`17312345678.0`,
		`1.7312345678e10`,
		`"17312345678.0"`,
		`"tel:17312345678"`,
		`"+8617312345678;"`,
	} {
		v := fmt.Sprintf(`{"mobile":"13900001111","registered_at":%s}`, date)
		_, err := c.Decode([]byte(v), time.Now())
		if err == nil {
			t.Fatalf("%s: decoded", date)
		}
		// 10 of the 11 digits in a row is the number, whatever surrounds it.
		if strings.Contains(err.Error(), "7312345678") {
			t.Errorf("registered_at %s: the reason shows the mobile unmasked: %s", date, err)
		}
	}
	for _, date := range []string{`"2019-11-30T25:00:00+08:00"`, `"2019-13-01"`, `1731234567`} {
		v := fmt.Sprintf(`{"mobile":"13900001111","registered_at":%s}`, date)
		_, err := c.Decode([]byte(v), time.Now())
		if err != nil && !strings.Contains(err.Error(), strings.Trim(date, `"`)) {
			t.Errorf("registered_at %s: the reason does not show the value: %s", date, err)
		}
	}
}

// A record's key in its spans: as it is, masked if it is a mobile, left out
// if it holds one written otherwise.
func TestSpanKey(t *testing.T) {
	for key, want := range map[string]string{"u-42": "u-42", "17398765432": "173****5432", "+86 173-9876-5432": "+86****5432", "tel:17398765432": "",
		// Through parentheses and slashes too (found by review).
		"(173) 9876-5432": "", "173/9876/5432": "", "user-2024-11-30": "user-2024-11-30"} {
		got, err := spanKey(&kgo.Record{Key: []byte(key)})
		if got != want || (want == "") != (err != nil) {
			t.Errorf("key %q: %q, %v; want %q", key, got, err, want)
		}
	}
}
