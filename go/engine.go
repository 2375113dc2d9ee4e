package keyrotor

import (
	"log/slog"
	"path/filepath"
	"sync"
	"time"
)

// engine keeps one directory's latest good snapshot: it loads it, polls
// ..data, reloads on change, hands each new snapshot to its owner (publish)
// and only then tells the handshake directory what the process uses.
type engine struct {
	dir     string
	role    string // the role the owner needs: "verifier" or "presenter"
	opts    Options
	publish func(*Snapshot) // makes a snapshot the one the process uses
	hs      *handshake      // nil without a handshake directory
	usage   *usage          // nil unless Traffic mode

	mu      sync.Mutex // serializes loads, publishes and handshake writes
	current *Snapshot
	failure string // the reload error last logged; "" when healthy

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func startEngine(dir, role string, opts Options, publish func(*Snapshot), u *usage) (*engine, error) {
	opts = opts.withDefaults()
	e := &engine{dir: dir, role: role, opts: opts, publish: publish, usage: u}
	if opts.HandshakeDir != "" {
		e.hs = handshakeIn(opts.HandshakeDir)
		// Before the first load: a file left by a process that stopped
		// speaks for that process only.
		if m, err := loadMeta(dir); err == nil {
			e.hs.forget(e.log(), m.rotation, m.roles, u != nil)
		}
	}
	snap, err := e.load()
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.switchTo(snap)
	e.mu.Unlock()
	e.log().Info("keyrotor: loaded", e.describe(snap)...)
	if opts.PollInterval > 0 {
		e.stop, e.done = make(chan struct{}), make(chan struct{})
		go e.run(opts.PollInterval)
	}
	return e, nil
}

func (e *engine) log() *slog.Logger { return e.opts.Logger }

// load reads the directory and checks it serves the owner's role.
func (e *engine) load() (*Snapshot, error) {
	snap, err := LoadSnapshot(e.dir)
	if err != nil {
		return nil, err
	}
	if !snap.HasRole(e.role) {
		return nil, &VolumeError{Class: Malformed, File: filepath.Join(e.dir, roleFile), Reason: "does not name the " + e.role + " role"}
	}
	return snap, nil
}

// switchTo publishes snap, then reports it: the handshake never claims a
// revision before the process uses it. Called with e.mu held.
func (e *engine) switchTo(snap *Snapshot) {
	e.current = snap
	e.publish(snap)
	if e.hs != nil {
		e.hs.claim(e.log(), e, snap)
		if e.usage != nil {
			e.hs.watchUsage(e, snap.rotation, e.usage)
		}
	}
}

// refresh is one poll: reload when the generation changed (one readlink
// when it did not), retry handshake writes that failed, write last-seen
// when due. A failed reload keeps the current snapshot.
func (e *engine) refresh(now time.Time) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	changed, err := e.reload()
	e.note(err)
	if e.hs != nil {
		e.hs.retry(e.log())
		if e.usage != nil {
			e.hs.flushLastSeen(e.log(), e.current.rotation, now, e.opts.LastSeenInterval)
		}
	}
	return changed, err
}

func (e *engine) reload() (bool, error) {
	gen, err := generationOf(e.dir)
	if err != nil {
		return false, err
	}
	if gen.ok && gen == e.current.generation {
		return false, nil
	}
	snap, err := e.load()
	if err != nil {
		return false, err
	}
	if snap.generation.ok && snap.generation == e.current.generation ||
		!snap.generation.ok && sameContent(snap, e.current) {
		return false, nil
	}
	e.switchTo(snap)
	e.log().Info("keyrotor: loaded", e.describe(snap)...)
	return true, nil
}

// note logs a failed reload once per distinct error, and the recovery.
func (e *engine) note(err error) {
	switch {
	case err == nil && e.failure != "":
		e.failure = ""
		e.log().Info("keyrotor: the directory reads again", "dir", e.dir)
	case err != nil && err.Error() != e.failure:
		e.failure = err.Error()
		e.log().Warn("keyrotor: reload failed; serving the last good snapshot",
			"dir", e.dir, "class", string(classOrIO(err)), "error", err.Error())
	}
}

func classOrIO(err error) ErrorClass {
	if c := ClassOf(err); c != "" {
		return c
	}
	return IO
}

func (e *engine) describe(s *Snapshot) []any {
	attrs := []any{"dir", e.dir, "rotation", s.rotation, "roles", s.roles, "revision", s.revision}
	if s.HasRole("verifier") {
		attrs = append(attrs, "accepted", s.accepted)
	}
	if s.hasCurrent {
		attrs = append(attrs, "current", s.current)
	}
	if s.username != "" {
		attrs = append(attrs, "username", s.username)
	}
	if s.generation.ok {
		attrs = append(attrs, "generation", s.generation.target)
	}
	return attrs
}

func (e *engine) run(every time.Duration) {
	defer close(e.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case now := <-t.C:
			_, _ = e.refresh(now)
		}
	}
}

// close stops polling and withdraws this engine's handshake claims (files
// it shares with other open stores are rewritten for those).
func (e *engine) close() error {
	e.closeOnce.Do(func() {
		if e.stop != nil {
			close(e.stop)
			<-e.done
		}
		if e.hs != nil {
			e.mu.Lock()
			e.hs.release(e.log(), e)
			e.mu.Unlock()
		}
	})
	return nil
}
