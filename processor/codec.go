package processor

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// DateSource says where the query date of a record comes from.
type DateSource string

// The date sources.
const (
	// DateSourceField takes the date from the configured date field, which
	// must be present.
	DateSourceField DateSource = "field"
	// DateSourceTimestamp takes the date from the Kafka record timestamp and
	// ignores the date field.
	DateSourceTimestamp DateSource = "timestamp"
	// DateSourceFieldOrTimestamp takes the date field when it is present and
	// not null, else the Kafka record timestamp.
	DateSourceFieldOrTimestamp DateSource = "field_or_timestamp"
)

// CodecConfig configures a Codec. The zero value of each name takes its
// default; Location is required.
type CodecConfig struct {
	MobileField string         // the mobile number's field; default "mobile"
	DateField   string         // the registration date's field; default "registered_at"
	IDField     string         // the event id's field, optional in records, for logs; default "event_id"
	OutputField string         // the added member; default "twosell"
	DateSource  DateSource     // default DateSourceField
	Location    *time.Location // the time zone of calendar days; required (config defaults it to Asia/Shanghai)

	// MaxRecordBytes bounds a record's key, value and headers together;
	// DecodeRecord rejects a larger record as too_large without reading it.
	// Default DefaultMaxRecordBytes; negative: no limit.
	MaxRecordBytes int
	// MaxHeaders bounds a record's headers; DecodeRecord rejects a record
	// with more as too_many_headers. Default DefaultMaxHeaders; negative:
	// no limit.
	MaxHeaders int
}

// Codec decodes input record values into Events and encodes enriched
// values. It holds no state after NewCodec and is safe for concurrent use.
//
// Decode and Encode treat the value as bytes, not as a Go value: members
// other than the mobile, date and id fields are validated but never decoded,
// so they come out byte for byte (big numbers, escapes, key order,
// whitespace), and the enriched value is the input with one member added.
type Codec struct {
	mobileField, dateField, idField, outputField string
	// The lengths a key can have and still differ from the mobile, date
	// and output fields' names in case only (foldRange).
	mobileFold, dateFold, outputFold foldRange
	dateRead                         bool // the date field is read (not DateSourceTimestamp)
	dateSource                       DateSource
	loc                              *time.Location
	midnights                        *midnightTable // loc's
	maxRecordBytes, maxHeaders       int            // see limits.go; 0: no limit

	// memberPrefix is `"twosell":{"schema":1,"status":`, escaped once here.
	memberPrefix []byte
	// checkedAt is the last checked_at written (appendCheckedAt).
	checkedAt atomic.Pointer[stamp]
	// Reasons that depend only on the configuration, built once.
	mobileName, dateName                                      string // `field "mobile"`: how reasons name the fields
	mobileMissing, dateMissing, noDateFallback, objectExample string
}

// NewCodec returns a Codec for cfg, applying the defaults. It fails when
// Location is nil, DateSource is unknown, or two field names coincide (the
// output member would overwrite an input field, or an id field equal to the
// mobile would log the number unmasked).
func NewCodec(cfg CodecConfig) (*Codec, error) {
	if cfg.MobileField == "" {
		cfg.MobileField = "mobile"
	}
	if cfg.DateField == "" {
		cfg.DateField = "registered_at"
	}
	if cfg.IDField == "" {
		cfg.IDField = "event_id"
	}
	if cfg.OutputField == "" {
		cfg.OutputField = "twosell"
	}
	if cfg.DateSource == "" {
		cfg.DateSource = DateSourceField
	}
	switch cfg.DateSource {
	case DateSourceField, DateSourceTimestamp, DateSourceFieldOrTimestamp:
	default:
		return nil, fmt.Errorf("processor: date source %q is not one of %q, %q, %q",
			cfg.DateSource, DateSourceField, DateSourceTimestamp, DateSourceFieldOrTimestamp)
	}
	if cfg.Location == nil {
		return nil, errors.New("processor: codec needs a time zone (Location) to turn timestamps into calendar days")
	}
	names := []struct{ what, name string }{
		{"mobile field", cfg.MobileField},
		{"date field", cfg.DateField},
		{"id field", cfg.IDField},
		{"output field", cfg.OutputField},
	}
	for i, a := range names {
		for _, b := range names[i+1:] {
			// In case too: encoding/json matches names in any case, so
			// {"mobile":A,"Mobile":B} would be read as B by a Go
			// consumer (found by review: with id field "Mobile", the
			// duplicate check never saw the second).
			switch {
			case a.name == b.name:
				return nil, fmt.Errorf("processor: the %s and the %s are both %q; they must differ", a.what, b.what, a.name)
			case strings.EqualFold(a.name, b.name):
				return nil, fmt.Errorf("processor: the %s and the %s, %q and %q, differ only in case; they must differ otherwise (JSON decoders such as Go's match names in any case)",
					a.what, b.what, a.name, b.name)
			}
		}
	}

	c := &Codec{
		mobileField:    cfg.MobileField,
		dateField:      cfg.DateField,
		idField:        cfg.IDField,
		outputField:    cfg.OutputField,
		dateSource:     cfg.DateSource,
		loc:            cfg.Location,
		midnights:      newMidnightTable(cfg.Location),
		maxRecordBytes: limit(cfg.MaxRecordBytes, DefaultMaxRecordBytes),
		maxHeaders:     limit(cfg.MaxHeaders, DefaultMaxHeaders),
	}
	c.mobileFold, c.dateFold, c.outputFold = foldRangeOf(c.mobileField), foldRangeOf(c.dateField), foldRangeOf(c.outputField)
	c.dateRead = c.dateSource != DateSourceTimestamp
	c.memberPrefix = appendJSONString(nil, c.outputField)
	c.memberPrefix = append(c.memberPrefix, `:{"schema":1,"status":`...)
	c.mobileName, c.dateName = fieldName(c.mobileField), fieldName(c.dateField)
	c.mobileMissing = c.mobileName + " is missing; set input.mobile_field to the field that holds the mobile number"
	c.dateMissing = c.dateName + " is missing; set input.date_field to the field that holds the registration date, or input.date_source: field_or_timestamp to fall back to the record timestamp"
	c.noDateFallback = c.dateName + " is missing or null and input.date_source is field_or_timestamp"
	c.objectExample = "expected a JSON object such as {" +
		string(appendJSONString(nil, c.mobileField)) + `: "17312345678", ` +
		string(appendJSONString(nil, c.dateField)) + `: "2024-01-02T03:04:05+08:00"}`
	return c, nil
}

