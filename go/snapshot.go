package keyrotor

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/keyrotor/keyrotor/go/wire"
)

// The files of a projected Secret (docs/wire.md#files).
const (
	rotationFile = "rotation"
	roleFile     = "role"
	revisionFile = "revision"
	acceptedFile = "accepted"
	versionFile  = "version"
	keyFile      = "key"
	usernameFile = "username" // optional, beside keyFile
)

// Keys are 16 to 1024 bytes of printable ASCII without spaces.
const (
	MinKeyLen = 16
	MaxKeyLen = 1024
)

// MaxUsernameLen is the longest user name: 1 to 63 bytes of printable ASCII
// without spaces.
const MaxUsernameLen = 63

// meta is what every projected Secret says about itself.
type meta struct {
	rotation string
	roles    []string
	revision uint64
}

// Snapshot is one loaded generation of a projected-Secret directory. It is
// immutable. Formatting it shows versions, revisions and the user name (not
// secret), never a key or a digest.
type Snapshot struct {
	meta
	accepted   []uint64   // ascending
	digests    *digestSet // of the accepted versions
	current    uint64
	hasCurrent bool
	key        SecretKey
	username   string // "" when the current version has none
	generation generation
}

// Rotation is the ApiKeyRotation's name.
func (s *Snapshot) Rotation() string { return s.rotation }

// Roles are the roles the Secret serves, in file order.
func (s *Snapshot) Roles() []string { return slices.Clone(s.roles) }

// HasRole says whether the Secret serves role ("verifier", "presenter").
func (s *Snapshot) HasRole(role string) bool { return slices.Contains(s.roles, role) }

// Revision is the projected Secret's revision.
func (s *Snapshot) Revision() uint64 { return s.revision }

// Accepted are the versions a verifier accepts, ascending (none unless the
// Secret serves the verifier role).
func (s *Snapshot) Accepted() []uint64 { return slices.Clone(s.accepted) }

// Current is the presenter's version and key; ok is false unless the Secret
// serves the presenter role.
func (s *Snapshot) Current() (version uint64, key SecretKey, ok bool) {
	return s.current, s.key, s.hasCurrent
}

// Username is the user name of the presenter's current version, read with
// its key; ok is false when the version has none (no username file) or the
// Secret does not serve the presenter role. Not secret: fine to log.
func (s *Snapshot) Username() (name string, ok bool) {
	return s.username, s.username != ""
}

// Generation is where ..data pointed when the directory was read; ok is
// false for a plain directory.
func (s *Snapshot) Generation() (target string, ok bool) {
	return s.generation.target, s.generation.ok
}

func (s *Snapshot) String() string {
	current := "none"
	if s.hasCurrent {
		current = strconv.FormatUint(s.current, 10)
	}
	gen := "plain"
	if s.generation.ok {
		gen = s.generation.target
	}
	return fmt.Sprintf("keyrotor.Snapshot{rotation: %s, roles: %v, revision: %d, accepted: %v, current: %s, username: %s, generation: %s}",
		s.rotation, s.roles, s.revision, s.accepted, current, showUsername(s.username), gen)
}

// showUsername quotes a user name, or says there is none.
func showUsername(name string) string {
	if name == "" {
		return "none"
	}
	return strconv.Quote(name)
}

// Format prints String for every verb, so no verb reaches a digest.
func (s *Snapshot) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LoadSnapshot reads a projected-Secret directory once, consistently: every
// file of one generation, or an error of class Missing, Malformed, IO or
// Unstable.
func LoadSnapshot(dir string) (*Snapshot, error) {
	snap, gen, err := readConsistent(dir, readSnapshot)
	if err != nil {
		return nil, err
	}
	snap.generation = gen
	return snap, nil
}

// loadMeta reads only the metadata files (never a key file).
func loadMeta(dir string) (meta, error) {
	m, _, err := readConsistent(dir, readMeta)
	return m, err
}

func readMeta(f files) (meta, error) {
	rotation, err := f.required(rotationFile)
	if err != nil {
		return meta{}, err
	}
	if rotation == "" {
		return meta{}, f.malformed(rotationFile, "is empty")
	}
	roleText, err := f.required(roleFile)
	if err != nil {
		return meta{}, err
	}
	roles, ok := parseRoles(roleText)
	if !ok {
		return meta{}, f.malformed(roleFile, "is not a comma-separated list of role names")
	}
	if len(roles) == 0 {
		return meta{}, f.malformed(roleFile, "names no role")
	}
	revision, err := number(f, revisionFile)
	if err != nil {
		return meta{}, err
	}
	return meta{rotation: rotation, roles: roles, revision: revision}, nil
}

// parseRoles reads a role list: items of printable ASCII without spaces or
// commas, whitespace around an item and empty items ignored.
func parseRoles(text string) ([]string, bool) {
	var roles []string
	for _, item := range strings.Split(text, ",") {
		item = strings.Trim(item, asciiSpace)
		if item == "" {
			continue
		}
		for _, c := range []byte(item) {
			if c < 0x21 || c > 0x7e {
				return nil, false
			}
		}
		roles = append(roles, item)
	}
	return roles, true
}

