package wire

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// LastSeenName names last-seen in errors.
const LastSeenName = "last-seen"

// Caps of a last-seen value: any value within LastSeenMaxEntries entries
// formats within LastSeenMaxLen bytes.
const (
	LastSeenMaxLen     = 16384
	LastSeenMaxEntries = 256
)

// LastSeen is when each version was last presented to a verifier.
type LastSeen map[uint64]time.Time

// ParseLastSeen reads `version=date-time,...` strictly: a version twice is
// a duplicate, and the empty value has no entry.
func ParseLastSeen(text string) (LastSeen, error) {
	entries, f := lastSeenEntries(text)
	if f != nil {
		return nil, f.in(LastSeenName, text)
	}
	seen := LastSeen{}
	for _, entry := range entries {
		v, t, f := lastSeenEntry(entry)
		if f != nil {
			return nil, f.in(LastSeenName, text)
		}
		if _, twice := seen[v]; twice {
			return nil, (&fault{Duplicate, "a version appears twice"}).in(LastSeenName, text)
		}
		seen[v] = t
	}
	return seen, nil
}

// ParseLastSeenLenient reads what it can, as the operator does: an entry
// that breaks the grammar is skipped and counted, spaces and tabs around a
// version or time are allowed, a version kept twice keeps its latest time.
// Only a value over the caps is refused as a whole.
func ParseLastSeenLenient(text string) (LastSeen, int, error) {
	entries, f := lastSeenEntries(text)
	if f != nil {
		return nil, 0, f.in(LastSeenName, text)
	}
	seen, skipped := LastSeen{}, 0
	for _, entry := range entries {
		left, right, found := strings.Cut(entry, "=")
		v, fv := decimal(ows(left), "version")
		t, ft := parseTime(ows(right))
		if !found || fv != nil || ft != nil {
			skipped++
			continue
		}
		if old, ok := seen[v]; !ok || t.After(old) {
			seen[v] = t
		}
	}
	return seen, skipped, nil
}

func lastSeenEntries(text string) ([]string, *fault) {
	if f := checkLen(text, LastSeenMaxLen); f != nil {
		return nil, f
	}
	return pieces(text, ",", LastSeenMaxEntries)
}

func lastSeenEntry(entry string) (uint64, time.Time, *fault) {
	left, right, found := strings.Cut(entry, "=")
	if !found {
		return 0, time.Time{}, syntax("an entry is not <version>=<time>")
	}
	v, f := decimal(left, "version")
	if f != nil {
		return 0, time.Time{}, f
	}
	t, f := parseTime(right)
	return v, t, f
}

// String writes the value: versions ascending, times in UTC with Z.
func (s LastSeen) String() string {
	versions := make([]uint64, 0, len(s))
	for v := range s {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	var b strings.Builder
	for i, v := range versions {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(v, 10))
		b.WriteByte('=')
		b.WriteString(FormatTime(s[v]))
	}
	return b.String()
}
