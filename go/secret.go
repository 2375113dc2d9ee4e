package keyrotor

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

// redacted is what a SecretKey shows of itself, everywhere.
const redacted = "[redacted key]"

// SecretKey is key material. It redacts itself for every fmt verb, in JSON,
// as text and in slog; read it only with Expose, where the key goes on the
// wire. The bytes sit behind a pointer, so a struct that holds a SecretKey
// in an unexported field prints an address, not the key.
//
// Go's garbage collector may copy memory and Expose returns a string, so
// unlike the Rust library this type cannot promise to wipe the key.
type SecretKey struct{ k *secret }

type secret struct{ b []byte }

// Expose returns the key itself ("" for the zero SecretKey).
func (k SecretKey) Expose() string {
	if k.k == nil {
		return ""
	}
	return string(k.k.b)
}

// IsZero says whether k holds no key.
func (k SecretKey) IsZero() bool { return k.k == nil }

// Equal compares two keys in constant time (for keys of equal length).
func (k SecretKey) Equal(o SecretKey) bool {
	if k.k == nil || o.k == nil {
		return k.k == o.k
	}
	return subtle.ConstantTimeCompare(k.k.b, o.k.b) == 1
}

func (k SecretKey) String() string   { return redacted }
func (k SecretKey) GoString() string { return "keyrotor.SecretKey{" + redacted + "}" }

// Format prints the redaction for every verb (%s, %q, %x, %v, %#v, ...).
func (k SecretKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON writes the redaction, never the key.
func (k SecretKey) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText writes the redaction, never the key.
func (k SecretKey) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue makes slog print the redaction.
func (k SecretKey) LogValue() slog.Value { return slog.StringValue(redacted) }
