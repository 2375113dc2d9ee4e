package keyrotor

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/keyrotor/keyrotor/go/wire"
)

// RetiredMemory is how many retired versions a Verifier remembers, to tell
// a client that missed a rotation from one with a wrong key.
const RetiredMemory = 8

// Outcome is what a presented key is.
type Outcome int

const (
	// Unknown: not the key of any version this verifier knows (or not a
	// key at all).
	Unknown Outcome = iota
	// Accepted: the key of an accepted version; let the request through.
	Accepted
	// Retired: the key of a version this process saw accepted and that is
	// no longer; never accepted.
	Retired
)

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Retired:
		return "retired"
	default:
		return "unknown"
	}
}

// Result is the outcome of a check and the version it names (zero for
// Unknown).
type Result struct {
	Outcome Outcome
	Version uint64
}

// Verifier checks presented keys against a hot-reloaded verifier (or
// combined) Secret. It is safe for concurrent use.
type Verifier struct {
	e     *engine
	state atomic.Pointer[verifierState]
	usage *usage // nil unless Traffic mode
}

// verifierState is swapped as one pointer: a check sees one generation's
// accepted digests and the retired ones that go with it, never nothing.
type verifierState struct {
	snap    *Snapshot
	retired *digestSet
}

// OpenVerifier loads dir (which must serve the verifier role), starts
// polling it, and reports the loaded revision through the handshake
// directory. Only this first load can fail; later failed reloads keep the
// last good snapshot.
func OpenVerifier(dir string, opts Options) (*Verifier, error) {
	v := &Verifier{}
	if opts.Traffic {
		v.usage = newUsage()
	}
	e, err := startEngine(dir, wire.RoleVerifier, opts, v.publish, v.usage)
	if err != nil {
		return nil, err
	}
	v.e = e
	return v, nil
}

// publish switches to snap: versions that left accepted become retired
// (their digests remembered, never accepted), versions accepted again stop
// being retired.
func (v *Verifier) publish(snap *Snapshot) {
	retired := &digestSet{}
	if old := v.state.Load(); old != nil {
		for i, ver := range old.retired.versions {
			if !slices.Contains(snap.accepted, ver) {
				retired.add(ver, old.retired.sums[i])
			}
		}
		for i, ver := range old.snap.digests.versions {
			if !slices.Contains(snap.accepted, ver) && !slices.Contains(retired.versions, ver) {
				retired.add(ver, old.snap.digests.sums[i])
			}
		}
		retired = newestRetired(retired)
	}
	v.state.Store(&verifierState{snap: snap, retired: retired})
	if v.usage != nil {
		v.usage.retain(snap.accepted)
	}
}

// newestRetired keeps the RetiredMemory highest versions.
func newestRetired(d *digestSet) *digestSet {
	if len(d.versions) <= RetiredMemory {
		return d
	}
	order := make([]int, len(d.versions))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		switch {
		case d.versions[a] > d.versions[b]:
			return -1
		case d.versions[a] < d.versions[b]:
			return 1
		}
		return 0
	})
	kept := &digestSet{}
	for _, i := range order[:RetiredMemory] {
		kept.add(d.versions[i], d.sums[i])
	}
	return kept
}

// Check says whether presented is an accepted version's key, a retired
// version's, or unknown. A value that cannot be a key (shorter than 16 or
// longer than 1024 bytes, or not printable ASCII without spaces) is refused
// before hashing. Otherwise its SHA-256 is compared with every accepted and
// remembered retired digest in constant time. In Traffic mode an accepted
// check records the version as seen now.
func (v *Verifier) Check(presented string) Result {
	if keyShape(presented) != "" {
		return Result{Outcome: Unknown}
	}
	sum := sha256.Sum256([]byte(presented))
	st := v.state.Load()
	accepted, isAccepted := st.snap.digests.find(&sum)
	retired, isRetired := st.retired.find(&sum)
	switch {
	case isAccepted:
		if v.usage != nil {
			v.usage.record(accepted, time.Now())
		}
		return Result{Outcome: Accepted, Version: accepted}
	case isRetired:
		return Result{Outcome: Retired, Version: retired}
	}
	return Result{Outcome: Unknown}
}

// Verify is Check reduced to the accepted version, if any.
func (v *Verifier) Verify(presented string) (version uint64, ok bool) {
	r := v.Check(presented)
	return r.Version, r.Outcome == Accepted
}

// Snapshot is the snapshot the verifier uses now.
func (v *Verifier) Snapshot() *Snapshot { return v.state.Load().snap }

// RetiredVersions are the versions this process saw accepted and then
// retired (at most RetiredMemory), ascending.
func (v *Verifier) RetiredVersions() []uint64 {
	versions := slices.Clone(v.state.Load().retired.versions)
	slices.Sort(versions)
	return versions
}

// Refresh is one poll, done at once: it reloads when ..data changed and
// writes the handshake files that are due. It says whether a new snapshot
// is in use; on error the previous one still is.
func (v *Verifier) Refresh() (bool, error) { return v.e.refresh(time.Now()) }

// Close stops polling. The verifier keeps answering with its last snapshot.
func (v *Verifier) Close() error { return v.e.close() }

func (v *Verifier) String() string {
	return fmt.Sprintf("keyrotor.Verifier{dir: %s, snapshot: %s, retired: %v}", v.e.dir, v.Snapshot(), v.RetiredVersions())
}

// Format prints String for every verb, so no verb reaches a digest.
func (v *Verifier) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(v.String())) }
