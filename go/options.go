package keyrotor

import (
	"log/slog"
	"os"
	"time"
)

// HandshakeEnv names the environment variable that gives the handshake
// directory when Options.HandshakeDir is empty.
const HandshakeEnv = "KEYROTOR_HANDSHAKE_DIR"

// Defaults of Options.
const (
	DefaultPollInterval     = time.Second
	DefaultLastSeenInterval = 5 * time.Second
)

// Options tune a Verifier or Presenter. The zero value is right for most
// apps: poll every second, handshake through KEYROTOR_HANDSHAKE_DIR when it
// is set, no Traffic mode, log with slog.Default().
type Options struct {
	// HandshakeDir is the directory shared with the `keyrotor reporter
	// --handshake` sidecar (by convention /run/keyrotor). Empty: the
	// KEYROTOR_HANDSHAKE_DIR environment variable; both empty: no handshake.
	HandshakeDir string
	// PollInterval is how often ..data is checked for a new generation, in
	// a background goroutine that never keeps the process alive. Zero: one
	// second. Negative: no goroutine; call Refresh yourself.
	PollInterval time.Duration
	// Traffic (verifiers only) records when each version was last
	// presented and writes <rotation>.last-seen into the handshake
	// directory, for keyrotor's Traffic mode.
	Traffic bool
	// LastSeenInterval bounds last-seen writes to one per interval. Zero:
	// five seconds.
	LastSeenInterval time.Duration
	// Logger receives reload and handshake failures (by class and file,
	// never content). Nil: slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.HandshakeDir == "" {
		o.HandshakeDir = os.Getenv(HandshakeEnv)
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.LastSeenInterval <= 0 {
		o.LastSeenInterval = DefaultLastSeenInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
