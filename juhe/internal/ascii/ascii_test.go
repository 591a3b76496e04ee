package ascii

import "testing"

func TestEqualFold(t *testing.T) {
	for _, tt := range []struct {
		b, s string
		want bool
	}{
		{"Content-Length", "content-length", true},
		{"HOST", "Host", true},
		{"Host", "Hos", false},
		{"Hoſt", "Host", false}, // Unicode folds ſ to s; HTTP does not
		{"\u212aeep-alive", "keep-alive", false},
		{"close[", "close{", false}, // '[' and '{' differ by the case bit, but are not letters
		{"", "", true},
	} {
		if got := EqualFold([]byte(tt.b), tt.s); got != tt.want {
			t.Errorf("EqualFold(%q, %q) = %v, want %v", tt.b, tt.s, got, tt.want)
		}
	}
}

func TestParseDigits(t *testing.T) {
	for _, tt := range []struct {
		b    string
		max  int
		want int64
		ok   bool
	}{
		{"0", 9, 0, true},
		{"123", 9, 123, true},
		{"123456789", 9, 123456789, true},
		{"1234567890", 9, 0, false}, // too many digits
		{"999999999999999999", 18, 999999999999999999, true},
		{"", 9, 0, false},
		{"+1", 9, 0, false},
		{"-1", 9, 0, false},
		{" 1", 9, 0, false},
		{"1 ", 9, 0, false},
		{"1a", 9, 0, false},
		{"１", 9, 0, false}, // a full-width digit is not ASCII
	} {
		if got, ok := ParseDigits([]byte(tt.b), tt.max); got != tt.want || ok != tt.ok {
			t.Errorf("ParseDigits(%q, %d) = %d, %v; want %d, %v", tt.b, tt.max, got, ok, tt.want, tt.ok)
		}
	}
}