func readSnapshot(f files) (*Snapshot, error) {
	m, err := readMeta(f)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{meta: m, digests: &digestSet{}}
	if s.HasRole(wire.RoleVerifier) {
		if s.accepted, err = readAccepted(f); err != nil {
			return nil, err
		}
		for _, v := range s.accepted {
			sum, err := acceptedDigest(f, v)
			if err != nil {
				return nil, err
			}
			s.digests.add(v, sum)
		}
	}
	if s.HasRole(wire.RolePresenter) {
		if s.current, err = number(f, versionFile); err != nil {
			return nil, err
		}
		key, err := readKey(f, keyFile)
		if err != nil {
			return nil, err
		}
		if key.IsZero() {
			return nil, f.missing(keyFile)
		}
		s.key, s.hasCurrent = key, true
		if s.username, err = readUsername(f); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// readUsername reads the optional username file: "" when it does not exist;
// when it does, it must be a user name (an empty file is not "none").
func readUsername(f files) (string, error) {
	name, ok, err := f.text(usernameFile)
	if err != nil || !ok {
		return "", err
	}
	if len(name) == 0 || len(name) > MaxUsernameLen {
		return "", f.malformed(usernameFile, "is not 1 to 63 bytes of printable ASCII without spaces")
	}
	for i := 0; i < len(name); i++ {
		if name[i] < 0x21 || name[i] > 0x7e {
			return "", f.malformed(usernameFile, "is not 1 to 63 bytes of printable ASCII without spaces")
		}
	}
	return name, nil
}

// number reads a required file holding one number.
func number(f files, name string) (uint64, error) {
	text, err := f.required(name)
	if err != nil {
		return 0, err
	}
	n, ok := wire.ParseNumber(text)
	if !ok {
		return 0, f.malformed(name, "is not a number")
	}
	return n, nil
}

func readAccepted(f files) ([]uint64, error) {
	text, err := f.required(acceptedFile)
	if err != nil {
		return nil, err
	}
	var versions []uint64
	for _, item := range strings.Split(text, ",") {
		item = strings.Trim(item, asciiSpace)
		if item == "" {
			continue
		}
		v, ok := wire.ParseNumber(item)
		if !ok {
			return nil, f.malformed(acceptedFile, "is not a comma-separated list of versions")
		}
		versions = append(versions, v)
	}
	slices.Sort(versions)
	return slices.Compact(versions), nil
}

// acceptedDigest is version v's digest: from v<N>.sha256 when it exists,
// else the SHA-256 of the plain key in v<N>.key.
func acceptedDigest(f files, v uint64) ([32]byte, error) {
	var sum [32]byte
	name := "v" + strconv.FormatUint(v, 10) + ".sha256"
	text, ok, err := f.text(name)
	if err != nil {
		return sum, err
	}
	if ok {
		if len(text) != 2*len(sum) {
			return sum, f.malformed(name, "is not 64 hex digits")
		}
		if _, err := hex.Decode(sum[:], []byte(text)); err != nil {
			return sum, f.malformed(name, "is not 64 hex digits")
		}
		return sum, nil
	}
	plain := "v" + strconv.FormatUint(v, 10) + ".key"
	key, err := readKey(f, plain)
	if err != nil {
		return sum, err
	}
	if key.IsZero() {
		return sum, &VolumeError{Class: Missing, File: f.path(name), Reason: "is missing, and so is " + plain}
	}
	sum = sha256.Sum256(key.k.b)
	clear(key.k.b) // only the digest is kept
	return sum, nil
}

// readKey reads a key file: one trailing LF is not part of the key; the
// rest must be a key (16 to 1024 bytes of printable ASCII without spaces).
// The zero SecretKey when the file does not exist.
func readKey(f files, name string) (SecretKey, error) {
	b, err := f.read(name, maxKeyFile)
	if err != nil || b == nil {
		return SecretKey{}, err
	}
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if reason := keyShape(b); reason != "" {
		clear(b)
		return SecretKey{}, f.malformed(name, reason)
	}
	return SecretKey{&secret{b}}, nil
}

// keyShape says why b cannot be a key, or "" when it can.
func keyShape[T string | []byte](b T) string {
	if len(b) < MinKeyLen {
		return "is shorter than 16 bytes"
	}
	if len(b) > MaxKeyLen {
		return "is longer than 1024 bytes"
	}
	for i := 0; i < len(b); i++ {
		if b[i] < 0x21 || b[i] > 0x7e {
			return "is not printable ASCII without spaces"
		}
	}
	return ""
}

// digestSet holds SHA-256 digests of keys by version. It sits behind a
// pointer so that formatting a value that holds one prints an address.
type digestSet struct {
	versions []uint64
	sums     [][32]byte
}

func (d *digestSet) add(v uint64, sum [32]byte) {
	d.versions = append(d.versions, v)
	d.sums = append(d.sums, sum)
}

// find compares sum with every digest in constant time, without stopping at
// a match, so timing tells neither which bytes matched nor which version.
func (d *digestSet) find(sum *[32]byte) (uint64, bool) {
	var found uint64
	hit := 0
	for i := range d.sums {
		eq := subtle.ConstantTimeCompare(sum[:], d.sums[i][:])
		mask := -uint64(eq) // all ones on a match, else zero: no branch
		found = found&^mask | d.versions[i]&mask
		hit |= eq
	}
	return found, hit == 1
}

func (d *digestSet) equal(o *digestSet) bool {
	if !slices.Equal(d.versions, o.versions) || len(d.sums) != len(o.sums) {
		return false
	}
	for i := range d.sums {
		if d.sums[i] != o.sums[i] {
			return false
		}
	}
	return true
}

// sameContent says whether two snapshots of a plain directory hold the same
// content (a plain directory has no change token).
func sameContent(a, b *Snapshot) bool {
	return a.rotation == b.rotation && slices.Equal(a.roles, b.roles) && a.revision == b.revision &&
		a.generation == b.generation && a.digests.equal(b.digests) &&
		a.hasCurrent == b.hasCurrent && a.current == b.current && a.key.Equal(b.key) &&
		a.username == b.username
}