// Event is a decoded input record: what the lookup needs, plus what Encode
// needs to add the output member to the original value.
//
// An Event refers to the value it was decoded from (it does not copy it): the
// value must not be modified until the Event has been encoded. Encode only
// reads the Event, so one Event may be encoded from several goroutines.
type Event struct {
	ID     string // the id field's text (a string's content or a number as written); "" when absent or not a string or number
	Mobile string // normalized: 11 digits matching ^1[3-9]\d{9}$
	Date   string // the query date, yyyymmdd
	// At is the instant Date came from: the date field's instant (midnight
	// in the zone for a field that is a day), or the record timestamp.
	At time.Time

	raw      []byte // the input value
	insertAt int    // where the output member goes: after the last kept member, or after '{'
	comma    bool   // whether members remain before insertAt, so the member needs a ','
	cuts     []span // members named like the output field, removed on encode; sorted, disjoint
}

// Lookup returns the provider question for ev.
func (ev *Event) Lookup() Lookup {
	var l Lookup
	ev.lookupInto(&l)
	return l
}

// lookupInto sets what Lookup returns in l, leaving its other fields.
func (ev *Event) lookupInto(l *Lookup) { l.Mobile, l.Date, l.At = ev.Mobile, ev.Date, ev.At }

// span is a byte range [start, end) of a value.
type span struct{ start, end int }

// Decode validates an input record value and extracts the mobile, the date
// and the id. recordTime is the Kafka record timestamp, used when the date
// source says so. A value that is not a usable record is reported as an
// *InputError (its class says why); Decode returns no other error.
//
// The value is scanned once, without building Go values. Keys are compared
// exactly, after unescaping. A value with the mobile or the date field more
// than once, as the same key or as keys that differ in case only (which
// encoding/json takes for the same field), is refused (ClassDuplicateField):
// parsers differ in which one they read, and the output's consumer must
// read the number and date that were checked. The id field's last
// occurrence wins, as with encoding/json. A value that is not UTF-8 is not
// JSON (RFC 8259), and is refused (ClassInvalidJSON), unlike by
// encoding/json, which reads its bad bytes as U+FFFD: carried through byte
// for byte, they made an output that strict parsers refuse (found by
// review).
func (c *Codec) Decode(value []byte, recordTime time.Time) (*Event, error) {
	ev := new(Event)
	if err := c.decode(ev, value, recordTime); err != nil {
		return nil, err
	}
	return ev, nil
}

