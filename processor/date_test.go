package processor

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the tests need Asia/Shanghai on machines without zoneinfo
)

func shanghai(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestParseDate(t *testing.T) {
	sh := shanghai(t)
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		raw  string // a JSON value
		loc  *time.Location
		want string
	}{
		{"rfc3339 offset +08:00", `"2024-01-02T03:04:05+08:00"`, sh, "20240102"},
		{"rfc3339 Z", `"2024-01-02T03:04:05Z"`, sh, "20240102"},
		{"rfc3339 fraction", `"2024-01-02T03:04:05.123456789Z"`, sh, "20240102"},
		{"rfc3339 one fraction digit", `"2024-01-02T03:04:05.1+08:00"`, sh, "20240102"},
		{"rfc3339 negative offset crosses the day", `"2024-01-01T20:00:00-05:00"`, sh, "20240102"},
		{"rfc3339 -00:00", `"2024-01-01T15:59:59-00:00"`, sh, "20240101"},
		{"rfc3339 +05:45", `"2024-01-02T05:44:59+05:45"`, sh, "20240102"},
		{"rfc3339 +14:00", `"2024-01-02T01:00:00+14:00"`, sh, "20240101"},
		{"rfc3339 lower-case t and z", `"2024-01-02t03:04:05z"`, sh, "20240102"},
		{"rfc3339 space separator", `"2024-01-02 03:04:05+08:00"`, sh, "20240102"},
		{"rfc3339 leap second", `"2016-12-31T23:59:60Z"`, sh, "20170101"},
		{"rfc3339 leap second at midnight: its own day", `"2016-12-31T23:59:60Z"`, time.UTC, "20161231"},
		{"rfc3339 leap second written in local time", `"2016-12-31T23:59:60+08:00"`, sh, "20161231"},
		{"day boundary: first second of Jan 2 in Shanghai", `"2024-01-01T16:00:00Z"`, sh, "20240102"},
		{"day boundary: last second of Jan 1 in Shanghai", `"2024-01-01T15:59:59Z"`, sh, "20240101"},
		{"day boundary in unix seconds", `1704124800`, sh, "20240102"},
		{"day boundary minus one in unix seconds", `1704124799`, sh, "20240101"},
		{"day boundary in unix ms", `1704124800000`, sh, "20240102"},
		{"day boundary minus one ms", `1704124799999`, sh, "20240101"},
		{"unix seconds as a string", `"1704124800"`, sh, "20240102"},
		{"unix ms as a string", `"1704124799999"`, sh, "20240101"},
		{"unix seconds with a fraction", `1704124799.999`, sh, "20240101"},
		{"unix seconds fraction as a string", `"1704124800.5"`, sh, "20240102"},
		{"unix 9 digits (year 2000)", `946684800`, sh, "20000101"},
		{"same instant, other zone", `1704124800`, ny, "20240101"},
		{"yyyy-mm-dd", `"2024-01-02"`, sh, "20240102"},
		{"yyyymmdd string", `"20240102"`, sh, "20240102"},
		{"yyyymmdd number", `20240102`, sh, "20240102"},
		{"yyyymmdd is a calendar day, not converted", `"20240102"`, ny, "20240102"},
		{"leap day", `"2024-02-29"`, sh, "20240229"},
		{"leap day 2000", `20000229`, sh, "20000229"},
		{"first year", `"1990-01-01"`, sh, "19900101"},
		{"last year", `"2100-12-31"`, sh, "21001231"},
		{"escaped string", `"2024\u002d01\u002d02"`, sh, "20240102"},
		{"surrounding JSON whitespace", " \"2024-01-02\"\n", sh, "20240102"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDate([]byte(tc.raw), tc.loc)
			if err != nil {
				t.Fatalf("ParseDate(%s) error: %v", tc.raw, err)
			}
			if got != tc.want {
				t.Fatalf("ParseDate(%s) = %s, want %s", tc.raw, got, tc.want)
			}
		})
	}
}

