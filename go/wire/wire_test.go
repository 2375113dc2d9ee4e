package wire

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func class(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return ""
}

func TestAnErrorQuotesABoundedEscapedPrefixOnly(t *testing.T) {
	long := "\a" + strings.Repeat("x", 10000)
	_, err := ParseNudge(long)
	shown := err.Error()
	if len(shown) > 150 || !strings.Contains(shown, `\a`) || !strings.HasSuffix(shown, "…") || class(err) != TooLong {
		t.Fatalf("%q", shown)
	}
	_, err = ParseRevisionReport("\xff\xfe")
	if shown := err.Error(); !strings.Contains(shown, `\xff\xfe`) {
		t.Fatalf("invalid UTF-8 is escaped: %q", shown)
	}
}

func TestNumbersArePlainDigitsWithinSixtyFourBits(t *testing.T) {
	for text, want := range map[string]uint64{"007": 7, "0": 0, "18446744073709551615": 1<<64 - 1} {
		if n, ok := ParseNumber(text); !ok || n != want {
			t.Errorf("%q: %d %v", text, n, ok)
		}
	}
	for _, bad := range []string{"", "+5", "-1", " 5", "5 ", "1e3", "٣", "0x10", "1_000", "000000000000000000001"} {
		if _, f := decimal(bad, "n"); f == nil || f.class != Syntax {
			t.Errorf("%q: %v", bad, f)
		}
	}
	if _, f := decimal("18446744073709551616", "n"); f == nil || f.class != OutOfRange {
		t.Errorf("over 64 bits: %v", f)
	}
}

func TestTimesAreStrictRFC3339InsideTheRepresentableRange(t *testing.T) {
	for text, want := range map[string]string{
		"2026-03-01T10:14:03Z":        "2026-03-01T10:14:03Z",
		"2026-03-01T11:14:03.5+01:00": "2026-03-01T10:14:03.5Z",
		"0000-01-01T00:00:00Z":        "0000-01-01T00:00:00Z",
	} {
		got, f := parseTime(text)
		if f != nil || FormatTime(got) != want {
			t.Errorf("%q: %s %v", text, FormatTime(got), f)
		}
	}
	for _, bad := range []string{"2026-03-01t10:14:03z", "2026-03-01T10:14Z", "2026-03-01T10:14:60Z",
		"2026-03-01T10:14:03.1234567891Z", "2026-03-01T10:14:03.Z", "2026-03-01T10:14:03+24:00",
		"2026-03-01T10:14:03+0100", "2026-03-01T10:14:03", "2026-03-01T10:14:03Zjunk", "2026-00-01T10:14:03Z",
		"2026-03-32T10:14:03Z", "+2026-03-01T10:14:03Z", "2026-03-01T10:14:03+01:60"} {
		if _, f := parseTime(bad); f == nil || f.class != Syntax {
			t.Errorf("%q: %v", bad, f)
		}
	}
	for _, far := range []string{"2026-02-30T10:14:03Z", "2026-04-31T00:00:00Z", "9999-12-31T00:00:00Z",
		"9999-12-31T23:59:59.999999999+23:59", "0000-01-01T00:00:00+01:00"} {
		if _, f := parseTime(far); f == nil || f.class != OutOfRange {
			t.Errorf("%q: %v", far, f)
		}
	}
}

func TestANudgeDropsAFractionOfASecondWhenWritten(t *testing.T) {
	n := Nudge{Revision: 1, Attempt: 1, At: time.Date(2026, 3, 1, 10, 0, 0, 900_000_000, time.UTC)}
	if n.String() != "1/1/1772359200" {
		t.Fatal(n.String())
	}
}

func TestManyCommasAreRefusedAsTooManyEntriesNotReadOneByOne(t *testing.T) {
	if _, _, err := ParseLastSeenLenient(strings.Repeat(",", LastSeenMaxLen)); class(err) != TooMany {
		t.Fatal(err)
	}
	counts := "accepted=" + strings.Repeat(",", TrafficMaxLen-9)
	if _, _, err := ParseTrafficLenient(counts); class(err) != TooMany {
		t.Fatal(err)
	}
	parts := strings.Repeat(";", TrafficMaxLen)
	tr, skipped, err := ParseTrafficLenient(parts)
	if err != nil || skipped != TrafficMaxLen+1 || len(tr.Accepted) != 0 {
		t.Fatalf("%v %d", err, skipped)
	}
}

func randomTime(r *rand.Rand) time.Time {
	span := Latest.Unix() - Earliest.Unix()
	t := time.Unix(Earliest.Unix()+r.Int64N(span), 0).UTC()
	if r.IntN(2) == 0 {
		t = t.Add(time.Duration(r.IntN(1_000_000_000)))
	}
	return t
}

func TestEveryValueWithinTheCapsRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		rev := r.Uint64()
		if got, err := ParseRevisionReport(FormatRevisionReport(rev)); err != nil || got != rev {
			t.Fatalf("revision %d: %d %v", rev, got, err)
		}
		n := Nudge{Revision: r.Uint64(), Attempt: r.Uint32(), At: time.Unix(r.Int64N(maxUnixSeconds+1), 0).UTC()}
		if got, err := ParseNudge(n.String()); err != nil || got != n {
			t.Fatalf("nudge %v: %v %v", n, got, err)
		}
		seen := LastSeen{}
		for range r.IntN(LastSeenMaxEntries + 1) {
			seen[r.Uint64()] = randomTime(r)
		}
		text := seen.String()
		got, err := ParseLastSeen(text)
		if err != nil || len(text) > LastSeenMaxLen || !equalSeen(got, seen) {
			t.Fatalf("last-seen %.80q: %v", text, err)
		}
		tr := Traffic{Accepted: map[uint64]uint64{}, Retired: map[uint64]uint64{}}
		for range r.IntN(TrafficMaxCounts + 1) {
			tr.Accepted[r.Uint64()] = r.Uint64()
		}
		for range r.IntN(TrafficMaxCounts + 1) {
			tr.Retired[r.Uint64()] = r.Uint64()
		}
		if r.IntN(2) == 0 {
			var b [16]byte
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			tr.Client = netip.AddrFrom16(b)
		}
		text = tr.String()
		back, err := ParseTraffic(text)
		if err != nil || len(text) > TrafficMaxLen || !reflect.DeepEqual(back, tr) {
			t.Fatalf("traffic %.80q: %v", text, err)
		}
		if lenient, skipped, err := ParseTrafficLenient(text); err != nil || skipped != 0 || !reflect.DeepEqual(lenient, tr) {
			t.Fatalf("lenient traffic %.80q: %v", text, err)
		}
	}
}

func equalSeen(a, b LastSeen) bool {
	if len(a) != len(b) {
		return false
	}
	for v, t := range a {
		if !t.Equal(b[v]) {
			return false
		}
	}
	return true
}

// FuzzEveryReadingReadsOrRefuses runs every reading over arbitrary text:
// each returns a value or an error, never panics; a value read strictly
// writes back to text that reads as the same value; a value read leniently
// writes text the strict reading accepts; the lenient readings refuse only
// what is over a cap; an error's text stays short. Its seeds run in every
// `go test`; `go test -fuzz FuzzEveryReading ./wire` explores further.
func FuzzEveryReadingReadsOrRefuses(f *testing.F) {
	for _, seed := range []string{"", "7", "007", "7/2/1772359200", "3=2026-03-01T10:14:03Z,4=2026-03-01T10:15:00.25Z",
		" 3 = 2026-03-01T10:14:03Z,,x", "accepted=3:1520,4:88;retired=2:5;client=10.0.0.5",
		"accepted=1:2;accepted=1:3;client=::ffff:1.2.3.4;x-y=z", ";;;", "client=fe80::1%eth0",
		"9999-12-31T23:59:59.9999999999+23:59", "\x00\xff,=;:/"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		var errs []error
		if r, err := ParseRevisionReport(text); err == nil {
			if back, err := ParseRevisionReport(FormatRevisionReport(r)); err != nil || back != r {
				t.Fatalf("revision report %q", text)
			}
		} else {
			errs = append(errs, err)
		}
		if n, err := ParseNudge(text); err == nil {
			if back, err := ParseNudge(n.String()); err != nil || back != n {
				t.Fatalf("nudge %q", text)
			}
		} else {
			errs = append(errs, err)
		}
		if s, err := ParseLastSeen(text); err == nil {
			if back, err := ParseLastSeen(s.String()); err != nil || !equalSeen(back, s) {
				t.Fatalf("last-seen %q", text)
			}
		} else {
			errs = append(errs, err)
		}
		if tr, err := ParseTraffic(text); err == nil {
			if back, err := ParseTraffic(tr.String()); err != nil || !reflect.DeepEqual(back, tr) {
				t.Fatalf("traffic %q", text)
			}
		} else {
			errs = append(errs, err)
		}
		if s, _, err := ParseLastSeenLenient(text); err == nil {
			if back, err := ParseLastSeen(s.String()); err != nil || !equalSeen(back, s) {
				t.Fatalf("lenient last-seen %q", text)
			}
		} else if c := class(err); c != TooLong && c != TooMany {
			t.Fatalf("lenient last-seen refused %q: %v", text, err)
		}
		if tr, _, err := ParseTrafficLenient(text); err == nil {
			if back, err := ParseTraffic(tr.String()); err != nil || !reflect.DeepEqual(back, tr) {
				t.Fatalf("lenient traffic %q: %v", text, err)
			}
		} else if c := class(err); c != TooLong && c != TooMany {
			t.Fatalf("lenient traffic refused %q: %v", text, err)
		}
		for _, err := range errs {
			if len(err.Error()) > ExcerptChars*4+200 {
				t.Fatalf("error too long: %q", err.Error())
			}
		}
	})
}
