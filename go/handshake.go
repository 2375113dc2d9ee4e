package keyrotor

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyrotor/keyrotor/go/wire"
)

// handshake is this process's side of one handshake directory
// (docs/wire.md#the-handshake-directory), shared by every Verifier and
// Presenter of the process that uses it: several stores of one rotation and
// role report the lowest revision among them, and last-seen merges every
// Traffic-mode verifier of a rotation.
type handshake struct {
	dir string

	mu         sync.Mutex
	touched    map[string]bool               // files removed at start or written since
	claims     map[string]map[*engine]uint64 // revision file → what each store uses
	usages     map[string]map[*engine]*usage // rotation → Traffic-mode verifiers
	written    map[string]string             // file → content last written
	lastSeenAt map[string]time.Time          // rotation → last last-seen attempt
	failed     map[string]string             // file → write error last logged
}

var handshakes = struct {
	sync.Mutex
	byDir map[string]*handshake
}{byDir: map[string]*handshake{}}

// handshakeIn is the process's handshake for dir.
func handshakeIn(dir string) *handshake {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	handshakes.Lock()
	defer handshakes.Unlock()
	h := handshakes.byDir[dir]
	if h == nil {
		h = &handshake{
			dir:        dir,
			touched:    map[string]bool{},
			claims:     map[string]map[*engine]uint64{},
			usages:     map[string]map[*engine]*usage{},
			written:    map[string]string{},
			lastSeenAt: map[string]time.Time{},
			failed:     map[string]string{},
		}
		handshakes.byDir[dir] = h
	}
	return h
}

// revisionFiles are the files reporting a Secret of rotation serving
// roles: one per role this library knows (a combined Secret: both).
func revisionFiles(rotation string, roles []string) []string {
	var names []string
	for _, role := range roles {
		if role == wire.RoleVerifier || role == wire.RolePresenter {
			names = append(names, wire.HandshakeRevisionFile(rotation, role))
		}
	}
	return names
}

// forget removes, once per process and before the first load, the files
// this process is about to speak for.
func (h *handshake) forget(log *slog.Logger, rotation string, roles []string, lastSeen bool) {
	if !safeRotation(rotation) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	names := revisionFiles(rotation, roles)
	if lastSeen {
		names = append(names, wire.HandshakeLastSeenFile(rotation))
	}
	for _, name := range names {
		h.forgetLocked(log, name)
	}
}

func (h *handshake) forgetLocked(log *slog.Logger, name string) {
	if h.touched[name] {
		return
	}
	h.touched[name] = true
	if err := os.Remove(filepath.Join(h.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		h.logFailure(log, name, err)
	}
}

// claim records that e's process now uses snap, and writes what changed.
func (h *handshake) claim(log *slog.Logger, e *engine, snap *Snapshot) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !safeRotation(snap.rotation) {
		name := snap.rotation + ".*"
		if h.failed[name] == "" {
			h.failed[name] = "unsafe"
			log.Error("keyrotor: the rotation name cannot name a handshake file; nothing is confirmed",
				"dir", h.dir, "class", "io")
		}
		return
	}
	names := revisionFiles(snap.rotation, snap.roles)
	for name, by := range h.claims { // a file e no longer speaks for
		if _, mine := by[e]; mine && !slices.Contains(names, name) {
			delete(by, e)
			h.sync(log, name)
		}
	}
	for _, name := range names {
		h.forgetLocked(log, name)
		if h.claims[name] == nil {
			h.claims[name] = map[*engine]uint64{}
		}
		h.claims[name][e] = snap.revision
		h.sync(log, name)
	}
}

// sync writes a revision file when its content changed (or its last
// write failed): the lowest revision any open store of the process uses.
func (h *handshake) sync(log *slog.Logger, name string) {
	by := h.claims[name]
	if len(by) == 0 {
		return
	}
	lowest := uint64(0)
	first := true
	for _, r := range by {
		if first || r < lowest {
			lowest, first = r, false
		}
	}
	h.write(log, name, wire.FormatRevisionReport(lowest))
}

// retry rewrites every file whose last write failed.
func (h *handshake) retry(log *slog.Logger) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name := range h.claims {
		h.sync(log, name)
	}
}

// watchUsage adds a Traffic-mode verifier's usage to its rotation's
// last-seen (moving it when the rotation's name changed).
func (h *handshake) watchUsage(e *engine, rotation string, u *usage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for r, by := range h.usages {
		if r != rotation {
			delete(by, e)
		}
	}
	if h.usages[rotation] == nil {
		h.usages[rotation] = map[*engine]*usage{}
	}
	h.usages[rotation][e] = u
}

// flushLastSeen writes rotation's last-seen when it changed, at most once
// per every.
func (h *handshake) flushLastSeen(log *slog.Logger, rotation string, now time.Time, every time.Duration) {
	if !safeRotation(rotation) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[uint64]int64{}
	for _, u := range h.usages[rotation] {
		u.mergeInto(seen)
	}
	content := lastSeenValue(seen)
	name := wire.HandshakeLastSeenFile(rotation)
	if content == h.written[name] || now.Sub(h.lastSeenAt[rotation]) < every {
		return
	}
	h.lastSeenAt[rotation] = now
	h.forgetLocked(log, name)
	if content == "" { // nothing seen any more: say nothing rather than ""
		if err := os.Remove(filepath.Join(h.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			h.logFailure(log, name, err)
			return
		}
		h.written[name] = ""
		return
	}
	h.write(log, name, content)
}

// release withdraws e's claims; files other stores still claim are
// rewritten for them, the others stay as e last wrote them.
func (h *handshake) release(log *slog.Logger, e *engine) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, by := range h.claims {
		if _, mine := by[e]; mine {
			delete(by, e)
			h.sync(log, name)
		}
	}
	for _, by := range h.usages {
		delete(by, e)
	}
}

// write replaces name's content atomically (a dot-prefixed temporary file
// renamed over it) unless it already holds content.
func (h *handshake) write(log *slog.Logger, name, content string) {
	if h.written[name] == content {
		return
	}
	if err := writeAtomic(h.dir, name, content); err != nil {
		h.logFailure(log, name, err)
		return
	}
	h.written[name] = content
	h.touched[name] = true
	if h.failed[name] != "" {
		delete(h.failed, name)
		log.Info("keyrotor: handshake file written again", "file", filepath.Join(h.dir, name))
	}
}

// logFailure logs a write error once per file and reason. The process
// keeps serving; keyrotor waits for a confirmation that does not come.
func (h *handshake) logFailure(log *slog.Logger, name string, err error) {
	reason := osReason(err)
	if h.failed[name] == reason {
		return
	}
	h.failed[name] = reason
	log.Warn("keyrotor: cannot write a handshake file; keyrotor waits for this process's confirmation",
		"file", filepath.Join(h.dir, name), "class", string(IO), "error", reason)
}

func writeAtomic(dir, name, content string) error {
	tmp := filepath.Join(dir, tempName(name))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// tempName starts with "." so that the sidecar ignores it.
func tempName(name string) string {
	pid := strconv.Itoa(os.Getpid())
	if tmp := "." + name + ".tmp-" + pid; len(tmp) <= 255 {
		return tmp
	}
	return ".keyrotor.tmp-" + pid
}

// safeRotation says whether a rotation name can be part of a file name in
// the handshake directory.
func safeRotation(rotation string) bool {
	return rotation != "" && !strings.HasPrefix(rotation, ".") && !strings.ContainsAny(rotation, "/\x00") &&
		len(wire.HandshakeRevisionFile(rotation, wire.RolePresenter)) <= 255
}
