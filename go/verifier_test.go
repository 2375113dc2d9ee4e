package keyrotor

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAVerifierAcceptsEachAcceptedVersionAndNothingElse(t *testing.T) {
	k := newKubelet(t)
	files := verifierFiles(7, 3, 4)
	files["v9.sha256"] = digest(key(9)) // a stale file of a version not accepted
	k.publish(files)
	v := openVerifier(t, k.dir, manual(t))
	for presented, want := range map[string]Result{
		key(3):                         {Accepted, 3},
		key(4):                         {Accepted, 4},
		key(9):                         {Unknown, 0},
		"fake-test-key-never-issued-0": {Unknown, 0},
	} {
		if got := v.Check(presented); got != want {
			t.Errorf("%s: %+v, want %+v", presented, got, want)
		}
	}
}

func TestAKeyThatLeftAcceptedIsRetiredAndNeverAccepted(t *testing.T) {
	k := newKubelet(t)
	k.publish(verifierFiles(7, 3, 4))
	v := openVerifier(t, k.dir, manual(t))
	k.publish(verifierFiles(8, 4, 5))
	if changed, err := v.Refresh(); !changed || err != nil {
		t.Fatalf("refresh: %v %v", changed, err)
	}
	if got := v.Check(key(3)); got != (Result{Retired, 3}) {
		t.Fatalf("version 3: %+v", got)
	}
	if _, ok := v.Verify(key(3)); ok {
		t.Fatal("a retired key was accepted")
	}
	if got := v.Check(key(5)); got != (Result{Accepted, 5}) {
		t.Fatalf("version 5: %+v", got)
	}
	if got := v.RetiredVersions(); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("retired %v", got)
	}
}

func TestAVersionAcceptedAgainIsNoLongerRetired(t *testing.T) {
	k := newKubelet(t)
	k.publish(verifierFiles(7, 3, 4))
	v := openVerifier(t, k.dir, manual(t))
	k.publish(verifierFiles(8, 4))
	v.Refresh()
	k.publish(verifierFiles(9, 3, 4)) // a rollback
	v.Refresh()
	if got := v.Check(key(3)); got != (Result{Accepted, 3}) || len(v.RetiredVersions()) != 0 {
		t.Fatalf("%+v, retired %v", got, v.RetiredVersions())
	}
}

func TestAVerifierRemembersOnlyTheNewestRetiredVersions(t *testing.T) {
	k := newKubelet(t)
	k.publish(verifierFiles(1, 1))
	v := openVerifier(t, k.dir, manual(t))
	for n := 2; n <= RetiredMemory+3; n++ {
		k.publish(verifierFiles(n, n))
		if _, err := v.Refresh(); err != nil {
			t.Fatal(err)
		}
	}
	retired := v.RetiredVersions()
	if len(retired) != RetiredMemory || retired[0] != 3 {
		t.Fatalf("retired %v", retired)
	}
	if got := v.Check(key(1)); got.Outcome != Unknown {
		t.Fatalf("the oldest is forgotten: %+v", got)
	}
	if got := v.Check(key(3)); got != (Result{Retired, 3}) {
		t.Fatalf("%+v", got)
	}
}

func TestValuesThatCannotBeKeysAreRefusedEvenWhenTheirDigestIsAccepted(t *testing.T) {
	long := strings.Repeat("k", MaxKeyLen+1)
	for _, value := range []string{"short-value", long, "a key with spaces inside", "non-ascii-ключ-0123456", "tab\tinside-the-value-00", ""} {
		dir := t.TempDir()
		files := verifierFiles(7, 3)
		files["v3.sha256"] = digest(value)
		for name, text := range files {
			must(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
		}
		v := openVerifier(t, dir, manual(t))
		if got := v.Check(value); got.Outcome != Unknown {
			t.Errorf("%.20q: %+v", value, got)
		}
	}
}

func TestNoCheckIsRefusedWhileKubeletSwapsGenerations(t *testing.T) {
	k := newKubelet(t)
	k.publish(verifierFiles(1, 1))
	v := openVerifier(t, k.dir, Options{PollInterval: time.Millisecond, Logger: quietLogger(t)})
	stop := make(chan struct{})
	var checks, refused atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Version 1 stays accepted in every generation while the
				// others come and go: it must never be refused.
				checks.Add(1)
				if _, ok := v.Verify(key(1)); !ok {
					refused.Add(1)
				}
			}
		}()
	}
	for n := 2; n <= 150; n++ {
		k.publish(verifierFiles(n, 1, n))
		if n%10 == 0 {
			v.Refresh() // a manual refresh racing the poller
		}
	}
	close(stop)
	wg.Wait()
	if refused.Load() != 0 || checks.Load() == 0 {
		t.Fatalf("%d of %d checks refused", refused.Load(), checks.Load())
	}
	if v.Refresh(); v.Snapshot().Revision() != 150 {
		t.Fatalf("revision %d", v.Snapshot().Revision())
	}
}

