package juhe_test

import (
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twosell/twosell/juhe"
)

// Values used by the tests against handlers of their own.
const (
	testKey    = "test-key"
	testOpenID = "test-openid"
	testMobile = "17312345678"
	testDate   = "20240102"
)

// server is an httptest server that counts the requests it saw.
type server struct {
	*httptest.Server
	requests atomic.Int64
}

// newServer serves h, counting requests.
func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	return newServerWith(t, h, nil)
}

// newServerWith serves h, counting requests, and calls connState (if not
// nil) on every change of a connection's state.
func newServerWith(t *testing.T, h http.HandlerFunc, connState func(net.Conn, http.ConnState)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		h(w, r)
	}))
	s.Config.ConnState = connState
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// reply writes a provider reply with error_code code and, for code 0, res.
func reply(w http.ResponseWriter, code, res int) {
	body := map[string]any{"reason": "test", "error_code": code, "result": nil}
	if code == 0 {
		body["reason"] = "成功"
		body["result"] = map[string]any{"res": res, "orderid": "JH0000000001"}
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	_ = json.NewEncoder(w).Encode(body)
}

// answering is a handler that always replies with code (and res 1 on 0).
func answering(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { reply(w, code, 1) }
}

// testConfig is a Config for srv with fast retries, a quiet logger and a
// breaker that does not trip unless a test asks for it.
func testConfig(url string) juhe.Config {
	return juhe.Config{
		BaseURL:    url,
		Key:        testKey,
		OpenID:     testOpenID,
		Backoff:    time.Microsecond,
		MaxBackoff: time.Microsecond,
		Logger:     slog.New(slog.DiscardHandler),
		Breaker:    juhe.BreakerConfig{Failures: 1000},
	}
}

// newClient builds a client for url, letting edit change the test config.
func newClient(t *testing.T, url string, edit func(*juhe.Config)) *juhe.Client {
	t.Helper()
	cfg := testConfig(url)
	if edit != nil {
		edit(&cfg)
	}
	c, err := juhe.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// waitFor polls cond until it holds, failing the test after a generous
// bound. It is for state that only time changes (the breaker's open period,
// which gobreaker measures with the wall clock and cannot be moved).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
