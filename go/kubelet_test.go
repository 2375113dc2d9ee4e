package keyrotor

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// kubelet publishes Secret contents into a directory the way kubelet's
// AtomicWriter does: a new timestamped directory, a ..data_tmp link renamed
// over ..data, visible links, then the old directory deleted.
type kubelet struct {
	t   *testing.T
	dir string
	n   int
	old string
}

func newKubelet(t *testing.T) *kubelet {
	dir := filepath.Join(t.TempDir(), "volume")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &kubelet{t: t, dir: dir}
}

func (k *kubelet) publish(files map[string]string) {
	k.t.Helper()
	k.n++
	gen := fmt.Sprintf("..2026_03_01_10_00_00.%09d", k.n)
	must(k.t, os.Mkdir(filepath.Join(k.dir, gen), 0o755))
	for name, text := range files {
		must(k.t, os.WriteFile(filepath.Join(k.dir, gen, name), []byte(text), 0o644))
	}
	tmp := filepath.Join(k.dir, "..data_tmp")
	must(k.t, os.Symlink(gen, tmp))
	must(k.t, os.Rename(tmp, filepath.Join(k.dir, dataLink)))
	for name := range files {
		link := filepath.Join(k.dir, name)
		if _, err := os.Lstat(link); err != nil {
			must(k.t, os.Symlink(filepath.Join(dataLink, name), link))
		}
	}
	if k.old != "" {
		must(k.t, os.RemoveAll(filepath.Join(k.dir, k.old)))
	}
	k.old = gen
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// key is version v's fake test key.
func key(v int) string { return fmt.Sprintf("fake-test-key-v%d-not-a-secret", v) }

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// verifierFiles is a verifier Secret accepting versions (digest format).
func verifierFiles(revision int, versions ...int) map[string]string {
	files := map[string]string{"rotation": "orders", "role": "verifier", "revision": fmt.Sprint(revision)}
	var accepted []string
	for _, v := range versions {
		accepted = append(accepted, fmt.Sprint(v))
		files[fmt.Sprintf("v%d.sha256", v)] = digest(key(v))
	}
	files["accepted"] = strings.Join(accepted, ",")
	return files
}

// presenterFiles is a presenter Secret sending version v.
func presenterFiles(revision, v int) map[string]string {
	return map[string]string{"rotation": "orders", "role": "presenter", "revision": fmt.Sprint(revision),
		"version": fmt.Sprint(v), "key": key(v)}
}

// manual are options for tests that drive every poll themselves.
func manual(t *testing.T) Options {
	return Options{PollInterval: -1, Logger: quietLogger(t)}
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func capture() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func quietLogger(t *testing.T) *slog.Logger {
	l, _ := capture()
	return l
}

func openVerifier(t *testing.T, dir string, opts Options) *Verifier {
	t.Helper()
	v, err := OpenVerifier(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func openPresenter(t *testing.T, dir string, opts Options) *Presenter {
	t.Helper()
	p, err := OpenPresenter(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestMain(m *testing.M) {
	os.Unsetenv(HandshakeEnv) // the environment must not pick a handshake directory for tests
	os.Exit(m.Run())
}