func TestAFailedReloadKeepsTheLastGoodSnapshot(t *testing.T) {
	k := newKubelet(t)
	k.publish(verifierFiles(7, 3))
	log, logs := capture()
	v := openVerifier(t, k.dir, Options{PollInterval: -1, Logger: log})

	bad := verifierFiles(8, 3, 4)
	bad["v4.sha256"] = "not-hex"
	k.publish(bad)
	if _, err := v.Refresh(); ClassOf(err) != Malformed {
		t.Fatalf("malformed generation: %v", err)
	}
	must(t, os.RemoveAll(k.dir)) // the volume disappears
	if _, err := v.Refresh(); ClassOf(err) != Missing {
		t.Fatalf("no volume: %v", err)
	}
	if got := v.Check(key(3)); got != (Result{Accepted, 3}) || v.Snapshot().Revision() != 7 {
		t.Fatalf("the last good snapshot is gone: %+v", got)
	}
	if strings.Count(logs.String(), "reload failed") != 2 {
		t.Errorf("each distinct failure is logged once:\n%s", logs)
	}
	v.Refresh()
	if strings.Count(logs.String(), "reload failed") != 2 {
		t.Errorf("a repeated failure is not logged again:\n%s", logs)
	}

	must(t, os.MkdirAll(k.dir, 0o755))
	k.old = ""
	k.publish(verifierFiles(9, 4))
	if changed, err := v.Refresh(); !changed || err != nil {
		t.Fatalf("recovery: %v %v", changed, err)
	}
	if got := v.Check(key(4)); got != (Result{Accepted, 4}) {
		t.Fatalf("%+v", got)
	}
	if !strings.Contains(logs.String(), "reads again") {
		t.Errorf("the recovery is logged:\n%s", logs)
	}
}