// decode is Decode into ev, which the caller may keep on its stack.
func (c *Codec) decode(ev *Event, value []byte, recordTime time.Time) error {
	*ev = Event{raw: value}
	f, err := c.scan(value, ev)
	if err != nil {
		return err
	}
	if f.mobileNames.n > 1 || f.dateNames.n > 1 {
		return c.duplicateError(value, f)
	}
	if f.mobile.start < 0 && f.mobileNames.hasLike() {
		return c.caseError(value, c.mobileField, "input.mobile_field", f.mobileNames.like)
	}
	if f.date.start < 0 && f.dateNames.hasLike() { // counted only when the date is read
		return c.caseError(value, c.dateField, "input.date_field", f.dateNames.like)
	}
	// The strings of the Event share one allocation: mobile, date, id.
	var stack [64]byte
	buf := stack[:0]
	if buf, err = c.appendMobileValue(buf, value, f.mobile, f.mobileEsc); err != nil {
		return err
	}
	if buf, err = c.appendDateValue(buf, value, f.date, f.dateEsc, recordTime, &ev.At); err != nil {
		return err
	}
	buf = appendIDValue(buf, value, f.id, f.idEsc)
	s := string(buf)
	ev.Mobile, ev.Date, ev.ID = s[:11], s[11:19], s[19:]
	return nil
}

// fields locates the values of the configured fields in a value; a start of
// -1 means absent.
type fields struct {
	mobile, date, id          span
	mobileEsc, dateEsc, idEsc bool // the string has escapes
	// The members named like the mobile and the date fields (the date's
	// only when it is read).
	mobileNames, dateNames fieldNames
}

// scan validates value as one JSON object, locates the configured fields
// (the last occurrence of each) and records in ev where Encode inserts the
// output member and which members it cuts.
func (c *Codec) scan(value []byte, ev *Event) (fields, error) {
	f := fields{mobile: span{-1, -1}, date: span{-1, -1}, id: span{-1, -1}}

	i := skipSpace(value, 0)
	switch {
	case len(value) == 0:
		return f, &InputError{Class: ClassInvalidJSON, Reason: "the value is empty (a tombstone?); " + c.objectExample}
	case i == len(value):
		return f, &InputError{Class: ClassInvalidJSON, Reason: "the value is only white space; " + c.objectExample}
	}
	if value[i] != '{' {
		end := skipValue(value, i, 1)
		if end < 0 || skipSpace(value, end) != len(value) {
			return f, c.syntaxError(value)
		}
		return f, &InputError{Class: ClassNotObject, Reason: "the value is " + kindOf(value[i]) + "; " + c.objectExample}
	}
	ev.insertAt = i + 1

	// Members named like the output field are cut. While every member so
	// far is such a member (lead >= 0), one cut will run from the first of
	// them to the first kept key, so that no comma is left dangling after
	// '{'; later ones are cut with the comma before them.
	kept, lead, leadEnd, prevEnd := 0, -1, -1, -1
	i = skipSpace(value, i+1)
	if i < len(value) && value[i] == '}' {
		i++
	} else {
		for {
			if i >= len(value) || value[i] != '"' {
				return f, c.syntaxError(value)
			}
			ks := i
			ke, kesc := scanString(value, i)
			if ke < 0 {
				return f, c.syntaxError(value)
			}
			i = skipSpace(value, ke)
			if i >= len(value) || value[i] != ':' {
				return f, c.syntaxError(value)
			}
			vs := skipSpace(value, i+1)
			var ve int
			var vesc bool                            // a string value with escapes
			if vs < len(value) && value[vs] == '"' { // most values: skipValue's switch spared
				ve, vesc = scanString(value, vs)
			} else {
				ve = skipValue(value, vs, 2)
			}
			if ve < 0 {
				return f, c.syntaxError(value)
			}

			key := value[ks+1 : ke-1]
			var unescaped string
			if kesc {
				// Rare: an escaped key. Compare what it means, as
				// encoding/json would.
				var ok bool
				if unescaped, ok = unquote(value[ks:ke]); !ok {
					return f, c.syntaxError(value)
				}
			}
			cut := false
			switch {
			case keyIs(key, kesc, unescaped, c.mobileField):
				f.mobile, f.mobileEsc = span{vs, ve}, vesc
				f.mobileNames.saw(span{})
			case keyIs(key, kesc, unescaped, c.dateField):
				f.date, f.dateEsc = span{vs, ve}, vesc
				if c.dateRead {
					f.dateNames.saw(span{})
				}
			case keyIs(key, kesc, unescaped, c.idField):
				f.id, f.idEsc = span{vs, ve}, vesc
			case keyIs(key, kesc, unescaped, c.outputField):
				cut = true
			case c.mobileFold.holds(key, kesc) && keyFolds(key, kesc, unescaped, c.mobileField):
				f.mobileNames.saw(span{ks, ke})
			case c.dateRead && c.dateFold.holds(key, kesc) && keyFolds(key, kesc, unescaped, c.dateField):
				f.dateNames.saw(span{ks, ke})
			case c.outputFold.holds(key, kesc) && keyFolds(key, kesc, unescaped, c.outputField):
				// The output field in another case: a consumer decoding
				// into a struct would merge it into the verdict.
				cut = true
			}
			switch {
			case cut && kept == 0:
				if lead < 0 {
					lead = ks
				}
				leadEnd = ve
			case cut:
				ev.cuts = append(ev.cuts, span{prevEnd, ve})
			default:
				if kept == 0 && lead >= 0 {
					ev.cuts = append(ev.cuts, span{lead, ks})
				}
				kept++
				ev.insertAt = ve
			}
			prevEnd = ve

			i = skipSpace(value, ve)
			if i < len(value) && value[i] == ',' {
				i = skipSpace(value, i+1)
				continue
			}
			if i < len(value) && value[i] == '}' {
				i++
				break
			}
			return f, c.syntaxError(value)
		}
	}
	if skipSpace(value, i) != len(value) {
		return f, c.syntaxError(value)
	}
	if kept == 0 && lead >= 0 {
		ev.cuts = append(ev.cuts, span{lead, leadEnd})
	}
	ev.comma = kept > 0
	return f, nil
}

