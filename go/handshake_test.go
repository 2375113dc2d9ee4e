package keyrotor

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/go/wire"
)

func handshakeDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "handshake")
	must(t, os.MkdirAll(dir, 0o755))
	return dir
}

func readFile(t *testing.T, path string) (string, bool) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "", false
	}
	must(t, err)
	return string(b), true
}

func names(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	must(t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func TestAStaleHandshakeFileIsRemovedBeforeTheFirstLoad(t *testing.T) {
	hs := handshakeDir(t)
	stale := filepath.Join(hs, "orders.verifier-revision")
	must(t, os.WriteFile(stale, []byte("99"), 0o644))
	other := filepath.Join(hs, "billing.verifier-revision") // another rotation's: not ours
	must(t, os.WriteFile(other, []byte("5"), 0o644))
	k := newKubelet(t)
	bad := verifierFiles(7, 3)
	bad["v3.sha256"] = "not-a-digest"
	k.publish(bad)
	opts := manual(t)
	opts.HandshakeDir = hs
	if _, err := OpenVerifier(k.dir, opts); ClassOf(err) != Malformed {
		t.Fatalf("%v", err)
	}
	if _, ok := readFile(t, stale); ok {
		t.Fatal("a file left by a process that stopped still speaks for this one")
	}
	if got, _ := readFile(t, other); got != "5" {
		t.Fatal("another rotation's file was touched")
	}
}

func TestTheRevisionIsWrittenAfterTheLoadAndAgainOnlyWhenItChanges(t *testing.T) {
	hs := handshakeDir(t)
	k := newKubelet(t)
	k.publish(verifierFiles(7, 3))
	opts := manual(t)
	opts.HandshakeDir = hs
	v := openVerifier(t, k.dir, opts)
	file := filepath.Join(hs, "orders.verifier-revision")
	if got, _ := readFile(t, file); got != "7" {
		t.Fatalf("content %q", got)
	}
	if got := names(t, hs); !slices.Equal(got, []string{"orders.verifier-revision"}) {
		t.Fatalf("files %v: a temporary file was left", got)
	}
	before, _ := os.Stat(file)
	k.publish(verifierFiles(7, 3)) // a new generation, the same revision
	v.Refresh()
	after, _ := os.Stat(file)
	if !os.SameFile(before, after) {
		t.Fatal("an unchanged revision was written again")
	}
	k.publish(verifierFiles(8, 3, 4))
	v.Refresh()
	if got, _ := readFile(t, file); got != "8" {
		t.Fatalf("content %q", got)
	}
}

func TestTheEnvironmentNamesTheHandshakeDirectory(t *testing.T) {
	hs := handshakeDir(t)
	t.Setenv(HandshakeEnv, hs)
	k := newKubelet(t)
	k.publish(presenterFiles(9, 4))
	openPresenter(t, k.dir, manual(t))
	if got, _ := readFile(t, filepath.Join(hs, "orders.presenter-revision")); got != "9" {
		t.Fatalf("content %q", got)
	}
}

func TestACombinedSecretIsConfirmedUnderBothRoles(t *testing.T) {
	hs := handshakeDir(t)
	k := newKubelet(t)
	files := verifierFiles(5, 3, 4)
	files["role"], files["version"], files["key"] = "verifier,presenter", "4", key(4)
	k.publish(files)
	opts := manual(t)
	opts.HandshakeDir = hs
	openPresenter(t, k.dir, opts)
	if got := names(t, hs); !slices.Equal(got, []string{"orders.presenter-revision", "orders.verifier-revision"}) {
		t.Fatalf("files %v", got)
	}
}

func TestTwoVolumesOfOneRotationAndRoleReportTheLowestRevision(t *testing.T) {
	hs := handshakeDir(t)
	a, b := newKubelet(t), newKubelet(t)
	a.publish(verifierFiles(7, 3))
	b.publish(verifierFiles(6, 3))
	opts := manual(t)
	opts.HandshakeDir = hs
	va := openVerifier(t, a.dir, opts)
	vb := openVerifier(t, b.dir, opts)
	file := filepath.Join(hs, "orders.verifier-revision")
	if got, _ := readFile(t, file); got != "6" {
		t.Fatalf("content %q: the second open must not remove the first one's file, and the lowest wins", got)
	}
	b.publish(verifierFiles(8, 3))
	vb.Refresh()
	if got, _ := readFile(t, file); got != "7" {
		t.Fatalf("content %q", got)
	}
	va.Close()
	if got, _ := readFile(t, file); got != "8" {
		t.Fatalf("content %q: a closed store no longer holds the report back", got)
	}
}

func TestAFailingHandshakeWriteNeverStopsServingAndIsRetried(t *testing.T) {
	hs := filepath.Join(t.TempDir(), "not-yet")
	k := newKubelet(t)
	k.publish(verifierFiles(7, 3))
	log, logs := capture()
	v := openVerifier(t, k.dir, Options{PollInterval: -1, HandshakeDir: hs, Logger: log})
	if _, ok := v.Verify(key(3)); !ok {
		t.Fatal("the verifier stopped serving")
	}
	if !strings.Contains(logs.String(), "cannot write a handshake file") || !strings.Contains(logs.String(), "class=io") {
		t.Fatalf("the failure is reported by class and path:\n%s", logs)
	}
	v.Refresh()
	if strings.Count(logs.String(), "cannot write") != 1 {
		t.Errorf("a repeated failure is logged once:\n%s", logs)
	}
	must(t, os.MkdirAll(hs, 0o755))
	v.Refresh()
	if got, _ := readFile(t, filepath.Join(hs, "orders.verifier-revision")); got != "7" {
		t.Fatalf("the write is retried: %q", got)
	}
}

func TestARotationNameThatCannotBeAFileNameIsNeverWrittenOutside(t *testing.T) {
	root := t.TempDir()
	hs := filepath.Join(root, "handshake")
	must(t, os.MkdirAll(hs, 0o755))
	dir := t.TempDir()
	files := verifierFiles(7, 3)
	files["rotation"] = "../escape"
	for name, text := range files {
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
	}
	log, logs := capture()
	v := openVerifier(t, dir, Options{PollInterval: -1, HandshakeDir: hs, Logger: log})
	if _, ok := v.Verify(key(3)); !ok {
		t.Fatal("the verifier stopped serving")
	}
	if got := names(t, root); !slices.Equal(got, []string{"handshake"}) || len(names(t, hs)) != 0 {
		t.Fatalf("written: %v, %v", got, names(t, hs))
	}
	if !strings.Contains(logs.String(), "cannot name a handshake file") {
		t.Fatalf("not reported:\n%s", logs)
	}
}

func TestTheHandshakeNeverClaimsARevisionTheProcessDoesNotUse(t *testing.T) {
	hs := handshakeDir(t)
	k := newKubelet(t)
	k.publish(verifierFiles(1, 1))
	opts := manual(t)
	opts.HandshakeDir = hs
	v := openVerifier(t, k.dir, opts)
	file := filepath.Join(hs, "orders.verifier-revision")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var violations []string
	wg.Add(1)
	go func() { // the sidecar's view: whenever the file says R, the process uses R or later
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(file)
			if err != nil {
				continue
			}
			text := string(b)
			r, err := wire.ParseRevisionReport(text)
			if err != nil {
				violations = append(violations, "invalid content "+text)
				continue
			}
			if v.Snapshot().Revision() < r && len(violations) < 5 {
				violations = append(violations, "claims "+text+" before using it")
			}
		}
	}()
	for n := 2; n <= 60; n++ {
		k.publish(verifierFiles(n, n))
		v.Refresh()
	}
	close(stop)
	wg.Wait()
	if len(violations) > 0 {
		t.Fatal(violations)
	}
}

func TestLastSeenIsWrittenInTrafficModeAtMostOncePerInterval(t *testing.T) {
	hs := handshakeDir(t)
	must(t, os.WriteFile(filepath.Join(hs, "orders.last-seen"), []byte("1=2020-01-01T00:00:00Z"), 0o644))
	k := newKubelet(t)
	k.publish(verifierFiles(7, 3, 4))
	opts := manual(t)
	opts.HandshakeDir, opts.Traffic, opts.LastSeenInterval = hs, true, time.Hour
	v := openVerifier(t, k.dir, opts)
	file := filepath.Join(hs, "orders.last-seen")
	if _, ok := readFile(t, file); ok {
		t.Fatal("a stale last-seen survived the start")
	}
	v.Refresh()
	if _, ok := readFile(t, file); ok {
		t.Fatal("nothing was seen: nothing is written")
	}
	v.Verify(key(3))
	v.Verify("fake-test-key-never-issued-0000")
	start := time.Now()
	v.e.refresh(start)
	text, _ := readFile(t, file)
	seen, err := wire.ParseLastSeen(text)
	if err != nil || len(seen) != 1 || time.Since(seen[3]) > time.Minute || seen[3].Nanosecond() != 0 {
		t.Fatalf("last-seen %q: %v", text, err)
	}
	v.Verify(key(4))
	v.e.refresh(start.Add(time.Minute))
	if again, _ := readFile(t, file); again != text {
		t.Fatalf("written again within the interval: %q", again)
	}
	v.e.refresh(start.Add(2 * time.Hour))
	if again, _ := readFile(t, file); !strings.HasPrefix(again, "3=") || !strings.Contains(again, ",4=") {
		t.Fatalf("not written after the interval: %q", again)
	}
	k.publish(verifierFiles(8, 4)) // 3 retired: it leaves last-seen
	v.e.refresh(start.Add(4 * time.Hour))
	if again, _ := readFile(t, file); strings.Contains(again, "3=") || !strings.HasPrefix(again, "4=") {
		t.Fatalf("a retired version is still reported: %q", again)
	}
}

func TestLastSeenKeepsTheNewestVersionsWithinItsCaps(t *testing.T) {
	seen := map[uint64]int64{}
	for v := uint64(1); v <= 300; v++ {
		seen[v<<40] = 253402207199 // the longest versions and times there are
	}
	value := lastSeenValue(seen)
	parsed, err := wire.ParseLastSeen(value)
	if err != nil || len(parsed) != wire.LastSeenMaxEntries || len(value) > wire.LastSeenMaxLen {
		t.Fatalf("%d entries, %d bytes: %v", len(parsed), len(value), err)
	}
	if _, ok := parsed[45<<40]; !ok {
		t.Fatal("the newest versions must be kept")
	}
	if _, ok := parsed[44<<40]; ok {
		t.Fatal("the oldest versions beyond the cap must be dropped")
	}
}
