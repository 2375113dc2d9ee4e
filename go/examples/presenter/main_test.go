package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	keyrotor "github.com/keyrotor/keyrotor/go"
)

const key = "fake-test-key-for-the-example-0001"

func TestTheLoopCountsAcceptedRejectedAndFailedRequests(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{"rotation": "orders", "role": "presenter", "revision": "1",
		"version": "1", "key": key} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := keyrotor.OpenPresenter(dir, keyrotor.Options{PollInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var accept atomic.Bool
	accept.Store(true)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !accept.Load() || r.Header.Get("Authorization") != "Bearer "+key {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	client := &http.Client{Transport: p.Transport(nil), Timeout: time.Second}
	c := &counts{}
	for range 3 {
		probe(context.Background(), client, server.URL, c)
	}
	accept.Store(false)
	probe(context.Background(), client, server.URL, c)
	server.Close()
	probe(context.Background(), client, server.URL, c) // nothing listens any more

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	loop(ctx, &http.Client{Transport: p.Transport(nil)}, "http://127.0.0.1:1/", 5*time.Millisecond, &counts{})
	if time.Since(start) > 5*time.Second {
		t.Fatal("the loop did not stop with its context")
	}

	rec := httptest.NewRecorder()
	countsHandler(c).ServeHTTP(rec, httptest.NewRequest("GET", "/counts", nil))
	var got map[string]int64
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["ok"] != 3 || got["rejected"] != 1 || got["errors"] != 1 {
		t.Fatalf("%v", got)
	}
}