// keyIs compares a member's key with a field name without allocating: the
// raw bytes when the key has no escapes, else its unescaped text.
func keyIs(raw []byte, escaped bool, unescaped, name string) bool {
	if escaped {
		return unescaped == name
	}
	return string(raw) == name
}

// fieldNames counts, up to 2 (2: refused), the members named like a field,
// exactly or differing in case only, and keeps the key of the first that
// differs in case (like), for the error that says so.
type fieldNames struct {
	n    uint8
	like span // the zero span: none (a key never starts at 0)
	// another is the second key that differs in case, if any: with the
	// field itself absent, the duplicate's reason names both.
	another span
}

// saw counts a member; like is its key if it differs in case, else zero.
func (f *fieldNames) saw(like span) {
	f.n = min(f.n+1, 2)
	switch {
	case like.end == 0:
	case !f.hasLike():
		f.like = like
	case f.another.end == 0:
		f.another = like
	}
}

func (f *fieldNames) hasLike() bool { return f.like.end > 0 }

// keyFolds reports whether a member's key differs from a field name in case
// only, as encoding/json compares keys (an exact match is keyIs). The
// caller skips the keys its foldRange rules out.
func keyFolds(raw []byte, escaped bool, unescaped, name string) bool {
	if escaped {
		raw = []byte(unescaped)
	}
	return name != "" && bytes.EqualFold(raw, []byte(name))
}

// foldRange is the lengths in bytes a key can have and still differ from a
// field's name in case only, so that keys of other lengths (most) are not
// compared; and the name's first byte, lower-cased, when it is ASCII, so
// that keys of the same length that start otherwise are not either.
type foldRange struct {
	min, max int
	lead     byte // 0: any
}

// holds reports whether key (raw; an escaped key is longer than what it
// means, and always compared) may fold to the name. A key whose first byte
// is ASCII folds to a name only if that byte folds to the name's first
// (ASCII letters fold to each other and to no other ASCII byte).
func (r foldRange) holds(key []byte, escaped bool) bool {
	if escaped {
		return true
	}
	if len(key) < r.min || len(key) > r.max {
		return false
	}
	return r.lead == 0 || len(key) == 0 || key[0] >= utf8.RuneSelf || lowerASCII(key[0]) == r.lead
}

// lowerASCII lower-cases an ASCII letter; other bytes are returned as they are.
func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// foldRangeOf is name's foldRange. For an ASCII name: its length, up to 2
// more bytes for each 'k' (the Kelvin sign, 3 bytes, folds to it) and 1
// for each 's' (the long s, 2 bytes); every other fold of an ASCII letter
// is ASCII. A name with other characters, whose folds may be longer or
// shorter, allows any length.
func foldRangeOf(name string) foldRange {
	r := foldRange{min: len(name), max: len(name)}
	if name != "" && name[0] < utf8.RuneSelf {
		r.lead = lowerASCII(name[0])
	}
	for i := range len(name) {
		switch {
		case name[i] >= utf8.RuneSelf:
			return foldRange{min: 0, max: math.MaxInt}
		case name[i]|0x20 == 'k': // either case
			r.max += 2
		case name[i]|0x20 == 's':
			r.max++
		}
	}
	return r
}

