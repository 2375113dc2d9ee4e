package keyrotor

import (
	"sort"
	"sync"
	"time"

	"github.com/keyrotor/keyrotor/go/wire"
)

// usage is when each accepted version was last presented to one verifier,
// to the second (Traffic mode). Recording costs one short lock.
type usage struct {
	mu   sync.Mutex
	seen map[uint64]int64 // version → unix seconds
}

func newUsage() *usage { return &usage{seen: map[uint64]int64{}} }

func (u *usage) record(version uint64, now time.Time) {
	s := now.Round(time.Second).Unix()
	u.mu.Lock()
	if s > u.seen[version] {
		u.seen[version] = s
	}
	u.mu.Unlock()
}

// retain forgets versions that left accepted.
func (u *usage) retain(accepted []uint64) {
	keep := make(map[uint64]bool, len(accepted))
	for _, v := range accepted {
		keep[v] = true
	}
	u.mu.Lock()
	for v := range u.seen {
		if !keep[v] {
			delete(u.seen, v)
		}
	}
	u.mu.Unlock()
}

// mergeInto keeps, per version, the latest time of into and u.
func (u *usage) mergeInto(into map[uint64]int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for v, s := range u.seen {
		if s > into[v] {
			into[v] = s
		}
	}
}

// lastSeenValue is the last-seen value of seen, within its caps: beyond
// LastSeenMaxEntries versions the oldest (lowest) versions are dropped.
func lastSeenValue(seen map[uint64]int64) string {
	versions := make([]uint64, 0, len(seen))
	for v := range seen {
		versions = append(versions, v)
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] > versions[j] })
	if len(versions) > wire.LastSeenMaxEntries {
		versions = versions[:wire.LastSeenMaxEntries]
	}
	value := make(wire.LastSeen, len(versions))
	for _, v := range versions {
		value[v] = time.Unix(seen[v], 0).UTC()
	}
	return value.String()
}
