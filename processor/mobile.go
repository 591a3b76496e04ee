package processor

import (
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// mobileHint says what a valid mobile looks like; every mobile reason ends
// with it so that the reader knows what to send instead.
const mobileHint = "expected 11 digits like 1[3-9]XXXXXXXXX, optionally with a +86, 86 or 0086 prefix, spaces and dashes"

// NormalizeMobile returns the 11 digits of a mainland China mobile number
// written the way people and forms write it, or an *InputError of class
// ClassInvalidMobile whose reason says what is wrong, with the number masked.
//
// Accepted, anywhere in s: ASCII spaces, tabs, the ideographic space U+3000,
// dashes ('-', U+2010–U+2015, the full-width U+FF0D), ASCII and full-width
// digits (U+FF10–U+FF19). Accepted before the first digit: one plus sign ('+'
// or the full-width U+FF0B), which must be followed by the country code 86.
// Without a plus, a leading 86 or 0086 is stripped only when exactly 11
// digits remain, so that a prefix rule never eats the digits of a real
// number. The result matches ^1[3-9]\d{9}$.
//
// Dots, parentheses, letters and any other character are rejected: they are
// not part of how mainland numbers are written, and guessing what they mean
// is how a wrong number gets queried (and paid for).
func NormalizeMobile(s string) (string, error) {
	if isMobile(s) {
		return s, nil // already normalized: no copy
	}
	var buf [11]byte
	// []byte(s) stays on the stack: appendMobile does not retain its input.
	d, err := appendMobile(buf[:0], []byte(s), "mobile", "")
	if err != nil {
		return "", err
	}
	return string(d), nil
}

// isMobile reports whether s matches ^1[3-9]\d{9}$, by hand: it is the hot
// path, and a regexp would cost more than the rest of the normalization.
func isMobile(s string) bool {
	if len(s) != 11 || s[0] != '1' || s[1] < '3' || s[1] > '9' {
		return false
	}
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// appendMobile appends the 11 normalized digits of s to dst (see
// NormalizeMobile). name is how a reason names the value ("mobile" or
// `field "mobile"`) and field goes into InputError.Field. It allocates only
// on error, which keeps Decode's hot path free of garbage.
func appendMobile(dst, s []byte, name, field string) ([]byte, error) {
	// 15 digits is the longest valid input (0086 + 11); more are only counted.
	var digits [15]byte
	n := 0
	plus := false
	pos := 0 // position of the current character, counted in characters from 1
	for i := 0; i < len(s); {
		pos++
		c := s[i]
		if c >= '0' && c <= '9' {
			if n < len(digits) {
				digits[n] = c
			}
			n++
			i++
			continue
		}
		r, size := rune(c), 1
		if c >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(s[i:])
		}
		switch {
		case r == ' ' || r == '\t' || r == '-' || isDash(r) || (r >= utf8.RuneSelf && unicode.Is(unicode.Zs, r)):
			// A separator: carries no digit.
		case r >= '\uFF10' && r <= '\uFF19':
			if n < len(digits) {
				digits[n] = byte('0' + r - '\uFF10')
			}
			n++
		case r == '+' || r == '\uFF0B':
			if plus || n > 0 {
				return dst, mobileError(field, name, s, "has a plus sign at position "+strconv.Itoa(pos)+"; a plus may only start the number, as in +86")
			}
			plus = true
		default:
			what := "an unexpected character " + strconv.QuoteRune(r) + " (" + unicodeName(r) + ")"
			if r == utf8.RuneError && size == 1 {
				what = "a byte that is not UTF-8 (0x" + strconv.FormatUint(uint64(c), 16) + ")"
			}
			return dst, mobileError(field, name, s, "has "+what+" at position "+strconv.Itoa(pos)+"; only digits, spaces and dashes are accepted, and a leading + for +86")
		}
		i += size
	}

	d := digits[:min(n, len(digits))]
	switch {
	case n == 0 && len(s) == 0:
		return dst, &InputError{Class: ClassInvalidMobile, Field: field, Reason: name + " is empty; " + mobileHint}
	case n == 0:
		return dst, mobileError(field, name, s, "has no digits; "+mobileHint)
	case plus:
		if n < 2 || d[0] != '8' || d[1] != '6' {
			return dst, mobileError(field, name, s, "has a country code other than +86; only mainland China mobiles (+86) can be checked")
		}
		d = d[2:]
		n -= 2
	case n == 13 && d[0] == '8' && d[1] == '6':
		d = d[2:]
		n -= 2
	case n == 15 && d[0] == '0' && d[1] == '0' && d[2] == '8' && d[3] == '6':
		d = d[4:]
		n -= 4
	}
	if n != 11 {
		return dst, mobileError(field, name, s, "has "+strconv.Itoa(n)+" digits after removing spaces, dashes and a +86/86/0086 prefix; "+mobileHint)
	}
	if d[0] != '1' || d[1] < '3' || d[1] > '9' {
		return dst, mobileError(field, name, s, "starts with "+string(d[:2])+"; a mainland China mobile starts with 13 to 19 ("+mobileHint+")")
	}
	return append(dst, d...), nil
}

// mobileError builds the reason `<name> ("173****5678") <what>`, masking the
// mobile because reasons are logged and copied into dead-letter headers.
func mobileError(field, name string, s []byte, what string) *InputError {
	return &InputError{
		Class:  ClassInvalidMobile,
		Field:  field,
		Reason: name + " (" + quote(MaskMobile(string(s))) + ") " + what,
	}
}

// isDash reports whether r is a dash between a mobile's digits: any of
// Unicode's dash punctuation (hyphens, en and em dashes, their small and
// full-width forms), and the minus sign that word processors and web pages
// put in copied numbers; not the wave dashes (〜, 〰), which mark ranges.
func isDash(r rune) bool {
	return r == '\u2212' || (r != '\u301C' && r != '\u3030' && unicode.Is(unicode.Pd, r))
}

// unicodeName is the U+XXXX notation of r, which names invisible and
// look-alike characters unambiguously in a reason.
func unicodeName(r rune) string { return fmt.Sprintf("%U", r) }

// MaskMobile hides the middle of a mobile for logs and reasons:
// "17312345678" becomes "173****5678". It is safe on any string, normalized
// or not: it never shows more than the first 3 and the last 4 characters, it
// shows only the first 3 of a string shorter than 11 characters (so that a
// short string is never mostly revealed), and "***" for one shorter than 7.
// The number of hidden characters is not revealed. Bytes that are not UTF-8
// come out as U+FFFD.
func MaskMobile(s string) string {
	n := utf8.RuneCountInString(s)
	if n < 7 {
		return "***"
	}
	out := make([]byte, 0, 3*utf8.UTFMax+4+4*utf8.UTFMax)
	i := 0
	for _, r := range s {
		switch {
		case i < 3:
			out = utf8.AppendRune(out, r)
		case i == 3:
			out = append(out, "****"...)
		}
		if n >= 11 && i >= n-4 {
			out = utf8.AppendRune(out, r)
		}
		i++
	}
	return string(out)
}
