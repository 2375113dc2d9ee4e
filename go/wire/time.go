package wire

import "time"

// Earliest and Latest bound every date-time of the contract: the range
// every implementation can hold (docs/wire.md#common-grammar).
var (
	Earliest = time.Date(0, time.January, 1, 0, 0, 0, 0, time.UTC)
	Latest   = time.Date(9999, time.December, 30, 22, 0, 0, 999999999, time.UTC)
)

// ParseTime reads an RFC 3339 date-time as the contract restricts it: an
// upper-case T and Z, at most nine fraction digits, no leap second, an
// offset of at most 23:59, an instant between Earliest and Latest.
func ParseTime(text string) (time.Time, bool) {
	t, f := parseTime(text)
	return t, f == nil
}

// FormatTime writes t in UTC with Z, the fraction only when it is not zero
// and without trailing zeros.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")
}

func parseTime(text string) (time.Time, *fault) {
	const what = "time is not an RFC 3339 date-time"
	b := text
	num := func(from, n int) (int, bool) {
		if from+n > len(b) {
			return 0, false
		}
		v := 0
		for _, c := range []byte(b[from : from+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	at := func(i int, c byte) bool { return i < len(b) && b[i] == c }
	year, okY := num(0, 4)
	month, okM := num(5, 2)
	day, okD := num(8, 2)
	hour, okH := num(11, 2)
	minute, okMi := num(14, 2)
	second, okS := num(17, 2)
	shape := okY && at(4, '-') && okM && month >= 1 && month <= 12 && at(7, '-') &&
		okD && day >= 1 && day <= 31 && at(10, 'T') && okH && hour <= 23 && at(13, ':') &&
		okMi && minute <= 59 && at(16, ':') && okS && second <= 59
	if !shape {
		return time.Time{}, syntax(what)
	}
	i, nanos := 19, 0
	if at(i, '.') {
		digits := 0
		for i+1+digits < len(b) && b[i+1+digits] >= '0' && b[i+1+digits] <= '9' {
			digits++
		}
		if digits < 1 || digits > 9 {
			return time.Time{}, syntax(what)
		}
		nanos, _ = num(i+1, digits)
		for k := digits; k < 9; k++ {
			nanos *= 10
		}
		i += 1 + digits
	}
	offset := 0
	switch {
	case at(i, 'Z') && len(b) == i+1:
	case (at(i, '+') || at(i, '-')) && len(b) == i+6 && at(i+3, ':'):
		oh, okOH := num(i+1, 2)
		om, okOM := num(i+4, 2)
		if !okOH || !okOM || oh > 23 || om > 59 {
			return time.Time{}, syntax(what)
		}
		offset = oh*3600 + om*60
		if b[i] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, syntax(what)
	}
	local := time.Date(year, time.Month(month), day, hour, minute, second, nanos, time.UTC)
	if local.Day() != day { // February 30th and the like: no such day
		return time.Time{}, &fault{OutOfRange, "time names no calendar day"}
	}
	t := local.Add(-time.Duration(offset) * time.Second)
	if t.Before(Earliest) || t.After(Latest) {
		return time.Time{}, &fault{OutOfRange, "time is out of range"}
	}
	return t, nil
}
