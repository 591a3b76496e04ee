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
