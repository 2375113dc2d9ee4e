// Command presenter is keyrotor's example client: every INTERVAL_MS it sends
// GET TARGET_URL with the current key (`Authorization: Bearer <key>`), as
// the library caches it in memory, and counts the answers: `ok` (2xx),
// `rejected` (401) and `errors` (anything else, connection errors
// included). GET /counts on PORT shows them as JSON; SIGTERM prints them
// and exits.
//
// Environment: KEY_DIR (the mounted presenter Secret, required), TARGET_URL
// (required), INTERVAL_MS (default 25), PORT (default 8081),
// KEYROTOR_HANDSHAKE_DIR (optional), POLL_MS (default 1000; "off" loads the
// key once and never again: an app that caches its key forever).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	keyrotor "github.com/keyrotor/keyrotor/go"
)

func main() {
	if err := run(); err != nil {
		slog.Error("presenter: " + err.Error())
		os.Exit(1)
	}
}

// counts are the answers so far.
type counts struct{ ok, rejected, errors atomic.Int64 }

func (c *counts) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]int64{"ok": c.ok.Load(), "rejected": c.rejected.Load(), "errors": c.errors.Load()})
}

func run() error {
	dir, target := os.Getenv("KEY_DIR"), os.Getenv("TARGET_URL")
	if dir == "" || target == "" {
		return errors.New("KEY_DIR and TARGET_URL must be set")
	}
	interval, err := millis("INTERVAL_MS", 25)
	if err != nil {
		return err
	}
	poll := time.Duration(-1) // POLL_MS=off: load once, never again
	if os.Getenv("POLL_MS") != "off" {
		if poll, err = millis("POLL_MS", 1000); err != nil {
			return err
		}
	}
	p, err := keyrotor.OpenPresenter(dir, keyrotor.Options{PollInterval: poll})
	if err != nil {
		return err
	}
	defer p.Close()

	c := &counts{}
	server := &http.Server{Addr: envOr("HOST", "") + ":" + envOr("PORT", "8081"), Handler: countsHandler(c), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := server.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			slog.Error("presenter: " + err.Error())
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	client := &http.Client{Transport: p.Transport(nil), Timeout: 2 * time.Second}
	slog.Info("presenter: sending", "target", target, "every", interval)
	loop(ctx, client, target, interval, c)
	_ = server.Close()
	out, _ := json.Marshal(c)
	fmt.Println(string(out))
	return nil
}

// loop sends one request per interval until ctx ends.
func loop(ctx context.Context, client *http.Client, target string, interval time.Duration, c *counts) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		probe(ctx, client, target, c)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func probe(ctx context.Context, client *http.Client, target string, c *counts) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		c.errors.Add(1)
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			c.errors.Add(1)
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		c.ok.Add(1)
	case resp.StatusCode == http.StatusUnauthorized:
		c.rejected.Add(1)
	default:
		c.errors.Add(1)
	}
}

func countsHandler(c *counts) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /counts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c)
	})
	return mux
}

func millis(name string, fallback int) (time.Duration, error) {
	text := os.Getenv(name)
	if text == "" {
		return time.Duration(fallback) * time.Millisecond, nil
	}
	ms, err := strconv.Atoi(text)
	if err != nil || ms <= 0 {
		return 0, fmt.Errorf("%s=%q is not a positive number of milliseconds", name, text)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