func TestAPlainDirectoryIsReloadedWhenItsContentChanges(t *testing.T) {
	dir := t.TempDir()
	write := func(files map[string]string) {
		for name, text := range files {
			must(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
		}
	}
	write(verifierFiles(7, 3))
	v := openVerifier(t, dir, manual(t))
	if changed, _ := v.Refresh(); changed {
		t.Fatal("nothing changed")
	}
	write(verifierFiles(8, 4))
	if changed, err := v.Refresh(); !changed || err != nil {
		t.Fatalf("%v %v", changed, err)
	}
	if got := v.Check(key(3)); got != (Result{Retired, 3}) {
		t.Fatalf("%+v", got)
	}
}

func TestThePollerFollowsANewGenerationByItself(t *testing.T) {
	k := newKubelet(t)
	k.publish(verifierFiles(7, 3))
	v := openVerifier(t, k.dir, Options{PollInterval: 10 * time.Millisecond, Logger: quietLogger(t)})
	k.publish(verifierFiles(8, 4))
	deadline := time.Now().Add(5 * time.Second)
	for v.Snapshot().Revision() != 8 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, ok := v.Verify(key(4)); !ok {
		t.Fatal("the poller did not load the new generation")
	}
	must(t, v.Close())
	must(t, v.Close()) // twice is harmless
	k.publish(verifierFiles(9, 5))
	time.Sleep(50 * time.Millisecond)
	if v.Snapshot().Revision() != 8 {
		t.Fatal("a closed verifier kept polling")
	}
}

func TestAVerifierDoesNotOpenASecretThatServesNoVerifier(t *testing.T) {
	k := newKubelet(t)
	k.publish(presenterFiles(9, 4))
	_, err := OpenVerifier(k.dir, manual(t))
	if ClassOf(err) != Malformed || !strings.Contains(err.Error(), "does not name the verifier role") {
		t.Fatalf("%v", err)
	}
}

func TestTheFirstLoadFailsWithTheClassOfTheProblem(t *testing.T) {
	_, err := OpenVerifier(filepath.Join(t.TempDir(), "not-mounted"), manual(t))
	if ClassOf(err) != Missing {
		t.Fatalf("%v", err)
	}
}

func TestAPresenterSendsTheCurrentKeyAndFollowsANewOne(t *testing.T) {
	k := newKubelet(t)
	k.publish(presenterFiles(9, 4))
	p := openPresenter(t, k.dir, manual(t))
	if v, key4 := p.Current(); v != 4 || key4.Expose() != key(4) {
		t.Fatalf("version %d", v)
	}
	k.publish(presenterFiles(10, 5))
	if changed, err := p.Refresh(); !changed || err != nil {
		t.Fatalf("%v %v", changed, err)
	}
	if p.Key().Expose() != key(5) {
		t.Fatal("the presenter kept the old key")
	}
	must(t, os.RemoveAll(k.dir))
	if _, err := p.Refresh(); ClassOf(err) != Missing || p.Key().Expose() != key(5) {
		t.Fatalf("the key is kept when the volume disappears: %v", err)
	}
}

func TestTheKeyComesWithTheUserNameOfItsVersionAcrossSwaps(t *testing.T) {
	k := newKubelet(t)
	files := presenterFiles(9, 4)
	files["username"] = "app_blue"
	k.publish(files)
	p := openPresenter(t, k.dir, manual(t))
	if got := p.Presented(); got.Version != 4 || got.Key.Expose() != key(4) || got.Username != "app_blue" {
		t.Fatalf("%v", got)
	}
	files = presenterFiles(10, 5)
	files["username"] = "app_green\n"
	k.publish(files)
	if changed, err := p.Refresh(); !changed || err != nil {
		t.Fatalf("%v %v", changed, err)
	}
	if got := p.Presented(); got.Version != 5 || got.Key.Expose() != key(5) || got.Username != "app_green" {
		t.Fatalf("%v", got)
	}
	k.publish(presenterFiles(11, 6))
	if _, err := p.Refresh(); err != nil {
		t.Fatal(err)
	}
	if name, ok := p.Username(); ok || p.Presented().Username != "" {
		t.Fatalf("version 6 has no user name, got %q", name)
	}
}

func TestAMalformedUserNameKeepsTheLastGoodKeyAndUserName(t *testing.T) {
	k := newKubelet(t)
	files := presenterFiles(9, 4)
	files["username"] = "app_blue"
	k.publish(files)
	p := openPresenter(t, k.dir, manual(t))
	bad := presenterFiles(10, 5)
	bad["username"] = "app green"
	k.publish(bad)
	_, err := p.Refresh()
	if ClassOf(err) != Malformed || !strings.Contains(err.Error(), "/username:") || strings.Contains(err.Error(), "app green") {
		t.Fatalf("%v", err)
	}
	if got := p.Presented(); got.Version != 4 || got.Key.Expose() != key(4) || got.Username != "app_blue" {
		t.Fatalf("%v", got)
	}
}

func TestACombinedSecretServesBothSides(t *testing.T) {
	k := newKubelet(t)
	files := verifierFiles(5, 3, 4)
	files["role"], files["version"], files["key"] = "verifier,presenter", "4", key(4)
	k.publish(files)
	v := openVerifier(t, k.dir, manual(t))
	p := openPresenter(t, k.dir, manual(t))
	if got, ok := v.Verify(p.Key().Expose()); !ok || got != 4 {
		t.Fatalf("%d %v", got, ok)
	}
}
