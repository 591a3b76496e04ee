package juhe_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
)

// The key is refused over plain http to a host that is not loopback, at
// New (that is, at start-up), unless AllowInsecure says the network is
// trusted.
func TestPlainHTTPRefused(t *testing.T) {
	tests := []struct {
		url      string
		insecure bool // InsecureURL's answer
	}{
		{"https://apis.juhe.cn", false},
		{"http://apis.juhe.cn", true},
		{"HTTP://apis.juhe.cn:80/prefix", true},
		{"http://10.0.0.7:8088", true},
		{"http://0.0.0.0:8088", true},
		{"http://localhost:8088", false},
		{"http://LOCALHOST", false},
		{"http://127.0.0.1:8088", false},
		{"http://127.3.2.1", false},
		{"http://[::1]:8088", false},
		{"http://[::ffff:127.0.0.1]:8088", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := juhe.InsecureURL(u); got != tt.insecure {
				t.Errorf("InsecureURL = %v, want %v", got, tt.insecure)
			}
			cfg := testConfig(tt.url)
			_, err = juhe.New(cfg)
			if tt.insecure {
				if err == nil || !strings.Contains(err.Error(), "juhe.allow_insecure") || !strings.Contains(err.Error(), "clear text") {
					t.Errorf("New = %v, want a refusal naming juhe.allow_insecure", err)
				}
				if err != nil && strings.Contains(err.Error(), testKey) {
					t.Errorf("the refusal names the key: %v", err)
				}
				cfg.AllowInsecure = true
				if _, err := juhe.New(cfg); err != nil {
					t.Errorf("New with AllowInsecure: %v", err)
				}
			} else if err != nil {
				t.Errorf("New: %v", err)
			}
		})
	}
}

// A provider (or gateway) behind a private CA: trusted through RootCAs,
// refused without it, and the refusal is a transport fault that does not
// carry the key.
func TestCustomCA(t *testing.T) {
	sim, err := juhesim.New(juhesim.Config{Keys: []string{testKey}, Population: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(sim)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())

	trusted := newClient(t, srv.URL, func(c *juhe.Config) { c.RootCAs = pool })
	if a, err := trusted.Query(t.Context(), testMobile, testDate); err != nil || a.Status() == "" {
		t.Fatalf("Query through the private CA = %+v, %v", a, err)
	}

	untrusted := newClient(t, srv.URL, func(c *juhe.Config) { c.Retries = -1 })
	_, err = untrusted.Query(t.Context(), testMobile, testDate)
	if c, _ := juhe.ClassOf(err); c != juhe.ClassTransport || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Query without the CA = %v (class %v), want a transport fault about the certificate", err, c)
	}
	if strings.Contains(err.Error(), testKey) {
		t.Errorf("the error carries the key: %v", err)
	}
}

// The provider's own text is redacted before it is quoted and cut to
// length, so that neither escaping nor the cut can let part of a secret
// through.
func TestUnknownReasonRedactedBeforeCut(t *testing.T) {
	const key = `k"ey-Ω-2f9c1e7d4b` // escaped by %q, so redaction after quoting would miss it
	for _, pad := range []int{0, 180, 190, 195} {
		t.Run(fmt.Sprint(pad), func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm()
				reason := strings.Repeat("x", pad) + "echo " + r.Form.Get("key")
				fmt.Fprintf(w, `{"reason":%q,"result":null,"error_code":4242}`, reason)
			})
			c := newClient(t, srv.URL, func(c *juhe.Config) { c.Key = key; c.Retries = -1 })
			_, err := c.Query(t.Context(), testMobile, testDate)
			if cl, _ := juhe.ClassOf(err); cl != juhe.ClassUnknown {
				t.Fatalf("err = %v, want an unknown code", err)
			}
			msg := err.Error()
			for _, part := range []string{key[:5], key[len(key)-6:], `k\"ey`} {
				if strings.Contains(msg, part) {
					t.Errorf("part %q of the key leaked: %s", part, msg)
				}
			}
		})
	}
}

func TestRedactorAdd(t *testing.T) {
	r := juhe.NewRedactor("first-secret")
	if got := r.Redact("a first-secret b second-secret"); got != "a *** b second-secret" {
		t.Fatalf("Redact = %q", got)
	}
	r.Add("second-secret", "", "first-secret")
	if got := r.Redact("a first-secret b second-secret c second%2Dsecret"); got != "a *** b *** c second%2Dsecret" {
		t.Fatalf("after Add: %q", got)
	}
	r.Add("a b/c")
	if got := r.Redact("x=a+b%2Fc y=a%20b%2Fc"); got != "x=*** y=***" {
		t.Fatalf("encoded forms: %q", got)
	}
}

// Over TLS, an idle connection the provider closed (a close_notify, then
// its end) is replaced before anything is written on it, and one that only
// got a session ticket after the handshake (TLS 1.3) is reused: both at no
// attempt's cost, traced or not.
func TestTLSIdleConnections(t *testing.T) {
	sim, err := juhesim.New(juhesim.Config{Keys: []string{testKey}, Population: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(sim)
	var opened atomic.Int64
	closed := make(chan struct{}, 100)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			closed <- struct{}{}
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for _, traced := range []bool{false, true} {
		c := newClient(t, srv.URL, func(c *juhe.Config) {
			c.RootCAs, c.Retries = pool, -1
			if traced {
				c.TracerProvider = tp
			}
		})
		query := func(what string) {
			t.Helper()
			if a, err := c.Query(t.Context(), testMobile, testDate); err != nil || a.Attempts != 1 {
				t.Fatalf("traced=%v, %s: %+v, %v", traced, what, a, err)
			}
		}
		before := opened.Load()
		query("first")
		query("reused after the session ticket")
		if n := opened.Load() - before; n != 1 {
			t.Errorf("traced=%v: %d connections for two queries, want 1", traced, n)
		}
		srv.CloseClientConnections() // close_notify and the end, on the idle connection
		<-closed
		query("after the provider closed the idle connection")
		if n := opened.Load() - before; n != 2 {
			t.Errorf("traced=%v: %d connections, want 2", traced, n)
		}
	}
}
