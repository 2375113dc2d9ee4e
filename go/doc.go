// Package keyrotor lets a Go process use a key that keyrotor rotates, and
// confirm what it loaded.
//
// A verifier (a server) opens the mounted verifier Secret with OpenVerifier
// and checks presented keys, directly or through Verifier.Middleware; a
// presenter (a client) opens the presenter Secret with OpenPresenter and
// sends Presenter.Key, directly or through Presenter.Transport. Both read the
// directory as docs/wire.md specifies (one generation at a time, through
// kubelet's ..data link), keep the keys in memory, poll ..data about once a
// second in a background goroutine and switch to a new generation
// atomically: there is no moment at which nothing is accepted, and a failed
// reload keeps the last good snapshot.
//
// After every load the process switched to, the library writes the revision
// it uses into the handshake directory (Options.HandshakeDir, or
// KEYROTOR_HANDSHAKE_DIR), where `keyrotor reporter --handshake` picks it up:
// keyrotor's confirmation then means "the process loaded it", not "the
// volume holds it". In Traffic mode a verifier also writes when it last saw
// each version presented.
//
// Key material never appears in errors, logs or formatted values: SecretKey
// redacts itself for every fmt verb, JSON, text and slog; errors name the
// file and the reason, never its content; a presented value is never logged.
package keyrotor
