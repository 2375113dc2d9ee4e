package wire

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// TrafficName names traffic in errors.
const TrafficName = "traffic"

// Caps of a traffic value: any value within TrafficMaxCounts per list
// formats within TrafficMaxLen bytes.
const (
	TrafficMaxLen    = 65536
	TrafficMaxCounts = 512
)

// Traffic is what a verifier endpoint checked since its process started:
// presentations per version it accepted, and of versions it once accepted
// and no longer does; Client is who last presented a retired one (the zero
// Addr when unknown).
type Traffic struct {
	Accepted map[uint64]uint64
	Retired  map[uint64]uint64
	Client   netip.Addr
}

// ParseTraffic reads a traffic value strictly. Names are case-sensitive;
// each known part and each version in a list at most once; parts a newer
// writer may add are checked against their grammar, then ignored.
func ParseTraffic(text string) (Traffic, error) {
	t, f := strictTraffic(text)
	if f != nil {
		return Traffic{}, f.in(TrafficName, text)
	}
	return t, nil
}

func strictTraffic(text string) (Traffic, *fault) {
	if f := checkLen(text, TrafficMaxLen); f != nil {
		return Traffic{}, f
	}
	t := Traffic{Accepted: map[uint64]uint64{}, Retired: map[uint64]uint64{}}
	var seenAccepted, seenRetired, seenClient bool
	for _, part := range strings.Split(text, ";") {
		name, value, found := strings.Cut(part, "=")
		if !found {
			return Traffic{}, syntax("a part is not <name>=<value>")
		}
		switch name {
		case "accepted", "retired":
			counts, f := strictCounts(value)
			if f != nil {
				return Traffic{}, f
			}
			seen := &seenAccepted
			if name == "retired" {
				seen = &seenRetired
			}
			if *seen {
				return Traffic{}, &fault{Duplicate, "a part appears twice"}
			}
			*seen = true
			if name == "accepted" {
				t.Accepted = counts
			} else {
				t.Retired = counts
			}
		case "client":
			ip, ok := parseIP(value)
			if !ok {
				return Traffic{}, syntax("client is not an IP address")
			}
			if seenClient {
				return Traffic{}, &fault{Duplicate, "client appears twice"}
			}
			seenClient, t.Client = true, ip
		default:
			if f := extension(name, value); f != nil {
				return Traffic{}, f
			}
		}
	}
	return t, nil
}

// ParseTrafficLenient reads what it can, as the operator and the plugin do
// (docs/wire.md#traffic); only a value over the caps is refused.
func ParseTrafficLenient(text string) (Traffic, int, error) {
	if f := checkLen(text, TrafficMaxLen); f != nil {
		return Traffic{}, 0, f.in(TrafficName, text)
	}
	t := Traffic{Accepted: map[uint64]uint64{}, Retired: map[uint64]uint64{}}
	skipped := 0
	for _, part := range strings.Split(text, ";") {
		name, value, found := strings.Cut(part, "=")
		if !found {
			skipped++
			continue
		}
		switch ows(name) {
		case "accepted", "retired":
			counts, f := lenientCounts(value, &skipped)
			if f != nil {
				return Traffic{}, 0, f.in(TrafficName, text)
			}
			if ows(name) == "accepted" {
				t.Accepted = counts
			} else {
				t.Retired = counts
			}
		case "client":
			ip, ok := parseIP(ows(value))
			if !ok {
				skipped++
			}
			t.Client = ip // the zero Addr clears it
		}
	}
	return t, skipped, nil
}

// parseIP reads an IPv4 or IPv6 address as RFC 3986 writes it in a host:
// no zone, no brackets, no port, no leading zeros.
func parseIP(text string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(text)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip, true
}

// extension checks a part this reader does not know: a name of letters,
// digits and '-', a value of printable ASCII.
func extension(name, value string) *fault {
	if name == "" {
		return syntax("a part's name is empty")
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return syntax("a part's name is not letters, digits and -")
		}
	}
	for _, c := range []byte(value) {
		if c < 0x20 || c > 0x7e {
			return syntax("a part's value is not printable ASCII")
		}
	}
	return nil
}

func strictCounts(list string) (map[uint64]uint64, *fault) {
	items, f := pieces(list, ",", TrafficMaxCounts)
	if f != nil {
		return nil, f
	}
	out := map[uint64]uint64{}
	for _, item := range items {
		vs, ns, found := strings.Cut(item, ":")
		if !found {
			return nil, syntax("a count is not <version>:<count>")
		}
		v, f := decimal(vs, "version")
		if f != nil {
			return nil, f
		}
		n, f := decimal(ns, "count")
		if f != nil {
			return nil, f
		}
		if _, twice := out[v]; twice {
			return nil, &fault{Duplicate, "a version appears twice in a list"}
		}
		out[v] = n
	}
	return out, nil
}

func lenientCounts(list string, skipped *int) (map[uint64]uint64, *fault) {
	items, f := pieces(ows(list), ",", TrafficMaxCounts)
	if f != nil {
		return nil, f
	}
	out := map[uint64]uint64{}
	for _, item := range items {
		vs, ns, found := strings.Cut(item, ":")
		v, fv := decimal(ows(vs), "version")
		n, fn := decimal(ows(ns), "count")
		if !found || fv != nil || fn != nil {
			*skipped++
			continue
		}
		out[v] = n
	}
	return out, nil
}

// String writes `accepted=…;retired=…[;client=…]`, versions ascending,
// IPv6 in RFC 5952 form.
func (t Traffic) String() string {
	var b strings.Builder
	b.WriteString("accepted=")
	writeCounts(&b, t.Accepted)
	b.WriteString(";retired=")
	writeCounts(&b, t.Retired)
	if t.Client.IsValid() {
		b.WriteString(";client=")
		b.WriteString(t.Client.String())
	}
	return b.String()
}

func writeCounts(b *strings.Builder, counts map[uint64]uint64) {
	versions := make([]uint64, 0, len(counts))
	for v := range counts {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	for i, v := range versions {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(v, 10))
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(counts[v], 10))
	}
}
