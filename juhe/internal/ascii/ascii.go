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