func TestParseDateInvalid(t *testing.T) {
	sh := shanghai(t)
	tests := []struct {
		name   string
		raw    string
		reason []string
	}{
		{"null", `null`, []string{"date is null", "RFC 3339"}},
		{"bool", `true`, []string{"is a JSON boolean", "yyyymmdd"}},
		{"object", `{"d":1}`, []string{"is a JSON object"}},
		{"array", `[2024,1,2]`, []string{"is a JSON array"}},
		{"empty string", `""`, []string{"is an empty string", "yyyy-mm-dd"}},
		{"not JSON", `2024-01-02`, []string{"not a valid JSON number"}},
		{"unterminated string", `"2024-01-02`, []string{"not a valid JSON string"}},
		{"nothing", ``, []string{"is empty"}},
		{"Feb 30 yyyymmdd", `"20240230"`, []string{`("20240230") is not a valid calendar day`}},
		{"Feb 30 number", `20240230`, []string{`(20240230) is not a valid calendar day`, "read as yyyymmdd"}},
		{"Feb 29 in a common year", `"2023-02-29"`, []string{"not a valid calendar day"}},
		{"1900 is not a leap year", `"1900-02-29"`, []string{"not a valid calendar day"}},
		{"month 13", `"2024-13-01"`, []string{"not a valid calendar day"}},
		{"day 0", `"2024-01-00"`, []string{"not a valid calendar day"}},
		{"rfc3339 Apr 31", `"2024-04-31T00:00:00Z"`, []string{"not a valid calendar day"}},
		{"rfc3339 hour 24", `"2024-01-02T24:00:00Z"`, []string{"invalid time of day"}},
		{"rfc3339 no offset", `"2024-01-02T03:04:05"`, []string{"has no time zone offset", "+08:00"}},
		{"rfc3339 bad offset", `"2024-01-02T03:04:05+08:60"`, []string{"invalid time zone offset"}},
		{"rfc3339 offset without colon", `"2024-01-02T03:04:05+0800"`, []string{"not a recognized date"}},
		{"rfc3339 empty fraction", `"2024-01-02T03:04:05.Z"`, []string{"not a recognized date"}},
		{"rfc3339 trailing text", `"2024-01-02T03:04:05Zx"`, []string{"not a recognized date"}},
		{"slashes", `"2024/01/02"`, []string{`("2024/01/02") is not a recognized date`, "RFC 3339", "yyyy-mm-dd", "yyyymmdd", "unix seconds or milliseconds"}},
		{"day first", `"02-01-2024"`, []string{"not a recognized date"}},
		{"year 1989", `"1989-12-31"`, []string{"year 1989", "1990–2100"}},
		{"year 2101", `21010101`, []string{"year 2101", "1990–2100", "read as yyyymmdd"}},
		{"rfc3339 year 1970", `"1970-01-01T00:00:00Z"`, []string{"year 1970", "1990–2100"}},
		{"rfc3339 in range, day out of range in zone", `"2100-12-31T16:00:00Z"`, []string{"year 2101"}},
		{"unix 0", `0`, []string{"read as unix seconds is in the year 1970", "below 100000000000"}},
		{"seconds too far", `99999999999`, []string{"read as unix seconds is in the year 5138", "larger ones as unix milliseconds"}},
		{"small milliseconds", `100000000000`, []string{"read as unix milliseconds is in the year 1973"}},
		{"microseconds", `1704124800000000`, []string{"read as unix milliseconds", "looks like microseconds or nanoseconds"}},
		{"nanoseconds", `1704124800000000000`, []string{"too large", "looks like microseconds or nanoseconds"}},
		{"negative", `-1704124800`, []string{"is negative"}},
		{"exponent", `1.7041248e9`, []string{"has an exponent"}},
		{"8 digits with a fraction", `20240102.5`, []string{"cannot have a fraction"}},
		{"numeric string with sign", `"+1704124800"`, []string{"not a recognized date"}},
		{"long garbage is cut", `"` + strings.Repeat("x", 500) + `"`, []string{"…", "not a recognized date"}},
		{"huge number is cut", strings.Repeat("9", 500), []string{"(" + strings.Repeat("9", 64) + "…) is too large"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDate([]byte(tc.raw), sh)
			if err == nil {
				t.Fatalf("ParseDate(%s) = %s, want an error", tc.raw, got)
			}
			ie, ok := AsInputError(err)
			if !ok || ie.Class != ClassInvalidDate {
				t.Fatalf("ParseDate(%s) error = %#v, want *InputError of class %s", tc.raw, err, ClassInvalidDate)
			}
			for _, want := range tc.reason {
				if !strings.Contains(ie.Reason, want) {
					t.Errorf("reason %q does not contain %q", ie.Reason, want)
				}
			}
			if len(ie.Reason) > 600 {
				t.Errorf("reason is %d bytes long", len(ie.Reason))
			}
		})
	}
}