// duplicateError is the error for a value with the mobile or the date field
// more than once.
func (c *Codec) duplicateError(value []byte, f fields) error {
	field, names, exact := c.mobileField, f.mobileNames, f.mobile.start >= 0
	if names.n <= 1 {
		field, names, exact = c.dateField, f.dateNames, f.date.start >= 0
	}
	var reason string
	switch like, another := names.like, names.another; {
	case !exact && another.end > 0:
		// Only in other cases (found by review: the reason said the field
		// itself appeared more than once, and named one of the two keys).
		reason = quote(field) + " is missing, but there are " + string(value[like.start:like.end]) + " and " +
			string(value[another.start:another.end]) + ": field names are case-sensitive, and"
	case names.hasLike():
		reason = quote(field) + " appears more than once, also as " + string(value[like.start:like.end]) + ":"
	default:
		reason = quote(field) + " appears more than once:"
	}
	reason += " JSON parsers differ in which one they read (the first, the last, either case), so a consumer could read another value than the one checked; send the field once"
	return &InputError{Class: ClassDuplicateField, Field: field, Reason: reason}
}

// caseError is the error for a value without field but with a key that
// differs from it in case only (like).
func (c *Codec) caseError(value []byte, field, setting string, like span) error {
	name := quote(field)
	return &InputError{Class: ClassMissingField, Field: field, Reason: name + " is missing, but there is " +
		string(value[like.start:like.end]) + ": field names are case-sensitive; send " + name + ", or set " + setting + " to the name the events use"}
}

// appendMobileValue appends the normalized mobile of the member at sp.
func (c *Codec) appendMobileValue(dst, value []byte, sp span, esc bool) ([]byte, error) {
	name := c.mobileName
	if sp.start < 0 {
		return dst, &InputError{Class: ClassMissingField, Field: c.mobileField, Reason: c.mobileMissing}
	}
	raw := value[sp.start:sp.end]
	fail := func(what string) ([]byte, error) {
		return dst, &InputError{Class: ClassInvalidMobile, Field: c.mobileField, Reason: name + " " + what + `; expected the mobile as a string such as "17312345678" or "+86 173 1234 5678", or an integer`}
	}
	switch b := raw[0]; {
	case b == '"':
		s := raw[1 : len(raw)-1]
		if esc {
			str, ok := unquote(raw)
			if !ok {
				return fail("is not a valid JSON string")
			}
			s = []byte(str)
		}
		return appendMobile(dst, s, name, c.mobileField)
	case b == '-':
		return fail("is a negative number")
	case isDigit(b):
		for _, b := range raw {
			if !isDigit(b) {
				// Never show it: 1.7312345678e10 is a whole mobile.
				return fail("is a number with a fraction or an exponent")
			}
		}
		return appendMobile(dst, raw, name, c.mobileField)
	case b == 'n':
		return fail("is null")
	}
	return fail("is " + kindOf(raw[0]))
}

// appendDateValue appends the query date, from the member at sp (esc: a
// string with escapes) or the record timestamp, as the date source says,
// and sets *at to its instant.
func (c *Codec) appendDateValue(dst, value []byte, sp span, esc bool, recordTime time.Time, at *time.Time) ([]byte, error) {
	switch c.dateSource {
	case DateSourceTimestamp:
		*at = recordTime
		return appendRecordDay(dst, recordTime, c.loc, "input.date_source is timestamp")
	case DateSourceFieldOrTimestamp:
		if sp.start < 0 || value[sp.start] == 'n' {
			*at = recordTime
			return appendRecordDay(dst, recordTime, c.loc, c.noDateFallback)
		}
	default:
		if sp.start < 0 {
			return dst, &InputError{Class: ClassMissingField, Field: c.dateField, Reason: c.dateMissing}
		}
	}
	raw := value[sp.start:sp.end]
	if raw[0] == '"' && !esc {
		// A string scan found valid and without escapes (most dates):
		// not scanned again.
		v := dateValue{name: c.dateName, field: c.dateField, wantAt: true, loc: c.loc, midnights: c.midnights,
			text: raw[1 : len(raw)-1], quoted: true}
		dst, err := appendDateString(dst, &v, c.loc)
		if err == nil {
			*at = v.instant
		}
		return dst, err
	}
	return appendDateAt(dst, raw, c.loc, c.midnights, c.dateName, c.dateField, at)
}

// appendIDValue appends the id's text: a string's content or a number as
// written; nothing for any other value, since the id is only informative.
func appendIDValue(dst, value []byte, sp span, esc bool) []byte {
	if sp.start < 0 {
		return dst
	}
	raw := value[sp.start:sp.end]
	switch {
	case raw[0] == '"' && !esc && utf8.Valid(raw):
		return append(dst, raw[1:len(raw)-1]...)
	case raw[0] == '"':
		// Escapes, or bytes that are not UTF-8: the id is logged, so take
		// the text encoding/json would (U+FFFD for bad bytes).
		if s, ok := unquote(raw); ok {
			return append(dst, s...)
		}
	case raw[0] == '-' || isDigit(raw[0]):
		return append(dst, raw...)
	}
	return dst
}

