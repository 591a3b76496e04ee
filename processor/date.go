package processor

import (
	"errors"
	"strconv"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// dateFormats lists what a date field may hold; reasons about an
// unrecognized date end with it so that the reader knows what to send.
const dateFormats = "accepted: RFC 3339 (2024-01-02T03:04:05+08:00, Z or an offset, optional fraction), yyyy-mm-dd, yyyymmdd, or unix seconds or milliseconds (a number or a numeric string)"

const (
	// minYear and maxYear bound a plausible registration date. Anything
	// outside is a unit or format mistake upstream, and querying the
	// provider with it would pay for a meaningless answer.
	minYear = 1990
	maxYear = 2100

	// msFrom splits unix seconds from milliseconds: 1e11 seconds is the
	// year 5138 and 1e11 ms is 1973, so no date in 1990–2100 is ambiguous.
	msFrom = 100_000_000_000

	// microFrom is where a "millisecond" value is more likely microseconds
	// or nanoseconds (1e14 ms is the year 5138).
	microFrom = 100_000_000_000_000

	unixHint  = " (numbers below 100000000000 are read as unix seconds, larger ones as unix milliseconds)"
	microHint = " (numbers below 100000000000 are read as unix seconds, larger ones as unix milliseconds; this one looks like microseconds or nanoseconds: send seconds or milliseconds)"
)

// ParseDate turns a JSON value (raw, a string or a number, as it appears in
// the input) into the calendar day it names, as yyyymmdd. It returns an
// *InputError of class ClassInvalidDate whose reason lists the accepted
// formats when raw is not a date.
//
// Accepted:
//   - a string in RFC 3339 ("2024-01-02T03:04:05+08:00", "…Z", with or
//     without fractional seconds; a lower-case t or z, or a space instead
//     of the T, as RFC 3339 allows), converted to a day in loc;
//   - a string "yyyy-mm-dd", or "yyyymmdd", or a number of 8 digits: a
//     calendar day already, taken as is (not converted) and checked
//     (20240230 is rejected);
//   - any other integer, as a number or a numeric string: unix seconds if
//     below 1e11, else unix milliseconds, converted to a day in loc. A
//     fractional part is ignored (the day does not depend on it).
//
// The day must be in the years 1990–2100: a date outside is a unit or format
// mistake upstream (a reason says so, hinting at seconds versus
// milliseconds). A time with no offset is rejected rather than guessed.
func ParseDate(raw []byte, loc *time.Location) (string, error) {
	if loc == nil {
		return "", errors.New("processor: ParseDate: nil location")
	}
	var buf [8]byte
	d, err := appendDate(buf[:0], trimSpace(raw), loc, "date", "")
	if err != nil {
		return "", err
	}
	return string(d), nil
}

// DayOf returns the calendar day of t in loc as yyyymmdd (in t's own
// location when loc is nil).
func DayOf(t time.Time, loc *time.Location) string {
	if loc != nil {
		t = t.In(loc)
	}
	var buf [16]byte
	y, m, d := t.Date()
	return string(appendDay(buf[:0], y, m, d))
}

// appendRFC3339UTC appends t in UTC to the second as time.RFC3339 writes it
// ("2024-01-02T03:04:05Z"), in a fifth of the time AppendFormat takes: every
// output carries one. Years outside 0–9999 go to AppendFormat.
func appendRFC3339UTC(dst []byte, t time.Time) []byte {
	t = t.UTC()
	y, m, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(dst, time.RFC3339)
	}
	hh, mm, ss := t.Clock()
	return append(dst,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+hh/10), byte('0'+hh%10), ':', byte('0'+mm/10), byte('0'+mm%10), ':',
		byte('0'+ss/10), byte('0'+ss%10), 'Z')
}

// appendDay appends yyyymmdd. Years outside 0–9999 (which ParseDate never
// produces) are written in full so that DayOf stays honest about them.
func appendDay(dst []byte, y int, m time.Month, d int) []byte {
	if y < 0 || y > 9999 {
		dst = strconv.AppendInt(dst, int64(y), 10)
	} else {
		dst = append(dst, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10))
	}
	return append(dst, byte('0'+m/10), byte('0'+m%10), byte('0'+d/10), byte('0'+d%10))
}

