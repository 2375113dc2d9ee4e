package keyrotor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAReadThatSeesASwapIsRepeatedOnTheNewGeneration(t *testing.T) {
	k := newKubelet(t)
	k.publish(verifierFiles(7, 3, 4))
	calls := 0
	snap, gen, err := readConsistent(k.dir, func(f files) (*Snapshot, error) {
		calls++
		s, err := readSnapshot(f)
		if calls == 1 {
			k.publish(verifierFiles(8, 4, 5)) // kubelet swaps mid-read
		}
		return s, err
	})
	if err != nil || calls != 2 || snap.revision != 8 || !gen.ok || gen.target != k.old {
		t.Fatalf("calls %d, revision %v, generation %v, %v", calls, snap, gen, err)
	}
}

func TestAGenerationThatChangesOnEveryAttemptIsUnstable(t *testing.T) {
	k := newKubelet(t)
	k.publish(verifierFiles(7, 3))
	calls := 0
	_, _, err := readConsistent(k.dir, func(f files) (*Snapshot, error) {
		calls++
		k.publish(verifierFiles(7+calls, 3))
		return readSnapshot(f)
	})
	if ClassOf(err) != Unstable || calls != readAttempts {
		t.Fatalf("after %d attempts: %v", calls, err)
	}
	if !strings.Contains(err.Error(), k.dir) {
		t.Errorf("the error names the directory: %v", err)
	}
}

func TestAnErrorOfTheSwapItselfIsNotTheResult(t *testing.T) {
	k := newKubelet(t)
	k.publish(verifierFiles(7, 3))
	calls := 0
	snap, _, err := readConsistent(k.dir, func(f files) (*Snapshot, error) {
		calls++
		if calls == 1 { // the old directory is deleted while it is read
			k.publish(verifierFiles(8, 3))
			return nil, f.missing("accepted")
		}
		return readSnapshot(f)
	})
	if err != nil || snap.revision != 8 {
		t.Fatalf("%v, %v", snap, err)
	}
}

func TestADirectoryWhoseDataEntryIsNoLinkIsReadAsPlain(t *testing.T) {
	dir := t.TempDir()
	for name, text := range verifierFiles(7, 3) {
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
	}
	must(t, os.Mkdir(filepath.Join(dir, dataLink), 0o755))
	snap, err := LoadSnapshot(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Generation(); ok || snap.Revision() != 7 {
		t.Fatalf("%v", snap)
	}
}

func TestAMountPointThatIsAFileIsAnIOError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-directory")
	must(t, os.WriteFile(file, []byte("x"), 0o644))
	_, err := LoadSnapshot(file)
	var ve *VolumeError
	if !errors.As(err, &ve) || ve.Class != IO || ve.Err == nil {
		t.Fatalf("%#v", err)
	}
	if !strings.HasPrefix(err.Error(), "cannot read "+filepath.Join(file, dataLink)+": ") {
		t.Errorf("the error names the file: %v", err)
	}
}

func TestAnOversizedFileIsRefusedWithoutBeingReadWhole(t *testing.T) {
	dir := t.TempDir()
	files := verifierFiles(7, 3)
	for name, text := range files {
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644))
	}
	// A 64 MiB sparse digest file: reading it whole would take 64 MiB.
	f, err := os.Create(filepath.Join(dir, "v3.sha256"))
	must(t, err)
	must(t, f.Truncate(64<<20))
	f.Close()
	_, err = LoadSnapshot(dir)
	if ClassOf(err) != Malformed || !strings.Contains(err.Error(), "v3.sha256: is larger than 4096 bytes") {
		t.Fatalf("%v", err)
	}
}

func TestEveryRequiredFileThatIsMissingIsNamed(t *testing.T) {
	for _, name := range []string{"rotation", "role", "revision", "accepted", "v3.sha256"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for n, text := range verifierFiles(7, 3) {
				if n != name {
					must(t, os.WriteFile(filepath.Join(dir, n), []byte(text), 0o644))
				}
			}
			_, err := LoadSnapshot(dir)
			if ClassOf(err) != Missing || !strings.Contains(err.Error(), filepath.Join(dir, name)+": ") {
				t.Fatalf("%v", err)
			}
		})
	}
}

func TestRoleNamesFollowTheirGrammar(t *testing.T) {
	for text, want := range map[string]string{
		"verifier":              "[verifier]",
		" verifier , ,\tfuture": "[verifier future]",
		"verifier,présenter":    "malformed",
		"veri fier":             "malformed",
		" , ":                   "malformed",
	} {
		dir := t.TempDir()
		files := verifierFiles(7, 3)
		files["role"] = text
		for n, text := range files {
			must(t, os.WriteFile(filepath.Join(dir, n), []byte(text), 0o644))
		}
		snap, err := LoadSnapshot(dir)
		got := string(ClassOf(err))
		if err == nil {
			got = fmt.Sprint(snap.Roles())
		}
		if got != want {
			t.Errorf("role %q: %s, want %s", text, got, want)
		}
	}
}
