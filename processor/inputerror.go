package processor

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// The classes of InputError, written as the twosell-error-class header of a
// dead letter. They are part of the output contract: dashboards and replay
// tooling route on them, so they never change once released.
const (
	// ClassInvalidJSON: the value is not valid JSON (including trailing
	// garbage after the top-level value).
	ClassInvalidJSON = "invalid_json"
	// ClassNotObject: the value is valid JSON but not an object.
	ClassNotObject = "not_an_object"
	// ClassMissingField: a required field (the mobile, or the date when the
	// date source is "field") is absent.
	ClassMissingField = "missing_field"
	// ClassInvalidMobile: the mobile field is present but is not a mainland
	// China mobile number, even after normalization.
	ClassInvalidMobile = "invalid_mobile"
	// ClassInvalidDate: the date is present but unusable (unknown format,
	// impossible calendar day, year outside 1990–2100), or the record
	// timestamp it falls back to is missing.
	ClassInvalidDate = "invalid_date"
	// ClassDuplicateField: the mobile or the date field appears more than
	// once, as the same key or differing in case only: JSON parsers differ
	// in which one they read (the first, the last, either case), so a
	// consumer of the output could read another number or date than the
	// one checked.
	ClassDuplicateField = "duplicate_field"
	// ClassTooLarge: the record (key, value and headers) is larger than
	// CodecConfig.MaxRecordBytes; it is not decoded.
	ClassTooLarge = "too_large"
	// ClassTooManyHeaders: the record has more headers than
	// CodecConfig.MaxHeaders.
	ClassTooManyHeaders = "too_many_headers"
)

// InputError is a record's own fault: no retry and no provider can fix it, so
// the record is dead-lettered with Class as the twosell-error-class header and
// Reason as the twosell-error header.
//
// Reason is a sentence a person can act on: it names the field and says what
// would be valid. Reasons end up in logs and dead-letter headers, so a mobile
// number in a reason is always masked (see MaskMobile).
type InputError struct {
	Class  string // one of the Class constants
	Field  string // the input field at fault; "" for whole-value faults (invalid JSON, not an object)
	Reason string // the human sentence
}

// Error returns Reason alone, so that the dead-letter header reads the same
// whether the engine takes Reason or err.Error(); Class travels in its own
// header.
func (e *InputError) Error() string {
	if e.Reason != "" {
		return e.Reason
	}
	if e.Field != "" {
		return e.Class + ": field " + quote(e.Field)
	}
	return e.Class
}

// AsInputError reports whether err is, or wraps, an *InputError and returns it.
func AsInputError(err error) (*InputError, bool) {
	var ie *InputError
	ok := errors.As(err, &ie)
	return ie, ok
}

// maxQuoted bounds how much of a record's own text a reason repeats: enough
// to recognize the value, not enough to turn a header into a copy of it.
const maxQuoted = 64

// quote returns s as a Go-syntax quoted string, cut to maxQuoted bytes (on a
// rune boundary, marked with …) so that a huge or binary value cannot bloat a
// dead-letter header or a log line.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

// fieldName is how reasons name an input field: field "mobile".
func fieldName(field string) string { return "field " + quote(field) }