// appendDate is ParseDate appending to dst; name is how a reason names the
// value ("date" or `field "registered_at"`) and field goes into
// InputError.Field. It allocates only on error or for a string with escapes.
func appendDate(dst, raw []byte, loc *time.Location, name, field string) ([]byte, error) {
	return appendDateAt(dst, raw, loc, nil, name, field, nil)
}

// appendDateAt is appendDate that also sets *at (when at is not nil) to the
// instant the day came from: the time given, or midnight in loc for a value
// that is a day already, remembered in midnights (loc's, or nil).
func appendDateAt(dst, raw []byte, loc *time.Location, midnights *midnightTable, name, field string, at *time.Time) ([]byte, error) {
	v := dateValue{name: name, field: field, wantAt: at != nil, loc: loc, midnights: midnights}
	dst, err := v.appendTo(dst, raw, loc)
	if err == nil && at != nil {
		*at = v.instant
	}
	return dst, err
}

// appendTo is appendDateAt's parse. The instant is kept in v, not stored
// through a pointer held in v: a reason built from v's fields would take
// that pointer, and what it points to, to the heap (escape analysis does
// not tell fields apart), and with it the caller's Event.
func (v *dateValue) appendTo(dst, raw []byte, loc *time.Location) ([]byte, error) {
	if len(raw) == 0 {
		return dst, v.fail("is empty; " + dateFormats)
	}
	switch c := raw[0]; {
	case c == '"':
		end, esc := scanString(raw, 0)
		if end != len(raw) {
			return dst, v.fail("is not a valid JSON string; " + dateFormats)
		}
		v.text, v.quoted = raw[1:end-1], true
		if esc {
			str, ok := unquote(raw)
			if !ok {
				return dst, v.fail("is not a valid JSON string; " + dateFormats)
			}
			v.text = []byte(str)
		}
		return appendDateString(dst, v, loc)
	case c == '-' || isDigit(c):
		if scanNumber(raw, 0) != len(raw) {
			return dst, v.fail("is not a valid JSON number; " + dateFormats)
		}
		v.text = raw
		return appendDateNumber(dst, v, loc)
	case hasLiteral(raw, "null"):
		return dst, v.fail("is null; " + dateFormats)
	case hasLiteral(raw, "true") || hasLiteral(raw, "false"):
		return dst, v.fail("is a JSON boolean; " + dateFormats)
	case c == '{':
		return dst, v.fail("is a JSON object; " + dateFormats)
	case c == '[':
		return dst, v.fail("is a JSON array; " + dateFormats)
	}
	return dst, v.fail("is not a JSON value; " + dateFormats)
}

// dateValue is a date being parsed, with what its reasons need. The value
// is formatted into a reason only on error, which keeps parsing free of
// allocations.
type dateValue struct {
	name, field string
	text        []byte         // a string's content, or a number as written; nil before it is known
	quoted      bool           // text is a string's content
	wantAt      bool           // the instant is wanted
	instant     time.Time      // the instant the day came from, when wanted
	loc         *time.Location // the zone of a day's midnight, for instant
	midnights   *midnightTable // loc's midnights, remembered; nil: none
}

// setAt keeps the instant the day came from, if wanted.
func (v *dateValue) setAt(t time.Time) {
	if v.wantAt {
		v.instant = t
	}
}

// fail returns the InputError `<name> (<value>) <what>`.
func (v *dateValue) fail(what string) error {
	reason := v.name + " "
	switch {
	case looksLikeMobile(v.text):
		// A mobile in the date's field (fields swapped or shifted): shown
		// masked, as a mobile always is in a reason.
		if v.quoted {
			reason += "(" + quote(MaskMobile(string(v.text))) + ") "
		} else {
			reason += "(" + MaskMobile(string(v.text)) + ") "
		}
	case holdsMobile(v.text):
		// One written otherwise (17312345678.0, 1.7312345678e10,
		// tel:17312345678) is not shown at all, as the mobile field's is
		// not (found by review: its digits were shown).
		reason += "(not shown: it may hold a mobile number) "
	case v.quoted:
		reason += "(" + quote(string(v.text)) + ") "
	case len(v.text) > maxQuoted:
		// A JSON number is ASCII: safe to cut anywhere.
		reason += "(" + string(v.text[:maxQuoted]) + "…) "
	case v.text != nil:
		reason += "(" + string(v.text) + ") "
	}
	return &InputError{Class: ClassInvalidDate, Field: v.field, Reason: reason + what}
}

