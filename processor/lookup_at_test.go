package processor

import (
	"testing"
	"time"
)

// The Lookup carries the instant its date came from, for the real-time
// deadline (skip_older_than): the field's instant, midnight in the zone for
// a day, or the record timestamp.
func TestLookupAt(t *testing.T) {
	t.Parallel()
	sh, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	recordTime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		source DateSource
		date   string // the registered_at member, as JSON
		want   time.Time
	}{
		{DateSourceField, `"2024-01-02T03:04:05+08:00"`, time.Date(2024, 1, 2, 3, 4, 5, 0, sh)},
		{DateSourceField, `"2024-01-01T20:00:00.5Z"`, time.Date(2024, 1, 1, 20, 0, 0, 0, time.UTC)}, // to the second
		{DateSourceField, `"2024-01-02"`, time.Date(2024, 1, 2, 0, 0, 0, 0, sh)},
		{DateSourceField, `20240102`, time.Date(2024, 1, 2, 0, 0, 0, 0, sh)},
		{DateSourceField, `1704135845`, time.Unix(1704135845, 0)},
		{DateSourceField, `"1704135845123"`, time.UnixMilli(1704135845123)},
		{DateSourceTimestamp, `"2020-01-01"`, recordTime},
		{DateSourceFieldOrTimestamp, `null`, recordTime},
		{DateSourceFieldOrTimestamp, `"2020-01-01"`, time.Date(2020, 1, 1, 0, 0, 0, 0, sh)},
	}
	for _, tt := range tests {
		t.Run(string(tt.source)+" "+tt.date, func(t *testing.T) {
			c, err := NewCodec(CodecConfig{Location: sh, DateSource: tt.source})
			if err != nil {
				t.Fatal(err)
			}
			ev, err := c.Decode([]byte(`{"mobile":"17312345678","registered_at":`+tt.date+`}`), recordTime)
			if err != nil {
				t.Fatal(err)
			}
			if l := ev.Lookup(); !l.At.Equal(tt.want) || l.Date != DayOf(l.At, sh) {
				t.Errorf("At = %s (date %s), want %s", l.At, l.Date, tt.want)
			}
		})
	}
}
