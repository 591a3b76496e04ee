package juhe_test

// Found by a review of "an unknown outcome is paid" (8eb32d1): Answer.Billable
// against the API document and "a request never sent is not billable".

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twosell/twosell/juhe"
)

// The API document's 10014 (系统内部异常) carries the note "调用充值类业务时，
// 请务必联系客服或通过订单查询接口检测订单，避免造成损失": the provider itself
// says the outcome of a request answered 10014 is uncertain (an order may
// exist). README ("Every request counts") cites that very note as why an
// unknown outcome is paid: 10014 is billable.
func TestBillable10014IsUncertain(t *testing.T) {
	var n atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			reply(w, 10014, 0) // 系统内部异常: the document warns the order may exist
			return
		}
		reply(w, 0, 1)
	})
	c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.Retries = 1 })
	a, err := c.Query(t.Context(), testMobile, testDate)
	if err != nil {
		t.Fatal(err)
	}
	if a.Attempts != 2 || a.Billable != 2 {
		t.Errorf("10014 then an answer: %d attempts, %d billable; want 2 billable (10014's outcome is uncertain per the API document)", a.Attempts, a.Billable)
	}
}

// A TLS handshake that fails (the provider's certificate is not trusted)
// never sent the request: the server saw none, nothing can be billed. (It
// was counted billable: only a *net.OpError with Op "dial" was taken as
// "never sent", and a TLS failure is not one.)
func TestBillableTLSFailureNeverSent(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		reply(w, 0, 1)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	// No RootCAs: the test server's certificate is not trusted.
	c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.Retries = 1 })
	a, err := c.Query(t.Context(), testMobile, testDate)
	if err == nil {
		t.Fatal("want a TLS failure")
	}
	if requests.Load() != 0 || a.Billable != 0 {
		t.Errorf("TLS handshake refused (%v): the server saw %d requests, Billable %d; want 0 billable (never sent)", err, requests.Load(), a.Billable)
	}
}

// A connection whose setup does not complete within juhe.timeout (here a
// TLS handshake the peer never answers; a SYN dropped by a firewall is the
// same) never carried the request, and is not billable. (The attempt's
// timeout turned the dial error into timeoutError, which wraps nothing: a
// provider out of reach burnt the daily budget on requests never sent, and
// wrote an "unavailable" call record for each.)
func TestBillableSetupTimeoutNeverSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never a byte of TLS
		}
	}()
	c := newClient(t, "https://"+ln.Addr().String(), func(cfg *juhe.Config) {
		cfg.Retries = -1
		cfg.Timeout = 200 * time.Millisecond // the attempt's bound; the outcome does not depend on it
	})
	a, err := c.Query(t.Context(), testMobile, testDate)
	if !juhe.IsTransport(err) {
		t.Fatalf("want a transport fault, got %v", err)
	}
	conn := <-accepted // the TCP connection was made; the TLS handshake never completed
	defer conn.Close()
	if a.Billable != 0 {
		t.Errorf("handshake never completed (%v): Billable %d, want 0 (no request was written)", err, a.Billable)
	}
}
