package main

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	keyrotor "github.com/keyrotor/keyrotor/go"
)

const key = "fake-test-key-for-the-example-0001"

func TestTheExampleAnswers200ForAnAcceptedKeyAnd401Otherwise(t *testing.T) {
	dir := t.TempDir()
	sum := sha256.Sum256([]byte(key))
	for name, text := range map[string]string{"rotation": "orders", "role": "verifier", "revision": "1",
		"accepted": "1", "v1.sha256": hex.EncodeToString(sum[:])} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v, err := keyrotor.OpenVerifier(dir, keyrotor.Options{PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	server := httptest.NewServer(routes(v))
	defer server.Close()
	for presented, want := range map[string]int{key: 200, "fake-test-key-never-issued-0": 401, "": 401} {
		req, _ := http.NewRequest("GET", server.URL+"/", nil)
		if presented != "" {
			req.Header.Set("Authorization", "Bearer "+presented)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%q: %d, want %d", presented, resp.StatusCode, want)
		}
	}
	resp, err := http.Get(server.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
}

func TestPollMSReadsMillisecondsOrOff(t *testing.T) {
	for text, want := range map[string]string{"": "0s", "off": "-1ns", "250": "250ms", "-3": "error", "x": "error"} {
		d, err := pollInterval(text)
		got := d.String()
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("%q: %s, want %s", text, got, want)
		}
	}
}