// holdsMobile reports whether text holds a mobile's digits: a run of
// decimal digits, of any script (ASCII, full-width, Arabic-Indic, ...), with
// 1[3-9] and nine more in it, through any character but a letter, a colon
// or a plus: spaces, dashes, parentheses, slashes, decimal points ("(173)
// 1234-5678", "173/1234/5678", "tel:17312345678", 17312345678.0). A
// date-time's runs are cut by its T, its colons and its offset; a date's
// are shorter; a unix time in milliseconds can hold one, and is not shown
// in a reason then. (Found by reviews: such mobiles were shown in clear.)
func holdsMobile(text []byte) bool {
	prev := -1
	after := 0 // digits of the run after its first "1[3-9]"'s 1, if it has one
	for i := 0; i < len(text); {
		r, size := rune(text[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(text[i:])
		}
		i += size
		switch d := digitValue(r); {
		case d >= 0:
			if after > 0 || (prev == 1 && d >= 3) {
				if after++; after == 10 {
					return true
				}
			}
			prev = d
		case r == ':' || r == '+' || unicode.IsLetter(r):
			prev, after = -1, 0
		}
	}
	return false
}

// digitValue returns r's value if it is a decimal digit of any script
// (Unicode's Nd, which come in ranges of ten, from 0 to 9), else -1.
func digitValue(r rune) int {
	switch {
	case r >= '0' && r <= '9':
		return int(r - '0')
	case r < utf8.RuneSelf || !unicode.IsDigit(r):
		return -1
	}
	start := r
	for unicode.IsDigit(start - 1) {
		start--
	}
	return int(r-start) % 10
}

// looksLikeMobile reports whether text is a mobile as the mobile field
// would take it (NormalizeMobile), on the error path only.
func looksLikeMobile(text []byte) bool {
	_, err := NormalizeMobile(string(text))
	return err == nil
}

// appendDateString handles the content of a JSON string.
func appendDateString(dst []byte, v *dateValue, loc *time.Location) ([]byte, error) {
	s := v.text
	switch {
	case len(s) == 0:
		v.text, v.quoted = nil, false
		return dst, v.fail("is an empty string; " + dateFormats)
	case isDecimal(s):
		return appendDateNumber(dst, v, loc)
	case len(s) == 10 && s[4] == '-' && s[7] == '-':
		y, ok1 := atoi(s[0:4])
		m, ok2 := atoi(s[5:7])
		d, ok3 := atoi(s[8:10])
		if !ok1 || !ok2 || !ok3 {
			return dst, v.fail("is not a recognized date; " + dateFormats)
		}
		return appendCivil(dst, v, y, m, d, "")
	}
	t, problem := parseRFC3339(s)
	if problem != "" {
		return dst, v.fail(problem)
	}
	v.setAt(t)
	t = t.In(loc)
	y, m, d := t.Date()
	if y < minYear || y > maxYear {
		return dst, v.fail("is in the year " + strconv.Itoa(y) + " in " + loc.String() + "; expected a date in 1990–2100")
	}
	return appendDay(dst, y, m, d), nil
}

// appendDateNumber handles an unsigned decimal, from a JSON number or a
// numeric string.
func appendDateNumber(dst []byte, v *dateValue, loc *time.Location) ([]byte, error) {
	s := v.text
	if s[0] == '-' {
		return dst, v.fail("is negative; " + dateFormats)
	}
	intPart, frac := s, false
	for i, c := range s {
		switch {
		case c == 'e' || c == 'E':
			return dst, v.fail("has an exponent; write a unix time as a plain integer (" + dateFormats + ")")
		case c == '.' && !frac:
			intPart, frac = s[:i], true
		}
	}
	if len(intPart) == 8 {
		if frac {
			return dst, v.fail("has 8 digits, read as yyyymmdd, and cannot have a fraction; " + dateFormats)
		}
		y, _ := atoi(intPart[0:4])
		m, _ := atoi(intPart[4:6])
		d, _ := atoi(intPart[6:8])
		return appendCivil(dst, v, y, m, d, " (8 digits are read as yyyymmdd)")
	}
	// 18 digits fit an int64; anything longer is no date in any unit.
	if len(intPart) > 18 {
		return dst, v.fail("is too large for a unix time in seconds or milliseconds" + microHint)
	}
	n := atoi64(intPart)
	var t time.Time
	unit := "seconds"
	if n < msFrom {
		t = time.Unix(n, 0)
	} else {
		t = time.UnixMilli(n)
		unit = "milliseconds"
	}
	v.setAt(t)
	t = t.In(loc)
	y, m, d := t.Date()
	if y < minYear || y > maxYear {
		hint := unixHint
		if n >= microFrom {
			hint = microHint
		}
		return dst, v.fail("read as unix " + unit + " is in the year " + strconv.Itoa(y) + "; expected a date in 1990–2100" + hint)
	}
	return appendDay(dst, y, m, d), nil
}

// appendCivil checks and appends a calendar day given as digits; it is
// already a day, so no time zone applies.
func appendCivil(dst []byte, v *dateValue, y, m, d int, hint string) ([]byte, error) {
	if !validDay(y, m, d) {
		return dst, v.fail("is not a valid calendar day" + hint + "; " + dateFormats)
	}
	if y < minYear || y > maxYear {
		return dst, v.fail("is in the year " + strconv.Itoa(y) + "; expected a date in 1990–2100" + hint)
	}
	if v.wantAt {
		v.setAt(v.midnights.at(y, m, d, v.loc))
	}
	return appendDay(dst, y, time.Month(m), d), nil
}

// midnightTable remembers the days' midnights in one zone (at), direct-
// mapped by the day's count since the epoch, so that any 8,192 consecutive
// days (22 years) have slots of their own: mapped by yyyymmdd into 1,024
// slots, the bench's 3,360 days (2015–2024) took each other's, and a third
// of the dates read went to time.Date again. Each slot is one word, the
// day's count and its midnight's offset from the day's start in UTC, so
// that a date read costs one load: a slot that pointed to the day's time,
// shared by every zone, cost a second (1.5% of the CPU of the cache-warm
// bench, mostly that miss). Read by every partition's dispatcher, so
// without a lock. A Codec has its zone's.
type midnightTable struct {
	loc   *time.Location
	slots [8192]atomic.Uint64 // (days+1)<<32 | uint32(offset in seconds); 0: empty
}

func newMidnightTable(loc *time.Location) *midnightTable { return &midnightTable{loc: loc} }

// at is time.Date(y, m, d, 0, 0, 0, 0, loc), remembered when loc is t's: in
// a zone other than UTC, time.Date looks the zone's rules up twice, and a
// day's midnight was a third of the time taken to read a date. y is in
// 1990–2100 (validated by the caller). A nil t remembers nothing.
func (t *midnightTable) at(y, m, d int, loc *time.Location) time.Time {
	if t == nil || loc != t.loc {
		return time.Date(y, time.Month(m), d, 0, 0, 0, 0, loc)
	}
	days := int64(civilDays(y, m, d))
	slot := &t.slots[uint64(days)%uint64(len(t.slots))]
	if v := slot.Load(); v>>32 == uint64(days+1) {
		return time.Unix(days*86400+int64(int32(uint32(v))), 0).In(loc)
	}
	at := time.Date(y, time.Month(m), d, 0, 0, 0, 0, loc)
	if off := at.Unix() - days*86400; off == int64(int32(off)) { // within a day or two: always
		slot.Store(uint64(days+1)<<32 | uint64(uint32(int32(off))))
	}
	return at
}

// civilDays is the count of days from 1970-01-01 to the calendar day y-m-d
// (y >= 1970), without time.Date: the days before March of a year count
// in the year before, so that a leap day is a year's last.
func civilDays(y, m, d int) int {
	if m <= 2 {
		y--
		m += 12
	}
	return 365*y + y/4 - y/100 + y/400 + (153*(m-3)+2)/5 + d - 719469
}

// appendRecordDay appends the day of the Kafka record timestamp t in loc.
// why says why the timestamp is used, for the reason when it is unusable.
func appendRecordDay(dst []byte, t time.Time, loc *time.Location, why string) ([]byte, error) {
	// Kafka's "no timestamp" is -1 ms; franz-go hands it over as such.
	if t.IsZero() || t.UnixMilli() == -1 {
		return dst, &InputError{Class: ClassInvalidDate, Reason: why + ", but the record has no timestamp"}
	}
	t = t.In(loc)
	y, m, d := t.Date()
	if y < minYear || y > maxYear {
		return dst, &InputError{Class: ClassInvalidDate, Reason: why + ", but the record timestamp (" + t.Format(time.RFC3339Nano) + ") is in the year " + strconv.Itoa(y) + "; expected 1990–2100"}
	}
	return appendDay(dst, y, m, d), nil
}

// parseRFC3339 parses YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|±HH:MM) by
// hand: time.Parse allocates for every call with a []byte, and this is the
// hot path. It returns the instant, or a problem for the reason.
func parseRFC3339(s []byte) (time.Time, string) {
	const unknown = "is not a recognized date; " + dateFormats
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, unknown
	}
	if c := s[10]; c != 'T' && c != 't' && c != ' ' {
		return time.Time{}, unknown
	}
	y, ok1 := atoi(s[0:4])
	mo, ok2 := atoi(s[5:7])
	d, ok3 := atoi(s[8:10])
	h, ok4 := atoi(s[11:13])
	mi, ok5 := atoi(s[14:16])
	sec, ok6 := atoi(s[17:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return time.Time{}, unknown
	}
	i := 19
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == start {
			return time.Time{}, unknown
		}
		// The fraction cannot move the instant across a second, so it
		// cannot change the day.
	}
	if i == len(s) {
		return time.Time{}, "has no time zone offset; add Z or an offset such as +08:00 (" + dateFormats + ")"
	}
	offset := 0
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(s)-i != 6 || s[i+3] != ':' {
			return time.Time{}, unknown
		}
		oh, ok1 := atoi(s[i+1 : i+3])
		om, ok2 := atoi(s[i+4 : i+6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, "has an invalid time zone offset; expected Z or ±hh:mm with hh ≤ 23 and mm ≤ 59"
		}
		offset = oh*3600 + om*60
		if s[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return time.Time{}, unknown
	}
	if i != len(s) {
		return time.Time{}, unknown
	}
	if !validDay(y, mo, d) {
		return time.Time{}, "is not a valid calendar day; " + dateFormats
	}
	if h > 23 || mi > 59 || sec > 60 {
		return time.Time{}, "has an invalid time of day; expected hh:mm:ss with hh ≤ 23, mm ≤ 59, ss ≤ 60"
	}
	// RFC 3339 allows a leap second (60), which Go's time has not: it is
	// taken as the last instant of its minute, right to within a second.
	// time.Date would carry it into the next minute, at 23:59:60 into the
	// next day.
	ns := 0
	if sec == 60 {
		sec, ns = 59, int(time.Second-1)
	}
	// Build in UTC and shift, rather than time.FixedZone, which allocates.
	t := time.Date(y, time.Month(mo), d, h, mi, sec, ns, time.UTC).Add(-time.Duration(offset) * time.Second)
	return t, ""
}

// validDay reports whether y-m-d is a day of the proleptic Gregorian calendar.
func validDay(y, m, d int) bool {
	if m < 1 || m > 12 || d < 1 {
		return false
	}
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return d <= 29
		}
		return d <= 28
	case 4, 6, 9, 11:
		return d <= 30
	}
	return d <= 31
}

// atoi parses up to 18 ASCII digits; ok is false for an empty input or any
// other byte.
func atoi(s []byte) (int, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// atoi64 reads digits (at most 18, as checked by the caller) as an int64:
// a unix time in milliseconds does not fit a 32-bit int.
func atoi64(s []byte) int64 {
	var n int64
	for _, c := range s {
		if !isDigit(c) {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// isDecimal reports whether s is digits with at most one '.' between digits:
// the numeric strings that are read like JSON numbers.
func isDecimal(s []byte) bool {
	dot := -1
	for i, c := range s {
		switch {
		case isDigit(c):
		case c == '.' && dot < 0:
			dot = i
		default:
			return false
		}
	}
	return len(s) > 0 && dot != 0 && dot != len(s)-1
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// hasLiteral reports whether raw is exactly the literal lit.
func hasLiteral(raw []byte, lit string) bool { return string(raw) == lit }

// trimSpace trims JSON whitespace (not Unicode spaces: they are not JSON).
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
