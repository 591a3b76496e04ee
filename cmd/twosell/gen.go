package main

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// sampleEvents returns n registration events that look like production
// traffic: numbers written the ways people write them (+86, dashes, spaces,
// full-width digits), dates in every accepted format, extra fields the
// processor must carry through untouched (a number too big for a float64
// among them), keys by user, and a traceparent on half of them. About one in
// fifty is bad in a way a real producer gets wrong, so that the dead-letter
// topic shows what it is for. The same seed gives the same events.
func sampleEvents(n int, seed uint64, mobiles []string) []*kgo.Record {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	channels := []string{"app", "web", "h5", "mini_program"}
	base := time.Date(2015, 1, 1, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		id := fmt.Sprintf("e-%06d", i+1)
		user := fmt.Sprintf("u-%05d", rng.IntN(max(n/2, 1)))
		mobile := formatMobile(rng, mobiles[i%len(mobiles)])
		at := base.Add(time.Duration(rng.Int64N(int64(11 * 365 * 24 * time.Hour))))
		date := formatDate(rng, at)
		referrer := fmt.Sprintf("9007199254%09d", rng.Int64N(1e9)) // > 2^53: would not survive a float64
		value := fmt.Sprintf(`{"event_id":%q,"user_id":%q,"mobile":%s,"registered_at":%s,"channel":%q,"referrer_id":%s,"device":{"os":%q,"app_version":"5.%d.%d"}}`,
			id, user, mobile, date, channels[rng.IntN(len(channels))], referrer,
			[]string{"ios", "android"}[rng.IntN(2)], rng.IntN(20), rng.IntN(10))
		if i%50 == 49 {
			value = badEvent(rng, id, user)
		}
		r := &kgo.Record{
			Topic:   devInputTopic,
			Key:     []byte(user),
			Value:   []byte(value),
			Headers: []kgo.RecordHeader{{Key: "source", Value: []byte("twosell-dev")}},
		}
		if rng.IntN(2) == 0 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: "traceparent", Value: []byte(randomTraceparent(rng))})
		}
		recs = append(recs, r)
	}
	return recs
}

// formatMobile writes a number as a JSON value, the ways producers do.
func formatMobile(rng *rand.Rand, m string) string {
	switch rng.IntN(20) {
	case 0:
		return fmt.Sprintf(`"+86 %s-%s-%s"`, m[:3], m[3:7], m[7:])
	case 1:
		return fmt.Sprintf(`"0086%s"`, m)
	case 2:
		return fmt.Sprintf(`"%s %s %s"`, m[:3], m[3:7], m[7:])
	case 3:
		var b strings.Builder
		for _, c := range m {
			b.WriteRune(c - '0' + '０') // full-width digits, as some input methods type them
		}
		return `"` + b.String() + `"`
	case 4:
		return m // a JSON number
	}
	return `"` + m + `"`
}

// formatDate writes a time as a JSON value in one of the accepted formats.
func formatDate(rng *rand.Rand, t time.Time) string {
	switch rng.IntN(10) {
	case 0:
		return `"` + t.UTC().Format(time.RFC3339) + `"`
	case 1:
		return `"` + t.Format("2006-01-02") + `"`
	case 2:
		return fmt.Sprint(t.UnixMilli())
	}
	return `"` + t.Format(time.RFC3339) + `"`
}

// badEvent is an event a real producer gets wrong.
func badEvent(rng *rand.Rand, id, user string) string {
	switch rng.IntN(5) {
	case 0:
		return fmt.Sprintf(`{"event_id":%q,"user_id":%q,"mobile":"1731234567","registered_at":"2024-01-02"}`, id, user)
	case 1:
		return fmt.Sprintf(`{"event_id":%q,"user_id":%q,"mobile":"+1 415 555 0100","registered_at":"2024-01-02"}`, id, user)
	case 2:
		return fmt.Sprintf(`{"event_id":%q,"user_id":%q,"mobile":"17312345678"}`, id, user)
	case 3:
		return fmt.Sprintf(`{"event_id":%q,"user_id":%q,"mobile":"17312345678","registered_at":"yesterday"}`, id, user)
	}
	return fmt.Sprintf(`{"event_id":%q,"user_id":%q,"mobile":"173123`, id, user) // truncated
}

func randomTraceparent(rng *rand.Rand) string {
	var tid [16]byte
	var sid [8]byte
	for i := range tid {
		tid[i] = byte(rng.IntN(256))
	}
	for i := range sid {
		sid[i] = byte(rng.IntN(256))
	}
	tid[0] |= 1 // never all zero
	sid[0] |= 1
	return "00-" + hex.EncodeToString(tid[:]) + "-" + hex.EncodeToString(sid[:]) + "-01"
}
