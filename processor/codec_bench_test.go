package processor

import (
	"testing"
	"time"
)

// benchValue is a typical registration event: a few string fields, a
// formatted mobile, an RFC 3339 date, a big number and a small nested object.
var benchValue = []byte(`{"event_id":"e-7f3c2a9b","user_id":"u-918273","channel":"app","mobile":"+86 173-1234-5678",` +
	`"registered_at":"2024-01-02T03:04:05+08:00","device":{"os":"android","version":"14","ids":[1,2,3]},` +
	`"risk_score":0.173,"account":123456789012345678901234567890,"tags":["new","promo"]}`)

func BenchmarkDecode(b *testing.B) {
	c := newTestCodec(b, CodecConfig{})
	b.ReportAllocs()
	b.SetBytes(int64(len(benchValue)))
	for b.Loop() {
		if _, err := c.Decode(benchValue, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	c := newTestCodec(b, CodecConfig{})
	ev, err := c.Decode(benchValue, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	e := Enrichment{Status: StatusRecycled, Res: 1, Date: ev.Date, OrderID: "JH2024010203040512345678",
		Source: "api", CheckedAt: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Mode: "plain"}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchValue)))
	for b.Loop() {
		if buf, err = c.AppendEncode(buf[:0], ev, e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeMobile(b *testing.B) {
	for _, s := range []string{"17312345678", "+86 173-1234-5678", "１７３１２３４５６７８"} {
		b.Run(s, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NormalizeMobile(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseDate(b *testing.B) {
	sh := shanghai(b)
	for _, raw := range []string{`"2024-01-02T03:04:05+08:00"`, `"2024-01-02"`, `1704124800000`} {
		b.Run(raw, func(b *testing.B) {
			v := []byte(raw)
			var buf [8]byte
			b.ReportAllocs()
			for b.Loop() {
				if _, err := appendDate(buf[:0], v, sh, "date", ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeManyDays decodes events whose dates are a day each of ten
// years, as twosell bench's backlog has them (and a replay of history).
func BenchmarkDecodeManyDays(b *testing.B) {
	c := newTestCodec(b, CodecConfig{})
	var values [][]byte
	for i := range 3360 {
		day := time.Date(2015+i%10, time.Month(1+i%12), 1+i%28, 0, 0, 0, 0, time.UTC)
		values = append(values, []byte(`{"event_id":"e-1","mobile":"17312345678","registered_at":"`+day.Format("2006-01-02")+`"}`))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.Decode(values[i], time.Time{}); err != nil {
			b.Fatal(err)
		}
		i = (i + 1) % len(values)
	}
}
