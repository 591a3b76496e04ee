package juhesim_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
)

// ruleCases are the rule's cases, with activation dates worked out by hand
// (date -d "2015-01-01 +N days"), not by the code under test.
var ruleCases = []struct {
	name   string
	mobile string
	date   string
	code   int
	res    int
}{
	{"xy 00 no record", "13812345600", testDate, 232703, 0},
	{"xy 04 no record", "13812345604", testDate, 232703, 0},
	{"xy 05 no activation date", "13812345605", testDate, 0, 3},
	{"xy 09 no activation date", "13812345609", testDate, 0, 3},
	{"xy 10 follows the date rule", "13812345610", "20180519", 0, 2}, // 1234 days: 2018-05-19
	{"day before activation: re-issued", "17312345678", "20180518", 0, 1},
	{"activation day itself: not re-issued", "17312345678", "20180519", 0, 2},
	{"day after activation", "17312345678", "20180520", 0, 2},
	{"offset 0: the epoch", "13800001234", "20150101", 0, 2},
	{"before the epoch", "13800001234", "20141231", 0, 1},
	{"offset 3650 wraps to the epoch", "13836501234", "20141231", 0, 1},
	{"offset 3649: last day", "13836491234", "20241228", 0, 2},
	{"offset 3649: day before", "13836491234", "20241227", 0, 1},
	{"offset 9999 mod 3650 = 2699", "13899991234", "20220522", 0, 1},
	{"offset 2699 on the day", "13899991234", "20220523", 0, 2},
	{"leap day is a date", "13812345610", "20200229", 0, 2},
	{"bad date: Feb 30", "13812345610", "20230230", 232702, 0},
	{"bad date: not a leap year", "13812345610", "20230229", 232702, 0},
	{"bad date: 7 digits", "13812345610", "2023011", 232702, 0},
	{"bad date: dashes", "13812345610", "2023-01-1", 232702, 0},
	{"bad date: month 13", "13812345610", "20231301", 232702, 0},
	{"bad mobile: second digit 2", "12812345610", testDate, 232702, 0},
	{"bad mobile: 10 digits", "1381234561", testDate, 232702, 0},
	{"bad mobile: letters", "1381234561x", testDate, 232702, 0},
}

func TestExpect(t *testing.T) {
	for _, tc := range ruleCases {
		t.Run(tc.name, func(t *testing.T) {
			code, res := juhesim.Expect(tc.mobile, tc.date)
			if code != tc.code || res != tc.res {
				t.Errorf("Expect(%s, %s) = %d, %d; want %d, %d", tc.mobile, tc.date, code, res, tc.code, tc.res)
			}
		})
	}
}

// TestRuleOverHTTP checks that the simulator answers what Expect says, on
// both endpoints.
func TestRuleOverHTTP(t *testing.T) {
	_, srv := newSim(t, nil)
	key := juhe.AESKey(testOpenID)
	for _, tc := range ruleCases {
		t.Run(tc.name, func(t *testing.T) {
			code, res := ask(t, srv, http.MethodGet, juhe.PathQuery, params(testKey, tc.mobile, tc.date)).got()
			if code != tc.code || res != tc.res {
				t.Errorf("query: %d, %d; want %d, %d", code, res, tc.code, tc.res)
			}
			enc, err := juhe.EncodeMobile(juhe.ModeAES, tc.mobile, key)
			if err != nil {
				t.Fatal(err)
			}
			code, res = ask(t, srv, http.MethodGet, juhe.PathQueryEncry, params(testKey, enc, tc.date)).got()
			if code != tc.code || res != tc.res {
				t.Errorf("queryEncry aes: %d, %d; want %d, %d", code, res, tc.code, tc.res)
			}
		})
	}
}

func TestActivationDate(t *testing.T) {
	tests := []struct {
		mobile string
		want   string // yyyymmdd; "" for none
	}{
		{"17312345678", "20180519"},
		{"13800001210", "20150101"},
		{"13899991299", "20220523"},
		{"13812345609", ""}, // res 3
		{"13812345600", ""}, // no record
		{"12345678901", ""}, // not a mobile
	}
	for _, tc := range tests {
		a, ok := juhesim.ActivationDate(tc.mobile)
		if tc.want == "" {
			if ok {
				t.Errorf("ActivationDate(%s) = %v, want none", tc.mobile, a)
			}
			continue
		}
		if !ok || a.Format("20060102") != tc.want {
			t.Errorf("ActivationDate(%s) = %v, %v; want %s", tc.mobile, a, ok, tc.want)
		}
		if _, off := a.Zone(); off != 8*60*60 || a.Hour() != 0 || a.Minute() != 0 {
			t.Errorf("ActivationDate(%s) = %v, want midnight at +08:00", tc.mobile, a)
		}
	}
}

// TestExpectAgreesWithActivationDate checks the two exported views of the
// rule against each other over the whole sample population.
func TestExpectAgreesWithActivationDate(t *testing.T) {
	for _, m := range juhesim.Population(1000) {
		a, ok := juhesim.ActivationDate(m)
		if !ok {
			continue
		}
		for _, d := range []time.Time{a.AddDate(0, 0, -1), a, a.AddDate(0, 0, 1)} {
			want := 2
			if d.Before(a) {
				want = 1
			}
			if code, res := juhesim.Expect(m, d.Format("20060102")); code != 0 || res != want {
				t.Fatalf("Expect(%s, %s) = %d, %d; activation %s", m, d.Format("20060102"), code, res, a.Format("20060102"))
			}
		}
	}
}
