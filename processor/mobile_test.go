package processor

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeMobile(t *testing.T) {
	valid := []struct {
		name, in, want string
	}{
		{"plain", "17312345678", "17312345678"},
		{"every second digit 3-9", "19912345678", "19912345678"},
		{"13x", "13012345678", "13012345678"},
		{"+86 with spaces and dashes", "+86 173-1234-5678", "17312345678"},
		{"+86 no separator", "+8617312345678", "17312345678"},
		{"0086 prefix", "0086 17312345678", "17312345678"},
		{"0086 glued", "008617312345678", "17312345678"},
		{"86 prefix glued", "8617312345678", "17312345678"},
		{"86 prefix spaced", "86 173 1234 5678", "17312345678"},
		{"full-width digits", "１７３１２３４５６７８", "17312345678"},
		{"full-width plus", "＋８６１７３１２３４５６７８", "17312345678"},
		{"full-width plus, ascii digits", "＋86 17312345678", "17312345678"},
		{"ideographic spaces", "173\u30001234\u30005678", "17312345678"},
		{"tabs", "\t173\t1234\t5678\t", "17312345678"},
		{"unicode dashes", "173\u20101234\u20155678", "17312345678"},
		{"full-width dash", "173－1234－5678", "17312345678"},
		{"en dash and em dash", "173–1234—5678", "17312345678"},
		{"leading and trailing spaces", "  17312345678  ", "17312345678"},
		{"plus then space", "+ 86 17312345678", "17312345678"},
		{"mixed widths", "１73 １２３４ 5678", "17312345678"},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeMobile(tc.in)
			if err != nil {
				t.Fatalf("NormalizeMobile(%q) error: %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("NormalizeMobile(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}

	invalid := []struct {
		name, in string
		reason   []string // substrings the reason must contain
	}{
		{"empty", "", []string{"mobile is empty", "11 digits"}},
		{"only separators", " - ", []string{"has no digits"}},
		{"10 digits", "1731234567", []string{`"173****"`, "has 10 digits", "11 digits"}},
		{"12 digits", "173123456789", []string{`"173****6789"`, "has 12 digits"}},
		{"prefix 12", "12312345678", []string{`"123****5678"`, "starts with 12", "13 to 19"}},
		{"prefix 10", "10312345678", []string{"starts with 10"}},
		{"prefix 2", "23312345678", []string{"starts with 23"}},
		{"86 never eats a real number", "86123456789", []string{"starts with 86"}},
		{"86 with 10 remaining", "861731234567", []string{"has 12 digits"}},
		{"0086 with 10 remaining", "00861731234567", []string{"has 14 digits"}},
		{"other country code", "+1 555 123 4567", []string{"country code other than +86"}},
		{"+86 with 10 remaining", "+86 1731234567", []string{"has 10 digits"}},
		{"+0086 is not a country code", "+008617312345678", []string{"country code other than +86"}},
		{"plus in the middle", "173+12345678", []string{"plus sign at position 4"}},
		{"two plus signs", "++8617312345678", []string{"plus sign at position 2"}},
		{"letter", "173a2345678", []string{`'a'`, "U+0061", "position 4", `"173****5678"`}},
		{"dot", "173.1234.5678", []string{`'.'`, "position 4"}},
		{"parentheses", "(+86) 17312345678", []string{`'('`, "position 1"}},
		{"newline", "17312345678\n", []string{`'\n'`, "position 12"}},
		{"zero-width space", "173\u200b12345678", []string{"U+200B"}},
		{"invalid utf-8", "173\xff12345678", []string{"not UTF-8 (0xff)", "position 4"}},
		{"too many digits", strings.Repeat("1", 40), []string{"has 40 digits"}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeMobile(tc.in)
			if err == nil {
				t.Fatalf("NormalizeMobile(%q) = %q, want an error", tc.in, got)
			}
			var ie *InputError
			if !errors.As(err, &ie) || ie.Class != ClassInvalidMobile {
				t.Fatalf("NormalizeMobile(%q) error = %#v, want *InputError of class %s", tc.in, err, ClassInvalidMobile)
			}
			for _, want := range tc.reason {
				if !strings.Contains(ie.Reason, want) {
					t.Errorf("reason %q does not contain %q", ie.Reason, want)
				}
			}
			// Reasons are logged: never more than 3+4 digits of the input.
			if strings.Contains(ie.Reason, "12345678") || strings.Contains(ie.Reason, "1234567") {
				t.Errorf("reason %q reveals the number", ie.Reason)
			}
		})
	}
}

func TestMaskMobile(t *testing.T) {
	tests := []struct{ in, want string }{
		{"17312345678", "173****5678"},
		{"8617312345678", "861****5678"},
		{"+86 173-1234-5678", "+86****5678"},
		{"１７３１２３４５６７８", "１７３****５６７８"},
		{"1731234567", "173****"}, // 10: too short to show the end too
		{"1731234", "173****"},
		{"173123", "***"},
		{"", "***"},
		{"1", "***"},
		{"17312345678901234567890", "173****7890"},
		{"173\xff\xfe12345678", "173****5678"},
		{"\xff\xff\xff\xff\xff\xff\xff", "\ufffd\ufffd\ufffd****"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := MaskMobile(tc.in); got != tc.want {
				t.Errorf("MaskMobile(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestNormalizeMobileAllocations(t *testing.T) {
	for _, tc := range []struct {
		in     string
		allocs float64
	}{
		{"17312345678", 0},       // already normalized: returned as is
		{"+86 173-1234-5678", 1}, // the result string
	} {
		if got := testing.AllocsPerRun(100, func() {
			if _, err := NormalizeMobile(tc.in); err != nil {
				t.Fatal(err)
			}
		}); got != tc.allocs {
			t.Errorf("NormalizeMobile(%q): %v allocs, want %v", tc.in, got, tc.allocs)
		}
	}
}

// Unicode's dashes and the minus sign separate digits as "-" does, and its
// spaces as " " does: a number copied from a word processor or a web form,
// or typed with a CJK input method, has them.
// (Found by review: U+2212, U+FE58, U+FE63 and U+2E3A were refused.)
func TestMobileUnicodeDashes(t *testing.T) {
	for _, d := range []string{"\u2212", "\uFE58", "\uFE63", "\u2E3A", "\u2013", "\uFF0D",
		"\u00A0", "\u202F", "\u2009", "\u3000"} { // and spaces: no-break (web forms), thin, ideographic
		in := "173" + d + "1234" + d + "5678"
		if got, err := NormalizeMobile(in); err != nil || got != "17312345678" {
			t.Errorf("NormalizeMobile(%q) = %q, %v; want 17312345678", in, got, err)
		}
	}
	for _, wave := range []string{"\u301C", "\u3030"} { // ranges, not separators
		if _, err := NormalizeMobile("173" + wave + "12345678"); err == nil {
			t.Errorf("NormalizeMobile accepts the wave dash %U", []rune(wave)[0])
		}
	}
}
