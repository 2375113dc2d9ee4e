package keyrotor

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// leaks says where any sizeable piece of secret shows in text.
func leaks(text string, secrets ...string) string {
	for _, s := range secrets {
		for i := 0; i+8 <= len(s); i++ {
			if strings.Contains(text, s[i:i+8]) {
				return fmt.Sprintf("%q shows %q", text, s[i:i+8])
			}
		}
	}
	return ""
}

// secretPart is what a key shares with nothing else in these tests.
func secretPart(k string) string { return strings.TrimPrefix(k, "fake-test-key-") }

func TestAKeyNeverShowsWhenFormattedMarshalledOrLogged(t *testing.T) {
	k := newKubelet(t)
	files := verifierFiles(5, 3, 4)
	files["role"], files["version"], files["key"] = "verifier,presenter", "4", key(4)
	k.publish(files)
	log, logs := capture()
	jsonLog := &logBuffer{}
	p := openPresenter(t, k.dir, Options{PollInterval: -1, Logger: log})
	v := openVerifier(t, k.dir, Options{PollInterval: -1, Logger: log})
	secret := p.Key()
	if secret.Expose() != key(4) {
		t.Fatal("no key to hide")
	}
	holder := struct {
		Key    SecretKey
		hidden SecretKey
		Snap   *Snapshot
	}{secret, secret, p.Snapshot()}
	var shown []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
		for _, value := range []any{secret, &secret, holder, &holder, p.Snapshot(), *p.Snapshot(), p, v} {
			shown = append(shown, fmt.Sprintf(verb, value))
		}
	}
	for _, value := range []any{secret, holder} {
		b, err := json.Marshal(value)
		must(t, err)
		shown = append(shown, string(b))
	}
	text, _ := secret.MarshalText()
	shown = append(shown, string(text), fmt.Sprint([]SecretKey{secret}), fmt.Sprint(map[string]any{"k": secret}))
	log.Info("a key", "key", secret, "holder", holder)
	slog.New(slog.NewJSONHandler(jsonLog, nil)).Info("a key", "key", secret, "holder", holder)
	shown = append(shown, logs.String(), jsonLog.String())
	for _, s := range shown {
		if leak := leaks(s, secretPart(key(4)), digest(key(3)), digest(key(4))); leak != "" {
			t.Error(leak)
		}
	}
	if !strings.Contains(fmt.Sprint(secret), "redacted") {
		t.Errorf("the redaction says so: %v", secret)
	}
}

func TestTheUserNameMayShowButTheKeyBesideItNeverDoes(t *testing.T) {
	k := newKubelet(t)
	files := presenterFiles(9, 4)
	files["username"] = "app_blue"
	k.publish(files)
	log, logs := capture()
	p := openPresenter(t, k.dir, Options{PollInterval: -1, Logger: log})
	presented := p.Presented()
	holder := struct{ P Presented }{presented}
	var shown []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		for _, value := range []any{presented, &presented, holder, p.Snapshot(), p} {
			shown = append(shown, fmt.Sprintf(verb, value))
		}
	}
	log.Info("sending", "presented", presented)
	shown = append(shown, logs.String())
	for _, s := range shown {
		if leak := leaks(s, secretPart(key(4))); leak != "" {
			t.Error(leak)
		}
	}
	if s := fmt.Sprint(presented, p.Snapshot()); !strings.Contains(s, `username: "app_blue"`) || !strings.Contains(s, "version: 4") {
		t.Errorf("the user name and version show: %s", s)
	}
}

func TestAnErrorAboutAKeyFileNamesTheFileNeverTheKey(t *testing.T) {
	const bad = "almost-a-key-but with-a-space-0123"
	for name, text := range map[string]string{
		"key":       bad,
		"v3.key":    bad,
		"v3.sha256": "23c8af6636943048652baae9835b67fa522144a3b7fcedd052034e878b994b6Z",
	} {
		dir := t.TempDir()
		files := map[string]string{"rotation": "orders", "role": "verifier,presenter", "revision": "5",
			"accepted": "3", "version": "3", "key": key(3), "v3.sha256": digest(key(3))}
		if name == "v3.key" {
			delete(files, "v3.sha256")
		}
		files[name] = text
		for n, content := range files {
			must(t, os.WriteFile(filepath.Join(dir, n), []byte(content), 0o644))
		}
		_, err := LoadSnapshot(dir)
		if ClassOf(err) != Malformed || !strings.Contains(err.Error(), filepath.Join(dir, name)) {
			t.Fatalf("%s: %v", name, err)
		}
		shown := err.Error() + fmt.Sprintf("%#v %+v", err, err)
		if leak := leaks(shown, text, secretPart(key(3))); leak != "" {
			t.Errorf("%s: %s", name, leak)
		}
	}
}

func TestNothingOfAPresentedKeyIsLoggedOrEchoed(t *testing.T) {
	k := newKubelet(t)
	k.publish(verifierFiles(7, 3, 4))
	log, logs := capture()
	previous := slog.Default()
	slog.SetDefault(log)
	defer slog.SetDefault(previous)
	v := openVerifier(t, k.dir, Options{PollInterval: -1, Logger: log})
	k.publish(verifierFiles(8, 4))
	v.Refresh()
	wrong := "fake-test-key-v4-not-a-secreT" // a typo of the right key
	handler := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	var echoed []string
	for _, value := range []string{"Bearer " + wrong, "Bearer " + key(3), "Basic " + wrong, wrong, "Bearer " + wrong + " extra"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", value)
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("%d for a refused key", rec.Code)
		}
		echoed = append(echoed, rec.Body.String(), fmt.Sprint(rec.Header()))
	}
	if v.Check(wrong).Outcome != Unknown {
		t.Fatal("a wrong key was not refused")
	}
	for _, s := range append(echoed, logs.String()) {
		if leak := leaks(s, secretPart(wrong), secretPart(key(3)), secretPart(key(4))); leak != "" {
			t.Error(leak)
		}
	}
	if !strings.Contains(logs.String(), "revision=8") {
		t.Errorf("the log says what is loaded (not secret):\n%s", logs)
	}
}

func TestAFailedReloadOfAMalformedKeyLogsTheFileNotTheKey(t *testing.T) {
	k := newKubelet(t)
	k.publish(presenterFiles(9, 4))
	log, logs := capture()
	p := openPresenter(t, k.dir, Options{PollInterval: -1, Logger: log})
	bad := presenterFiles(10, 5)
	bad["key"] = "fake-test-key-v5 has a space in it"
	k.publish(bad)
	if _, err := p.Refresh(); ClassOf(err) != Malformed {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(logs.String(), "class=malformed") || !strings.Contains(logs.String(), "/key: is not printable ASCII") {
		t.Fatalf("the failure names its class and file:\n%s", logs)
	}
	if leak := leaks(logs.String(), "v5 has a space in it", secretPart(key(4))); leak != "" {
		t.Error(leak)
	}
}
