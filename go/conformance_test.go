package keyrotor_test

// The wire contract's fixtures (../tests/wire, specified in docs/wire.md)
// against this library: every volume state materialized in a temporary
// directory and read by the real reader and verifier, every annotation
// value through its codec, the handshake file names through a real
// Verifier and Presenter. Every fixture file found is run and counted; one
// that cannot be read or has no runner fails. The outcome per file goes to
// ../target/conformance/go.json.

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	keyrotor "github.com/keyrotor/keyrotor/go"
	"github.com/keyrotor/keyrotor/go/wire"
)

const fixtureRoot = "../tests/wire"

const resultFile = "../target/conformance/go.json"

func TestEveryWireFixtureConforms(t *testing.T) {
	t.Setenv(keyrotor.HandshakeEnv, "")
	var names []string
	err := filepath.WalkDir(fixtureRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".json") {
			rel, _ := filepath.Rel(fixtureRoot, path)
			names = append(names, strings.TrimSuffix(filepath.ToSlash(rel), ".json"))
		}
		return nil
	})
	if err != nil || len(names) == 0 {
		t.Fatalf("no fixtures under %s: %v", fixtureRoot, err)
	}
	results := map[string]string{}
	passed := 0
	for _, name := range names {
		outcome := "fail"
		t.Run(name, func(t *testing.T) {
			problems := runFixture(t, name)
			for _, p := range problems {
				t.Error(p)
			}
			if len(problems) == 0 {
				outcome = "pass"
			}
		})
		results[name] = outcome
		if outcome == "pass" {
			passed++
		}
	}
	t.Logf("conformance: %d fixture files run, %d passed", len(names), passed)
	if err := writeResults(results); err != nil {
		t.Errorf("writing %s: %v", resultFile, err)
	}
}

func writeResults(results map[string]string) error {
	doc, err := json.MarshalIndent(map[string]any{"language": "go", "fixtures": results}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(resultFile), 0o755); err != nil {
		return err
	}
	return os.WriteFile(resultFile, append(doc, '\n'), 0o644)
}

// runFixture runs one fixture file; every problem it finds is returned.
func runFixture(t *testing.T, name string) (problems []string) {
	defer func() { // a fixture this runner cannot read is a failure, not a crash
		if r := recover(); r != nil {
			problems = append(problems, fmt.Sprintf("cannot read the fixture: %v", r))
		}
	}()
	raw, err := os.ReadFile(filepath.Join(fixtureRoot, name+".json"))
	if err != nil {
		return []string{err.Error()}
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return []string{err.Error()}
	}
	kind, file, _ := strings.Cut(name, "/")
	switch {
	case kind == "volumes":
		return runVolume(t, file, doc)
	case kind == "annotations" && codecs[file] != nil:
		return runAnnotation(codecs[file], doc)
	case name == "handshake/handshake":
		return runHandshake(t, doc)
	}
	return []string{"no runner for this fixture"}
}

// --- reading fixtures ------------------------------------------------------

func onlyFields(v any, allowed ...string) {
	for k := range obj(v) {
		if !slices.Contains(allowed, k) {
			panic(fmt.Sprintf("unknown field %q", k))
		}
	}
}

func obj(v any) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		panic(fmt.Sprintf("not an object: %v", v))
	}
	return m
}

func field(v any, name string) any {
	f, ok := obj(v)[name]
	if !ok {
		panic(fmt.Sprintf("no field %q", name))
	}
	return f
}

func str(v any, name string) string {
	s, ok := field(v, name).(string)
	if !ok {
		panic(fmt.Sprintf("field %q is not a string", name))
	}
	return s
}

func list(v any, name string) []any {
	l, ok := field(v, name).([]any)
	if !ok {
		panic(fmt.Sprintf("field %q is not a list", name))
	}
	return l
}

// content is a string, or {text|hex, repeat, prefix, suffix}.
func content(v any) []byte {
	if s, ok := v.(string); ok {
		return []byte(s)
	}
	m := obj(v)
	var unit []byte
	switch {
	case m["text"] != nil && m["hex"] == nil:
		unit = []byte(m["text"].(string))
	case m["hex"] != nil && m["text"] == nil:
		b, err := hex.DecodeString(m["hex"].(string))
		if err != nil {
			panic(err)
		}
		unit = b
	default:
		panic("content needs one of text and hex")
	}
	repeat := 1
	if r, ok := m["repeat"].(float64); ok {
		repeat = int(r)
	}
	part := func(name string) string { s, _ := m[name].(string); return s }
	out := []byte(part("prefix"))
	for range repeat {
		out = append(out, unit...)
	}
	return append(out, part("suffix")...)
}

