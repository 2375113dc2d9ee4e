package keyrotor

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/keyrotor/keyrotor/go/wire"
)

// Presenter hands out the current key of a hot-reloaded presenter (or
// combined) Secret. It is safe for concurrent use.
type Presenter struct {
	e    *engine
	snap atomic.Pointer[Snapshot]
}

// OpenPresenter loads dir (which must serve the presenter role), starts
// polling it, and reports the loaded revision through the handshake
// directory. Only this first load can fail; later failed reloads keep the
// last good key.
func OpenPresenter(dir string, opts Options) (*Presenter, error) {
	opts.Traffic = false
	p := &Presenter{}
	e, err := startEngine(dir, wire.RolePresenter, opts, p.snap.Store, nil)
	if err != nil {
		return nil, err
	}
	p.e = e
	return p, nil
}

// Key is the key to send now.
func (p *Presenter) Key() SecretKey { return p.snap.Load().key }

// Current is the key to send now and its version.
func (p *Presenter) Current() (version uint64, key SecretKey) {
	s := p.snap.Load()
	return s.current, s.key
}

// Presented is what a presenter sends: the version, its key and the user
// name the key belongs to ("" when the version has none), all from one
// snapshot, so a key never goes out with another version's user name.
// Formatting it shows the version and user name, never the key.
type Presented struct {
	Version  uint64
	Key      SecretKey
	Username string
}

func (p Presented) String() string {
	return fmt.Sprintf("keyrotor.Presented{version: %d, username: %s}", p.Version, showUsername(p.Username))
}

// Format prints String for every verb, so no verb reaches the key.
func (p Presented) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(p.String())) }

// Presented is the version, key and user name to send now, from one
// snapshot (asking for them one by one could straddle a reload).
func (p *Presenter) Presented() Presented {
	s := p.snap.Load()
	return Presented{Version: s.current, Key: s.key, Username: s.username}
}

// Username is the user name of the current version; ok is false when it
// has none. Not secret: fine to log. To send it with the key, take both
// from Presented.
func (p *Presenter) Username() (name string, ok bool) { return p.snap.Load().Username() }

// Snapshot is the snapshot the presenter uses now.
func (p *Presenter) Snapshot() *Snapshot { return p.snap.Load() }

// Refresh is one poll, done at once (see Verifier.Refresh).
func (p *Presenter) Refresh() (bool, error) { return p.e.refresh(time.Now()) }

// Close stops polling. The presenter keeps its last key.
func (p *Presenter) Close() error { return p.e.close() }

func (p *Presenter) String() string {
	return fmt.Sprintf("keyrotor.Presenter{dir: %s, snapshot: %s}", p.e.dir, p.Snapshot())
}

// Format prints String for every verb, so no verb reaches the key.
func (p *Presenter) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(p.String())) }
