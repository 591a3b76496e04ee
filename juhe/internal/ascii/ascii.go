// Package ascii holds the byte-level helpers that the juhe client's
// hand-written HTTP/1.1 reader and the simulator's request parser share.
package ascii

// EqualFold reports whether b equals the ASCII string s, ignoring case, as
// net/http compares header names and tokens (never Unicode folding).
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// ParseDigits parses a decimal made of 1 to maxDigits ASCII digits and
// nothing else (no sign, no spaces), as net/http reads a Content-Length.
// maxDigits must be at most 18, so that the value fits.
func ParseDigits(b []byte, maxDigits int) (n int64, ok bool) {
	if len(b) == 0 || len(b) > maxDigits {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