// --- volumes -----------------------------------------------------------------

func runVolume(t *testing.T, file string, doc map[string]any) []string {
	onlyFields(doc, "name", "description", "entries", "load", "report")
	if str(doc, "name") != file {
		return []string{fmt.Sprintf("name %q is not the file's", str(doc, "name"))}
	}
	dir := filepath.Join(t.TempDir(), "volume")
	if entries := field(doc, "entries"); entries != nil {
		if err := materialize(dir, entries.([]any)); err != nil {
			return []string{err.Error()}
		}
	}
	want := withUsername(field(doc, "load"))
	got := loaded(dir, want)
	if !reflect.DeepEqual(got, want) {
		return []string{fmt.Sprintf("load:\n got %v\nwant %v", got, want)}
	}
	return nil
}

// withUsername is a fixture's load with the username it may leave out: a
// load without one means null (tests/wire/README.md).
func withUsername(load any) any {
	m, ok := load.(map[string]any)
	if !ok || m["error"] != nil {
		return load
	}
	if _, stated := m["username"]; stated {
		return load
	}
	out := map[string]any{"username": nil}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func materialize(root string, entries []any) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		path := filepath.Join(root, str(e, "path"))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		var err error
		switch str(e, "type") {
		case "dir":
			onlyFields(e, "path", "type")
			err = os.MkdirAll(path, 0o755)
		case "file":
			onlyFields(e, "path", "type", "text", "hex", "repeat", "prefix", "suffix")
			err = os.WriteFile(path, content(e), 0o644)
		case "symlink":
			onlyFields(e, "path", "type", "target")
			err = os.Symlink(str(e, "target"), path)
		default:
			err = fmt.Errorf("unknown entry type %q", str(e, "type"))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// loaded is what this library concludes from dir, in the fixture's shape.
func loaded(dir string, want any) any {
	snap, err := keyrotor.LoadSnapshot(dir)
	if err != nil {
		return map[string]any{"error": string(keyrotor.ClassOf(err))}
	}
	out := map[string]any{
		"rotation": snap.Rotation(),
		"revision": strconv.FormatUint(snap.Revision(), 10),
		"current":  nil, "currentKey": nil, "username": nil, "generation": nil,
	}
	var roles, accepted []any
	for _, r := range snap.Roles() {
		roles = append(roles, r)
	}
	for _, v := range snap.Accepted() {
		accepted = append(accepted, strconv.FormatUint(v, 10))
	}
	out["roles"], out["accepted"] = orEmpty(roles), orEmpty(accepted)
	if v, key, ok := snap.Current(); ok {
		out["current"], out["currentKey"] = strconv.FormatUint(v, 10), key.Expose()
	}
	if name, ok := snap.Username(); ok {
		out["username"] = name
	}
	if g, ok := snap.Generation(); ok {
		out["generation"] = g
	}
	var checks []any
	if wanted, ok := obj(want)["checks"].([]any); ok && len(wanted) > 0 {
		v, err := keyrotor.OpenVerifier(dir, keyrotor.Options{PollInterval: -1, Logger: quiet})
		if err != nil {
			return map[string]any{"verifier": err.Error()}
		}
		defer v.Close()
		for _, c := range wanted {
			key := str(c, "key")
			var accepts any
			if version, ok := v.Verify(key); ok {
				accepts = strconv.FormatUint(version, 10)
			}
			checks = append(checks, map[string]any{"key": key, "accepts": accepts})
		}
	}
	out["checks"] = orEmpty(checks)
	return out
}

func orEmpty(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}

// --- annotations -----------------------------------------------------------

// codec is one annotation value as the fixtures see it: text in, the value
// in the fixture's JSON shape and the written form out.
type codec struct {
	name    string
	caps    map[string]any
	key     func(example any) string
	strict  func(text string) (any, string, error)
	lenient func(text string) (any, int, error)
	// canon puts a fixture's value in canonical form (times, addresses).
	canon func(v any) any
}

var codecs = map[string]*codec{
	"revision-report": {
		name: wire.RevisionReportName,
		caps: map[string]any{"maxLength": float64(wire.RevisionReportMaxLen)},
		key:  func(e any) string { return wire.ReportKey(str(e, "rotation"), str(e, "role")) },
		strict: func(text string) (any, string, error) {
			r, err := wire.ParseRevisionReport(text)
			return strconv.FormatUint(r, 10), wire.FormatRevisionReport(r), err
		},
		canon: func(v any) any { return v },
	},
	"nudge": {
		name: wire.NudgeName,
		caps: map[string]any{"maxLength": float64(wire.NudgeMaxLen)},
		key:  func(e any) string { return wire.NudgeKey(str(e, "rotation")) },
		strict: func(text string) (any, string, error) {
			n, err := wire.ParseNudge(text)
			return map[string]any{
				"revision": strconv.FormatUint(n.Revision, 10),
				"attempt":  strconv.FormatUint(uint64(n.Attempt), 10),
				"at":       wire.FormatTime(n.At),
			}, n.String(), err
		},
		canon: func(v any) any {
			m := obj(v)
			return map[string]any{"revision": m["revision"], "attempt": m["attempt"], "at": canonTime(m["at"])}
		},
	},
	"last-seen": {
		name: wire.LastSeenName,
		caps: map[string]any{"maxLength": float64(wire.LastSeenMaxLen), "maxEntries": float64(wire.LastSeenMaxEntries)},
		key:  func(e any) string { return wire.LastSeenKey(str(e, "rotation")) },
		strict: func(text string) (any, string, error) {
			s, err := wire.ParseLastSeen(text)
			return lastSeenJSON(s), s.String(), err
		},
		lenient: func(text string) (any, int, error) {
			s, skipped, err := wire.ParseLastSeenLenient(text)
			return lastSeenJSON(s), skipped, err
		},
		canon: func(v any) any {
			out := map[string]any{}
			for k, t := range obj(v) {
				out[k] = canonTime(t)
			}
			return out
		},
	},
	"traffic": {
		name: wire.TrafficName,
		caps: map[string]any{"maxLength": float64(wire.TrafficMaxLen), "maxCounts": float64(wire.TrafficMaxCounts)},
		key:  func(e any) string { return wire.TrafficKey(str(e, "rotation")) },
		strict: func(text string) (any, string, error) {
			tr, err := wire.ParseTraffic(text)
			return trafficJSON(tr), tr.String(), err
		},
		lenient: func(text string) (any, int, error) {
			tr, skipped, err := wire.ParseTrafficLenient(text)
			return trafficJSON(tr), skipped, err
		},
		canon: func(v any) any {
			m := obj(v)
			client := m["client"]
			if s, ok := client.(string); ok {
				client = netip.MustParseAddr(s).String()
			}
			return map[string]any{"accepted": m["accepted"], "retired": m["retired"], "client": client}
		},
	},
}

func canonTime(v any) any {
	t, err := time.Parse(time.RFC3339Nano, v.(string))
	if err != nil {
		panic(err)
	}
	return wire.FormatTime(t)
}

func lastSeenJSON(s wire.LastSeen) any {
	out := map[string]any{}
	for v, t := range s {
		out[strconv.FormatUint(v, 10)] = wire.FormatTime(t)
	}
	return out
}

func trafficJSON(t wire.Traffic) any {
	counts := func(m map[uint64]uint64) map[string]any {
		out := map[string]any{}
		for v, n := range m {
			out[strconv.FormatUint(v, 10)] = strconv.FormatUint(n, 10)
		}
		return out
	}
	var client any
	if t.Client.IsValid() {
		client = t.Client.String()
	}
	return map[string]any{"accepted": counts(t.Accepted), "retired": counts(t.Retired), "client": client}
}

func classOf(err error) string {
	var we *wire.Error
	if errors.As(err, &we) {
		return string(we.Class)
	}
	return ""
}

func runAnnotation(c *codec, doc map[string]any) (problems []string) {
	onlyFields(doc, "annotation", "key", "caps", "valid", "invalid", "lenient")
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if str(doc, "annotation") != c.name {
		fail("annotation %q, want %q", str(doc, "annotation"), c.name)
	}
	if !reflect.DeepEqual(field(doc, "caps"), any(c.caps)) {
		fail("caps %v, want %v", field(doc, "caps"), c.caps)
	}
	for _, e := range list(field(doc, "key"), "examples") {
		if got := c.key(e); got != str(e, "key") {
			fail("key %q, want %q", got, str(e, "key"))
		}
	}
	for _, cs := range list(doc, "valid") {
		onlyFields(cs, "name", "text", "value", "format")
		name, text := str(cs, "name"), string(content(field(cs, "text")))
		value, format, err := c.strict(text)
		want := c.canon(field(cs, "value"))
		switch {
		case err != nil:
			fail("valid %q: %v", name, err)
		case !reflect.DeepEqual(value, want):
			fail("valid %q: value %v, want %v", name, value, want)
		case format != string(content(field(cs, "format"))):
			fail("valid %q: written %q, want %q", name, format, string(content(field(cs, "format"))))
		default:
			if again, _, err := c.strict(format); err != nil || !reflect.DeepEqual(again, want) {
				fail("valid %q: the written form reads as %v (%v)", name, again, err)
			}
		}
	}
	for _, cs := range list(doc, "invalid") {
		onlyFields(cs, "name", "text", "error")
		name, text := str(cs, "name"), string(content(field(cs, "text")))
		if _, _, err := c.strict(text); classOf(err) != str(cs, "error") {
			fail("invalid %q: got %v, want class %s", name, err, str(cs, "error"))
		}
	}
	lenient := list(doc, "lenient")
	if len(lenient) > 0 && c.lenient == nil {
		fail("lenient cases for a value without a lenient reading")
		return problems
	}
	for _, cs := range lenient {
		onlyFields(cs, "name", "text", "value", "skipped", "error")
		name, text := str(cs, "name"), string(content(field(cs, "text")))
		value, skipped, err := c.lenient(text)
		if wantErr, ok := obj(cs)["error"]; ok {
			if classOf(err) != wantErr {
				fail("lenient %q: got %v, want class %v", name, err, wantErr)
			}
			continue
		}
		want := c.canon(field(cs, "value"))
		if err != nil || !reflect.DeepEqual(value, want) || float64(skipped) != field(cs, "skipped") {
			fail("lenient %q: got %v skipping %d (%v), want %v skipping %v", name, value, skipped, err, want, field(cs, "skipped"))
		}
	}
	return problems
}

// --- handshake ---------------------------------------------------------------

// runHandshake checks the `files` section through the library itself: a
// Verifier or Presenter opened on a Secret of that rotation and role writes
// exactly that file (a Traffic-mode verifier, the last-seen file). The
// `reports` section is the sidecar's.
func runHandshake(t *testing.T, doc map[string]any) (problems []string) {
	onlyFields(doc, "description", "files", "reports")
	for i, f := range list(doc, "files") {
		onlyFields(f, "rotation", "role", "lastSeen", "name")
		rotation, want := str(f, "rotation"), str(f, "name")
		lastSeen, _ := obj(f)["lastSeen"].(bool)
		role := wire.RoleVerifier
		if !lastSeen {
			role = str(f, "role")
		}
		dir := filepath.Join(t.TempDir(), strconv.Itoa(i))
		vol, hs := filepath.Join(dir, "volume"), filepath.Join(dir, "handshake")
		for _, p := range []string{vol, hs} {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return []string{err.Error()}
			}
		}
		writePlainVolume(vol, rotation, role, "12")
		opts := keyrotor.Options{HandshakeDir: hs, PollInterval: -1, Traffic: lastSeen, Logger: quiet}
		var closer interface{ Close() error }
		var err error
		if role == wire.RoleVerifier {
			var v *keyrotor.Verifier
			if v, err = keyrotor.OpenVerifier(vol, opts); err == nil {
				closer = v
				v.Verify(testKey)
				_, err = v.Refresh()
			}
		} else {
			closer, err = keyrotor.OpenPresenter(vol, opts)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", want, err))
			continue
		}
		names := dirNames(hs)
		closer.Close()
		if !slices.Contains(names, want) {
			problems = append(problems, fmt.Sprintf("%s %s: wrote %v, want %s", rotation, role, names, want))
		}
		if got := wire.HandshakeRevisionFile(rotation, role); !lastSeen && got != want {
			problems = append(problems, fmt.Sprintf("HandshakeRevisionFile: %s, want %s", got, want))
		}
		if got := wire.HandshakeLastSeenFile(rotation); lastSeen && got != want {
			problems = append(problems, fmt.Sprintf("HandshakeLastSeenFile: %s, want %s", got, want))
		}
	}
	return problems
}

// quiet discards the library's logs (a conformance run reads many volumes).
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const testKey = "fake-test-key-for-the-go-library-0001"

// writePlainVolume writes a plain Secret directory serving role, whose
// verifier accepts version 1 (testKey) and whose presenter sends it.
func writePlainVolume(dir, rotation, role, revision string) {
	files := map[string]string{"rotation": rotation, "role": role, "revision": revision,
		"accepted": "1", "v1.key": testKey, "version": "1", "key": testKey}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			panic(err)
		}
	}
}

func dirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
