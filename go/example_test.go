package keyrotor_test

import (
	"fmt"
	"log"
	"net/http"

	keyrotor "github.com/keyrotor/keyrotor/go"
)

// The README's "In ten lines", compiled with every test run.
func Example() {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		version, _ := keyrotor.VersionFrom(r.Context())
		fmt.Fprintf(w, "hello, holder of version %d\n", version)
	})

	// Verifier (a server): 401 unless `Authorization: Bearer <key>` is accepted.
	v, err := keyrotor.OpenVerifier("/var/run/keyrotor/orders-api-key", keyrotor.Options{})
	if err != nil {
		log.Fatal(err) // only the first load can fail
	}
	http.Handle("/", v.Middleware(api))

	// Presenter (a client): every request carries the current key.
	p, err := keyrotor.OpenPresenter("/var/run/keyrotor/orders-api-key", keyrotor.Options{})
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: p.Transport(nil)}
	_ = client
}
