package keyrotor

import (
	"context"
	"net/http"
	"strings"
)

// KeySource says where a request carries its key: a header, with an
// optional auth scheme before the key.
type KeySource struct {
	Header string // e.g. "Authorization" or "X-Api-Key"
	Scheme string // e.g. "Bearer"; empty when the header holds the key alone
}

// Bearer is the default source: `Authorization: Bearer <key>`.
var Bearer = KeySource{Header: "Authorization", Scheme: "Bearer"}

// HeaderSource is a header holding the key alone (`X-Api-Key: <key>`).
func HeaderSource(name string) KeySource { return KeySource{Header: name} }

// RefusalHeader tells a refused client why: "missing" (no key),
// "malformed" (the header is repeated, has another scheme, or holds a value
// that cannot be a key), "unknown" or "retired" (a key this server accepted
// once: the client missed a rotation and should reload its key).
const RefusalHeader = "X-Keyrotor-Refusal"

// presented is the key a request carries, or why it carries none. Nothing
// returned here is ever logged.
func (s KeySource) presented(h http.Header) (string, string) {
	values := h.Values(s.Header)
	switch {
	case len(values) == 0:
		return "", "missing"
	case len(values) > 1:
		return "", "malformed"
	}
	value := values[0]
	if s.Scheme != "" {
		n := len(s.Scheme)
		if len(value) <= n || !strings.EqualFold(value[:n], s.Scheme) || value[n] != ' ' {
			return "", "malformed"
		}
		value = value[n+1:]
	}
	value = strings.Trim(value, " \t")
	if keyShape(value) != "" { // empty, too long, not printable ASCII
		return "", "malformed"
	}
	return value, ""
}

// Set puts key into h as this source carries it.
func (s KeySource) Set(h http.Header, key SecretKey) {
	if s.Scheme != "" {
		h.Set(s.Header, s.Scheme+" "+key.Expose())
		return
	}
	h.Set(s.Header, key.Expose())
}

type versionKey struct{}

// VersionFrom is the version whose key the request presented, inside a
// handler behind Verifier.Middleware.
func VersionFrom(ctx context.Context) (uint64, bool) {
	v, ok := ctx.Value(versionKey{}).(uint64)
	return v, ok
}

// Middleware passes requests whose `Authorization: Bearer` key is accepted
// on to next, with the version in their context (VersionFrom), and answers
// every other request 401 with RefusalHeader saying why.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return v.MiddlewareFrom(Bearer, next)
}

// MiddlewareFrom is Middleware reading the key from src.
func (v *Verifier) MiddlewareFrom(src KeySource, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, refusal := src.presented(r.Header)
		if refusal == "" {
			result := v.Check(key)
			if result.Outcome == Accepted {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), versionKey{}, result.Version)))
				return
			}
			refusal = result.Outcome.String()
		}
		refuse(w, src, refusal)
	})
}

func refuse(w http.ResponseWriter, src KeySource, refusal string) {
	h := w.Header()
	h.Set(RefusalHeader, refusal)
	if src.Scheme != "" {
		challenge := src.Scheme
		if refusal == "unknown" || refusal == "retired" {
			challenge += ` error="invalid_token"`
		}
		h.Set("WWW-Authenticate", challenge)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write([]byte("unauthorized: " + refusal + " key\n"))
}

// Transport is an http.RoundTripper that sends the presenter's current key
// as `Authorization: Bearer <key>` on every request; base nil means
// http.DefaultTransport.
func (p *Presenter) Transport(base http.RoundTripper) http.RoundTripper {
	return p.TransportFrom(Bearer, base)
}

// TransportFrom is Transport sending the key as src says.
func (p *Presenter) TransportFrom(src KeySource, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context()) // a RoundTripper must not change its request
		src.Set(r.Header, p.Key())
		return base.RoundTrip(r)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
