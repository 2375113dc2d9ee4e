// Command verifier is keyrotor's example API server: GET / answers 200 when
// the request's `Authorization: Bearer <key>` is accepted, 401 otherwise.
// The accepted keys are cached in memory by the library, which follows the
// mounted Secret and confirms what this process loaded through the
// handshake directory.
//
// Environment: KEY_DIR (the mounted verifier Secret, required), PORT
// (default 8080), KEYROTOR_HANDSHAKE_DIR (shared with `keyrotor reporter
// --handshake`; optional), TRAFFIC=1 (write last-seen for Traffic mode),
// POLL_MS (how often the Secret is checked, default 1000; "off" loads it
// once and never again: an app that caches its keys forever).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	keyrotor "github.com/keyrotor/keyrotor/go"
)

func main() {
	if err := run(); err != nil {
		slog.Error("verifier: " + err.Error())
		os.Exit(1)
	}
}

func run() error {
	dir := os.Getenv("KEY_DIR")
	if dir == "" {
		return errors.New("KEY_DIR is not set")
	}
	poll, err := pollInterval(os.Getenv("POLL_MS"))
	if err != nil {
		return err
	}
	v, err := keyrotor.OpenVerifier(dir, keyrotor.Options{PollInterval: poll, Traffic: os.Getenv("TRAFFIC") == "1"})
	if err != nil {
		return err
	}
	defer v.Close()
	server := &http.Server{Addr: envOr("HOST", "") + ":" + envOr("PORT", "8080"), Handler: routes(v), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(shutdown)
	}()
	slog.Info("verifier: listening", "addr", server.Addr, "dir", dir)
	if err := server.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// routes: GET / behind the key check; GET /healthz for probes.
func routes(v *keyrotor.Verifier) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		version, _ := keyrotor.VersionFrom(r.Context())
		fmt.Fprintf(w, "ok: version %d\n", version)
	})))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}

// pollInterval reads POLL_MS: empty is the library's default, "off" never.
func pollInterval(text string) (time.Duration, error) {
	switch text {
	case "":
		return 0, nil
	case "off":
		return -1, nil
	}
	ms, err := strconv.Atoi(text)
	if err != nil || ms <= 0 {
		return 0, fmt.Errorf("POLL_MS=%q is not a positive number of milliseconds or \"off\"", text)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