// unquote returns the text of the JSON string raw, escapes resolved by
// encoding/json (which knows them all, surrogate pairs included). Only
// strings with escapes take this path, and only they pay its allocation.
func unquote(raw []byte) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// syntaxError reports value as invalid JSON with encoding/json's message and
// byte offset, which people know how to read; it runs only on the error path.
func (c *Codec) syntaxError(value []byte) error {
	if bytes.HasPrefix(value, []byte("\xef\xbb\xbf")) {
		// Some Windows and .NET tools write one; encoding/json would
		// name its first byte as the letter 'ï'.
		return &InputError{Class: ClassInvalidJSON, Reason: "the value starts with a UTF-8 byte order mark (bytes EF BB BF), " +
			"which JSON does not allow; send the JSON without it (" + c.objectExample + ")"}
	}
	if !utf8.Valid(value) {
		n := len(value) - len(bytes.ToValidUTF8(value, nil)) // how many bad bytes, for the reason
		at := 0
		for at < len(value) {
			r, size := utf8.DecodeRune(value[at:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			at += size
		}
		return &InputError{Class: ClassInvalidJSON, Reason: fmt.Sprintf("the value is not UTF-8: byte %d (0x%02X) is not part of a UTF-8 character (%d bytes are not); "+
			"JSON text must be UTF-8 (RFC 8259): send the value in UTF-8 (%s)", at, value[at], n, c.objectExample)}
	}
	var raw json.RawMessage
	err := json.Unmarshal(value, &raw)
	var se *json.SyntaxError
	if errors.As(err, &se) && strings.HasSuffix(se.Error(), "exceeded max depth") {
		// Valid JSON's grammar, past the nesting limit: encoding/json's
		// words ("invalid character '['") told of a fault the value does
		// not have (a walkthrough).
		return &InputError{Class: ClassInvalidJSON, Reason: fmt.Sprintf("the value nests arrays and objects more than %d levels deep "+
			"(at byte %d of %d), the limit of twosell's reader and Go's encoding/json; nest less", maxDepth, se.Offset, len(value))}
	}
	if errors.As(err, &se) {
		return &InputError{Class: ClassInvalidJSON, Reason: fmt.Sprintf("the value is not valid JSON: %s (after %d of %d bytes); %s", se.Error(), se.Offset, len(value), c.objectExample)}
	}
	// Not reached while this scanner and encoding/json agree (FuzzDecode
	// checks that they do); stay a clear input error if they ever differ.
	return &InputError{Class: ClassInvalidJSON, Reason: "the value is not valid JSON; " + c.objectExample}
}

// kindOf names the JSON type of a value by its first byte, for reasons.
func kindOf(c byte) string {
	switch c {
	case '{':
		return "a JSON object"
	case '[':
		return "a JSON array"
	case '"':
		return "a JSON string"
	case 't', 'f':
		return "a JSON boolean"
	case 'n':
		return "null"
	}
	return "a JSON number"
}

// Enrichment is what the engine learned about an event, written as the
// output member.
type Enrichment struct {
	Status    Status    // required
	Res       int       // the provider's res; omitted when 0
	Date      string    // the query date, yyyymmdd; the event's Date when ""
	OrderID   string    // the provider's order id; omitted when ""
	Source    string    // "api" or "cache"; omitted when ""
	CheckedAt time.Time // when the answer was obtained; required; written in UTC, to the second (RFC 3339, "2024-01-02T03:04:05Z")
	Mode      string    // how the mobile was sent: plain, md5, sha256, aes, md5+aes, sha256+aes
}

// Encode returns the event's original value with the output member added
// (see AppendEncode).
func (c *Codec) Encode(ev *Event, e Enrichment) ([]byte, error) {
	if ev == nil {
		return nil, errNoEvent
	}
	return c.AppendEncode(make([]byte, 0, c.encodedCap(ev, &e)), ev, e)
}

// encodedCap is room for what AppendEncode appends for ev and e: the
// member's longest fixed words take 192 bytes.
func (c *Codec) encodedCap(ev *Event, e *Enrichment) int {
	return len(ev.raw) + len(c.memberPrefix) + 192 + len(e.OrderID) + len(e.Date)
}

var errNoEvent = errors.New("processor: encode: no event (nil or not from Decode)")

// AppendEncode appends to dst the event's original value with one member
// added after the last member:
//
//	"twosell":{"schema":1,"status":"recycled","res":1,"date":"20240102","order_id":"JH…","source":"api","checked_at":"2024-01-02T03:04:05Z","mode":"plain"}
//
// in exactly this order, under the configured output field name. Everything
// else is copied byte for byte, except members that already had the output
// field's name: they are removed (with their separating comma), so that the
// result never has a duplicate key. It does not allocate when dst has room.
//
// It fails only on a programming error: ev not from Decode, an empty Status
// or a zero CheckedAt.
func (c *Codec) AppendEncode(dst []byte, ev *Event, e Enrichment) ([]byte, error) {
	if ev == nil || ev.raw == nil {
		return dst, errNoEvent
	}
	if e.Status == "" {
		return dst, errors.New("processor: encode: enrichment has no status")
	}
	if e.CheckedAt.IsZero() {
		return dst, errors.New("processor: encode: enrichment has no checked_at time")
	}
	raw, pos, done := ev.raw, 0, false
	for _, cut := range ev.cuts {
		if !done && ev.insertAt <= cut.start {
			dst = append(dst, raw[pos:ev.insertAt]...)
			dst = c.appendMember(dst, ev, &e)
			pos, done = ev.insertAt, true
		}
		dst = append(dst, raw[pos:cut.start]...)
		pos = cut.end
	}
	if !done {
		dst = append(dst, raw[pos:ev.insertAt]...)
		dst = c.appendMember(dst, ev, &e)
		pos = ev.insertAt
	}
	return append(dst, raw[pos:]...), nil
}

// appendMember appends the output member, with a leading comma when members
// precede it.
func (c *Codec) appendMember(dst []byte, ev *Event, e *Enrichment) []byte {
	if ev.comma {
		dst = append(dst, ',')
	}
	dst = append(dst, c.memberPrefix...)
	dst = appendWordString(dst, string(e.Status))
	if e.Res != 0 {
		dst = append(dst, `,"res":`...)
		if 0 < e.Res && e.Res < 10 { // the provider's 1, 2 or 3
			dst = append(dst, byte('0'+e.Res))
		} else {
			dst = strconv.AppendInt(dst, int64(e.Res), 10)
		}
	}
	date := e.Date
	if date == "" {
		date = ev.Date
	}
	dst = append(dst, `,"date":`...)
	if isDay(date) { // as a lookup has it: nothing to escape
		dst = append(append(append(dst, '"'), date...), '"')
	} else {
		dst = appendJSONString(dst, date)
	}
	if e.OrderID != "" {
		dst = append(dst, `,"order_id":`...)
		dst = appendJSONString(dst, e.OrderID)
	}
	if e.Source != "" {
		dst = append(dst, `,"source":`...)
		dst = appendWordString(dst, e.Source)
	}
	dst = append(dst, `,"checked_at":"`...)
	dst = c.appendCheckedAt(dst, e.CheckedAt)
	dst = append(dst, `","mode":`...)
	dst = appendWordString(dst, e.Mode)
	return append(dst, '}')
}

// stamp is a second as appendRFC3339UTC writes it.
type stamp struct {
	sec  int64 // unix seconds
	text [len("2006-01-02T15:04:05Z")]byte
}

// appendCheckedAt is appendRFC3339UTC of t, from the last second written
// when t is in it: the outputs answered from knowledge read their
// dispatcher's clock (tickClock), which gives one second many times.
func (c *Codec) appendCheckedAt(dst []byte, t time.Time) []byte {
	sec := t.Unix() // the second appendRFC3339UTC writes: it truncates, as Unix does
	if s := c.checkedAt.Load(); s != nil && s.sec == sec {
		return append(dst, s.text[:]...)
	}
	n := len(dst)
	dst = appendRFC3339UTC(dst, t)
	if s := (&stamp{sec: sec}); len(dst)-n == len(s.text) { // years 0–9999
		copy(s.text[:], dst[n:])
		c.checkedAt.Store(s)
	}
	return dst
}

// appendWordString is appendJSONString, from constants for the words an
// output member says on every record: statuses, sources, the plain mode (a
// constant appended is a third faster than the same word in quotes).
func appendWordString(dst []byte, s string) []byte {
	switch s {
	case "recycled":
		return append(dst, `"recycled"`...)
	case "not_recycled":
		return append(dst, `"not_recycled"`...)
	case "cache":
		return append(dst, `"cache"`...)
	case "api":
		return append(dst, `"api"`...)
	case "plain":
		return append(dst, `"plain"`...)
	}
	return appendJSONString(dst, s)
}

// appendJSONString appends s as a JSON string the way encoding/json writes
// it, minus HTML escaping (the output is not embedded in HTML): control
// characters, quotes and backslashes escaped, bytes that are not UTF-8
// replaced by U+FFFD, and U+2028/U+2029 escaped for JavaScript consumers.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Eight bytes at a time while all are printable ASCII other than
		// '"' and '\\': nearly every string twosell writes.
		if i+8 <= len(s) {
			if x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
				uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56; x&0x8080808080808080 == 0 && !hasSpecialByte(x) {
				i += 8
				continue
			}
		}
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// The scanner below validates JSON as encoding/json does (same grammar, same
// nesting limit), and its strings as UTF-8, which encoding/json does not
// check, without building values. FuzzDecode holds it to json.Valid and
// utf8.Valid.

// maxDepth is encoding/json's nesting limit: deeper values are invalid.
const maxDepth = 10000

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(d []byte, i int) int {
	for i < len(d) && d[i] <= ' ' && isSpace(d[i]) { // most values have no space: one comparison
		i++
	}
	return i
}

// plainStringByte marks the ASCII bytes a string may hold without an
// escape; the others, UTF-8 sequences, are checked as such.
var plainStringByte = func() (t [256]bool) {
	for i := 0x20; i < utf8.RuneSelf; i++ {
		t[i] = i != '"' && i != '\\'
	}
	return t
}()

// scanString returns the index after the JSON string starting at d[i] (a
// '"'), and whether it has escapes; end is -1 if it is not a valid string.
func scanString(d []byte, i int) (end int, escaped bool) {
	i++
	for {
		// Eight bytes at a time while none is special: strings are most of
		// a record's bytes.
		for i+8 <= len(d) {
			if m := specialBytes(binary.LittleEndian.Uint64(d[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3 // the first special byte: exact
				goto special
			}
			i += 8
		}
		for i < len(d) && plainStringByte[d[i]] {
			i++
		}
		if i >= len(d) {
			return -1, escaped
		}
	special:
		switch d[i] {
		case '"':
			return i + 1, escaped
		case '\\':
			escaped = true
			if i+1 >= len(d) {
				return -1, escaped
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) || !isHex(d[i+5]) {
					return -1, escaped
				}
				i += 6
			default:
				return -1, escaped
			}
		default:
			if d[i] < utf8.RuneSelf { // a control character
				return -1, escaped
			}
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 { // not UTF-8
				return -1, escaped
			}
			i += size
		}
	}
}

// hasSpecialByte reports whether any byte of x is a '"', a '\\', a control
// character (< 0x20) or not ASCII (>= 0x80, part of a UTF-8 sequence to
// check), with the classic bit tricks: for each byte b, (b - n) & ^b & 0x80
// is set only if b < n (n <= 0x80), and the first such byte is always
// flagged, so the answer for the word is exact.
func hasSpecialByte(x uint64) bool { return specialBytes(x) != 0 }

// specialBytes flags (bit 7 of) the bytes of x that hasSpecialByte looks
// for. The lowest flag is exact (no borrow reaches the first special byte
// from below it); flags above it may be false.
func specialBytes(x uint64) uint64 {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	q := x ^ ('"' * lsb)
	b := x ^ ('\\' * lsb)
	return ((x-0x20*lsb)&^x | (q-lsb)&^q | (b-lsb)&^b | x) & msb
}

func isHex(c byte) bool { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') }

// scanNumber returns the index after the JSON number starting at d[i], or -1.
func scanNumber(d []byte, i int) int {
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i >= len(d):
		return -1
	case d[i] == '0':
		i++
	case d[i] >= '1' && d[i] <= '9':
		for i++; i < len(d) && isDigit(d[i]); i++ {
		}
	default:
		return -1
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return -1
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return -1
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	return i
}

// skipValue returns the index after the JSON value starting at d[i], or -1
// if there is none; depth is the nesting level a container there would have.
func skipValue(d []byte, i, depth int) int {
	if i >= len(d) {
		return -1
	}
	switch c := d[i]; c {
	case '"':
		end, _ := scanString(d, i)
		return end
	case '{', '[':
		if depth > maxDepth {
			return -1
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipSpace(d, i+1)
		if i < len(d) && d[i] == closer {
			return i + 1
		}
		for {
			if c == '{' {
				if i >= len(d) || d[i] != '"' {
					return -1
				}
				if i, _ = scanString(d, i); i < 0 {
					return -1
				}
				if i = skipSpace(d, i); i >= len(d) || d[i] != ':' {
					return -1
				}
				i = skipSpace(d, i+1)
			}
			if i = skipValue(d, i, depth+1); i < 0 {
				return -1
			}
			if i = skipSpace(d, i); i >= len(d) {
				return -1
			}
			switch d[i] {
			case ',':
				i = skipSpace(d, i+1)
			case closer:
				return i + 1
			default:
				return -1
			}
		}
	case 't':
		return literal(d, i, "true")
	case 'f':
		return literal(d, i, "false")
	case 'n':
		return literal(d, i, "null")
	}
	return scanNumber(d, i)
}

// literal returns the index after lit at d[i], or -1.
func literal(d []byte, i int, lit string) int {
	if len(d)-i < len(lit) || string(d[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}
