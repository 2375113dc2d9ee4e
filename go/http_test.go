package keyrotor

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestTheMiddlewarePassesAnAcceptedKeyWithItsVersion(t *testing.T) {
	k := newKubelet(t)
	k.publish(verifierFiles(7, 3, 4))
	v := openVerifier(t, k.dir, manual(t))
	var seen uint64
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = VersionFrom(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, value := range []string{"Bearer " + key(4), "bearer   " + key(4) + " "} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Authorization", value)
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent || seen != 4 {
			t.Fatalf("%q: %d, version %d", value, rec.Code, seen)
		}
	}
	if _, ok := VersionFrom(httptest.NewRequest("GET", "/", nil).Context()); ok {
		t.Fatal("a version outside the middleware")
	}
}

func TestTheMiddlewareRefusesWithAReasonAndNeverCallsTheHandler(t *testing.T) {
	k := newKubelet(t)
	k.publish(verifierFiles(7, 3, 4))
	v := openVerifier(t, k.dir, manual(t))
	k.publish(verifierFiles(8, 4))
	v.Refresh()
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Fatal("the handler ran for a refused request")
	}))
	for _, c := range []struct {
		values  []string
		refusal string
		auth    string
	}{
		{nil, "missing", "Bearer"},
		{[]string{"Bearer " + key(3)}, "retired", `Bearer error="invalid_token"`},
		{[]string{"Bearer fake-test-key-never-issued-0"}, "unknown", `Bearer error="invalid_token"`},
		{[]string{"Bearer " + key(4), "Bearer " + key(4)}, "malformed", "Bearer"},
		{[]string{"Basic " + key(4)}, "malformed", "Bearer"},
		{[]string{key(4)}, "malformed", "Bearer"},
		{[]string{"Bearer "}, "malformed", "Bearer"},
		{[]string{"Bearer short"}, "malformed", "Bearer"},
		{[]string{"Bearer " + key(4) + " " + key(4)}, "malformed", "Bearer"},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		for _, value := range c.values {
			req.Header.Add("Authorization", value)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized || rec.Header().Get(RefusalHeader) != c.refusal ||
			rec.Header().Get("WWW-Authenticate") != c.auth {
			t.Errorf("%v: %d %v", c.values, rec.Code, rec.Header())
		}
	}
}

func TestAnAPIKeyHeaderCanCarryTheKey(t *testing.T) {
	k := newKubelet(t)
	k.publish(verifierFiles(7, 3))
	v := openVerifier(t, k.dir, manual(t))
	src := HeaderSource("X-Api-Key")
	h := v.MiddlewareFrom(src, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Api-Key", key(3))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("%d", rec.Code)
	}
	req.Header.Set("X-Api-Key", "Bearer "+key(3))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
}

func TestAPresenterTransportReachesAVerifierAcrossARotation(t *testing.T) {
	verifierVol, presenterVol := newKubelet(t), newKubelet(t)
	verifierVol.publish(verifierFiles(7, 3))
	presenterVol.publish(presenterFiles(9, 3))
	v := openVerifier(t, verifierVol.dir, manual(t))
	p := openPresenter(t, presenterVol.dir, manual(t))
	server := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		version, _ := VersionFrom(r.Context())
		io.WriteString(w, "version "+string(rune('0'+version)))
	})))
	defer server.Close()
	client := &http.Client{Transport: p.Transport(nil)}
	get := func() string {
		req, _ := http.NewRequest("GET", server.URL, nil)
		resp, err := client.Do(req)
		must(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if req.Header.Get("Authorization") != "" {
			t.Fatal("the transport changed the caller's request")
		}
		return resp.Status + " " + string(body)
	}
	if got := get(); got != "200 OK version 3" {
		t.Fatal(got)
	}
	// The rotation's order: verifiers accept the new key, then presenters
	// send it, then verifiers drop the old one.
	verifierVol.publish(verifierFiles(8, 3, 4))
	v.Refresh()
	presenterVol.publish(presenterFiles(10, 4))
	p.Refresh()
	if got := get(); got != "200 OK version 4" {
		t.Fatal(got)
	}
	verifierVol.publish(verifierFiles(9, 4))
	v.Refresh()
	if got := get(); got != "200 OK version 4" {
		t.Fatal(got)
	}
}
