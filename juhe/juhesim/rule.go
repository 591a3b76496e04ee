package juhesim

import (
	"strconv"
	"time"

	"github.com/twosell/twosell/juhe"
)

// china is the provider's time zone, Asia/Shanghai. A fixed +08:00 zone is
// exact (China has had no daylight saving time since 1991) and needs no
// tzdata in a scratch container.
var china = time.FixedZone("CST", 8*60*60)

// epoch is the earliest activation date of the rule.
var epoch = time.Date(2015, time.January, 1, 0, 0, 0, 0, china)

// activationSpan is the number of days over which the rule spreads
// activation dates (about ten years from epoch).
const activationSpan = 3650

// parseDate parses a query date written yyyymmdd as a calendar day (midnight
// in China time). It rejects anything else, including days that do not exist
// such as 20230230: it accepts what time.ParseInLocation("20060102", s,
// china) accepts, by hand because that is slow.
func parseDate(s string) (time.Time, bool) {
	if len(s) != 8 || !allDigits(s) {
		return time.Time{}, false
	}
	y := atoi(s[0:4])
	m := time.Month(atoi(s[4:6]))
	d := atoi(s[6:8])
	if m < time.January || m > time.December || d < 1 || d > daysIn(m, y) {
		return time.Time{}, false
	}
	return time.Date(y, m, d, 0, 0, 0, 0, china), true
}

// atoi reads digits, which allDigits checked.
func atoi(digits string) int {
	n := 0
	for i := 0; i < len(digits); i++ {
		n = n*10 + int(digits[i]-'0')
	}
	return n
}

// daysIn returns the number of days of month m of year y.
func daysIn(m time.Month, y int) int {
	switch m {
	case time.February:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// ActivationDate returns the activation date the simulator gives mobile: a
// calendar day at midnight in China time (+08:00), 2015-01-01 plus
// (mobile[3:7] mod 3650) days. ok is false when the rule gives it no
// activation date: a mobile that is not valid, or whose last two digits are
// 00–09 (no record, or res 3).
func ActivationDate(mobile string) (a time.Time, ok bool) {
	if !juhe.ValidMobile(mobile) || lastTwo(mobile) < 10 {
		return time.Time{}, false
	}
	n, _ := strconv.Atoi(mobile[3:7]) // four digits: validMobile checked them
	return epoch.AddDate(0, 0, n%activationSpan), true
}

// Expect returns the simulator's answer for mobile on date (yyyymmdd) when
// no fault is injected: code 0 with res 1, 2 or 3; code 232703 (no record)
// with res 0; or code 232702 (bad parameter) with res 0 when date is not a
// calendar day or mobile is not a valid mobile. The rule, on xy = the last
// two digits of the mobile:
//
//   - xy 00–04: 232703;
//   - xy 05–09: res 3 (no activation date);
//   - otherwise res 1 if ActivationDate(mobile) is after the date, else 2.
func Expect(mobile, date string) (code, res int) {
	d, ok := parseDate(date)
	if !ok || !juhe.ValidMobile(mobile) {
		return codeBadParam, 0
	}
	switch xy := lastTwo(mobile); {
	case xy < 5:
		return codeNoRecord, 0
	case xy < 10:
		return 0, 3
	}
	a, _ := ActivationDate(mobile)
	if a.After(d) {
		return 0, 1
	}
	return 0, 2
}

func lastTwo(mobile string) int {
	return int(mobile[9]-'0')*10 + int(mobile[10]-'0')
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