func TestParseDateNilLocation(t *testing.T) {
	if _, err := ParseDate([]byte(`"2024-01-02"`), nil); err == nil {
		t.Fatal("ParseDate with a nil location: no error")
	} else if _, ok := AsInputError(err); ok {
		t.Fatalf("ParseDate with a nil location returned an InputError (%v); it is the caller's bug, not the record's", err)
	}
}

func TestDayOf(t *testing.T) {
	sh := shanghai(t)
	tests := []struct {
		name string
		t    time.Time
		loc  *time.Location
		want string
	}{
		{"start of day in Shanghai", time.Date(2024, 1, 1, 16, 0, 0, 0, time.UTC), sh, "20240102"},
		{"end of day in Shanghai", time.Date(2024, 1, 1, 15, 59, 59, 999999999, time.UTC), sh, "20240101"},
		{"UTC", time.Date(2024, 1, 1, 16, 0, 0, 0, time.UTC), time.UTC, "20240101"},
		{"nil location keeps t's own", time.Date(2024, 3, 4, 23, 0, 0, 0, sh), nil, "20240304"},
		{"year 1", time.Time{}, time.UTC, "00010101"},
		{"year 10000", time.Date(10000, 1, 2, 0, 0, 0, 0, time.UTC), time.UTC, "100000102"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := DayOf(tc.t, tc.loc); got != tc.want {
				t.Errorf("DayOf(%v, %v) = %s, want %s", tc.t, tc.loc, got, tc.want)
			}
		})
	}
}

// appendRFC3339UTC writes what time.RFC3339 does, for any instant.
func TestAppendRFC3339UTC(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{
		{}, time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 23, 59, 59, 0, time.FixedZone("", 8*3600)), time.Now(),
	}
	for range 100000 {
		times = append(times, time.Unix(rng.Int64N(400000000000)-62135596800, rng.Int64N(1e9)).In(time.FixedZone("", rng.IntN(50400)-43200)))
	}
	for _, tm := range times {
		if got, want := string(appendRFC3339UTC([]byte("x"), tm)), "x"+tm.UTC().Format(time.RFC3339); got != want {
			t.Fatalf("%v: %q, want %q", tm, got, want)
		}
	}
}

// civilDays counts the days since 1970-01-01 as time does, for every day
// a date may have (1990–2100) and the leap days around it.
func TestCivilDays(t *testing.T) {
	t.Parallel()
	for day := time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC); day.Year() <= 2101; day = day.AddDate(0, 0, 1) {
		y, m, d := day.Date()
		if got, want := civilDays(y, int(m), d), int(day.Unix()/86400); got != want {
			t.Fatalf("%d-%02d-%02d: %d, want %d", y, m, d, got, want)
		}
	}
}

// A day's midnight is remembered (midnightTable), and is still time.Date's
// for every day and zone: days that share a slot, zones where some
// midnights do not exist (São Paulo's clocks went from 00:00 to 01:00),
// from many dispatchers at once, and a zone asked of another's table.
func TestMidnightInIsTimeDate(t *testing.T) {
	t.Parallel()
	var zones []*time.Location
	for _, name := range []string{"UTC", "Asia/Shanghai", "America/Sao_Paulo", "Europe/London"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		zones = append(zones, loc)
	}
	zones = append(zones, time.FixedZone("", -(9*3600+30*60)), time.UTC)
	rng := rand.New(rand.NewPCG(3, 4))
	days := []time.Time{time.Date(2018, 11, 4, 0, 0, 0, 0, time.UTC), time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)}
	for range 3000 {
		days = append(days, time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.IntN(40177)))
	}
	tables := map[*time.Location]*midnightTable{}
	for _, loc := range zones {
		tables[loc] = newMidnightTable(loc)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := range 3 * len(days) {
				day, loc := days[(i*7+g)%len(days)], zones[(i+g)%len(zones)]
				table := tables[loc]
				if i%5 == 0 {
					table = tables[zones[(i+g+1)%len(zones)]] // another zone's
				}
				y, m, d := day.Date()
				got, want := table.at(y, int(m), d, loc), time.Date(y, m, d, 0, 0, 0, 0, loc)
				if got != want { // the same instant, wall clock and zone
					errs <- fmt.Sprintf("%d-%02d-%02d in %v: %v, want %v", y, m, d, loc, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
