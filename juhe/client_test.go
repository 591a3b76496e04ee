package juhe_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twosell/twosell/juhe"
)

// TestErrorCodes checks, for every code of the provider's table, the class
// Query returns, how many requests it makes (retries only for the
// transient classes) and whether the breaker counts it as a failure.
func TestErrorCodes(t *testing.T) {
	const retries = 2
	tests := []struct {
		code    int
		class   juhe.Class // ignored for answers
		answer  bool
		retried bool
		failure bool // counts against the breaker
	}{
		{code: 0, answer: true},
		{code: 232703, answer: true},
		{code: 232702, class: juhe.ClassRecord},
		{code: 232701, class: juhe.ClassTransient, retried: true, failure: true},
		{code: 232704, class: juhe.ClassTransient, retried: true, failure: true},
		{code: 10014, class: juhe.ClassTransient, retried: true, failure: true},
		{code: 10020, class: juhe.ClassTransient, retried: true, failure: true},
		{code: 10011, class: juhe.ClassQuota, failure: true},
		{code: 10012, class: juhe.ClassQuota, failure: true},
		{code: 10013, class: juhe.ClassQuota, failure: true},
		{code: 10001, class: juhe.ClassFatal, failure: true},
		{code: 10002, class: juhe.ClassFatal, failure: true},
		{code: 10003, class: juhe.ClassFatal, failure: true},
		{code: 10004, class: juhe.ClassFatal, failure: true},
		{code: 10005, class: juhe.ClassFatal, failure: true},
		{code: 10007, class: juhe.ClassFatal, failure: true},
		{code: 10008, class: juhe.ClassFatal, failure: true},
		{code: 10009, class: juhe.ClassFatal, failure: true},
		{code: 10021, class: juhe.ClassFatal, failure: true},
		{code: 10006, class: juhe.ClassUnknown, retried: true, failure: true},
		{code: 999999, class: juhe.ClassUnknown, retried: true, failure: true},
		{code: -1, class: juhe.ClassUnknown, retried: true, failure: true},
	}
	for _, tt := range tests {
		t.Run(tt.class.String()+"/"+strconv.Itoa(tt.code), func(t *testing.T) {
			srv := newServer(t, answering(tt.code))
			c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.Retries = retries })

			a, err := c.Query(t.Context(), testMobile, testDate)
			wantRequests := int64(1)
			if tt.retried {
				wantRequests = 1 + retries
			}
			if got := srv.requests.Load(); got != wantRequests {
				t.Errorf("server saw %d requests, want %d", got, wantRequests)
			}
			if a.Attempts != int(wantRequests) {
				t.Errorf("Attempts = %d, want %d", a.Attempts, wantRequests)
			}
			if tt.answer {
				if err != nil {
					t.Fatalf("Query: %v", err)
				}
				if a.Code != tt.code {
					t.Errorf("Code = %d, want %d", a.Code, tt.code)
				}
				if (tt.code == 232703) != a.NoRecord {
					t.Errorf("NoRecord = %v", a.NoRecord)
				}
			} else {
				class, ok := juhe.ClassOf(err)
				if !ok || class != tt.class {
					t.Fatalf("ClassOf(%v) = %v, %v; want %v", err, class, ok, tt.class)
				}
				var e *juhe.Error
				if !errors.As(err, &e) || e.Code != tt.code || e.HTTPStatus != 200 || e.Op != "POST /twoSellTel/query" {
					t.Errorf("error fields = %+v", e)
				}
				if !strings.HasPrefix(err.Error(), "juhe: ") || !strings.Contains(err.Error(), strconv.Itoa(tt.code)) {
					t.Errorf("message %q should start with juhe: and name the code", err)
				}
				if juhe.IsTransient(err) != tt.retried {
					t.Errorf("IsTransient = %v, want %v", juhe.IsTransient(err), tt.retried)
				}
				checkHelpers(t, err, tt.class)
			}

			// The same outcome with a breaker that opens on the first
			// failure, and no retry to hide it.
			srv2 := newServer(t, answering(tt.code))
			c2 := newClient(t, srv2.URL, func(cfg *juhe.Config) {
				cfg.Retries = -1
				cfg.Breaker.Failures = 1
			})
			_, _ = c2.Query(t.Context(), testMobile, testDate)
			want := juhe.BreakerClosed
			if tt.failure {
				want = juhe.BreakerOpen
			}
			if got := c2.BreakerState(); got != want {
				t.Errorf("breaker after one query: %s, want %s", got, want)
			}
		})
	}
}

// checkHelpers checks that exactly the IsX helpers of class say yes.
func checkHelpers(t *testing.T, err error, class juhe.Class) {
	t.Helper()
	got := map[string]bool{
		"IsRecord":      juhe.IsRecord(err),
		"IsQuota":       juhe.IsQuota(err),
		"IsFatal":       juhe.IsFatal(err),
		"IsUnavailable": juhe.IsUnavailable(err),
		"IsTransport":   juhe.IsTransport(err),
		"IsTransient":   juhe.IsTransient(err),
	}
	want := map[string]bool{
		"IsRecord":      class == juhe.ClassRecord,
		"IsQuota":       class == juhe.ClassQuota,
		"IsFatal":       class == juhe.ClassFatal,
		"IsUnavailable": class == juhe.ClassUnavailable,
		"IsTransport":   class == juhe.ClassTransport,
		"IsTransient":   class == juhe.ClassTransient || class == juhe.ClassTransport || class == juhe.ClassUnknown,
	}
	for name := range want {
		if got[name] != want[name] {
			t.Errorf("%s(%v) = %v, want %v", name, err, got[name], want[name])
		}
	}
}

func TestErrorMessages(t *testing.T) {
	tests := []struct {
		code int
		want string
	}{
		{10001, "juhe: the provider rejected the API key (10001 错误的请求KEY): check juhe.key"},
		{232702, "juhe: the provider rejected the request parameters (232702 参数异常)"},
		{10004, "juhe: the provider rejected the openid (10004 错误的OPENID): check juhe.openid"},
		{10012, "juhe: the API key exceeded its request limit (10012 请求超过次数限制)"},
	}
	for _, tt := range tests {
		srv := newServer(t, answering(tt.code))
		c := newClient(t, srv.URL, nil)
		_, err := c.Query(t.Context(), testMobile, testDate)
		if err == nil || err.Error() != tt.want {
			t.Errorf("code %d: error %q, want %q", tt.code, err, tt.want)
		}
	}
}

func TestClassString(t *testing.T) {
	want := map[juhe.Class]string{
		juhe.ClassUnknown: "unknown", juhe.ClassRecord: "record", juhe.ClassTransient: "transient",
		juhe.ClassQuota: "quota", juhe.ClassFatal: "fatal", juhe.ClassTransport: "transport",
		juhe.ClassUnavailable: "unavailable", juhe.Class(99): "Class(99)",
	}
	for c, s := range want {
		if c.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(c), c.String(), s)
		}
	}
	if _, ok := juhe.ClassOf(context.Canceled); ok {
		t.Error("ClassOf(context.Canceled) reported a class")
	}
	if _, ok := juhe.ClassOf(nil); ok {
		t.Error("ClassOf(nil) reported a class")
	}
}

func TestRetriesStopAtRetries(t *testing.T) {
	for _, retries := range []int{-1, 1, 3, 5} {
		srv := newServer(t, answering(232701))
		c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.Retries = retries })
		a, err := c.Query(t.Context(), testMobile, testDate)
		want := 1 + max(retries, 0)
		if !juhe.IsTransient(err) {
			t.Errorf("retries %d: %v is not transient", retries, err)
		}
		if got := srv.requests.Load(); got != int64(want) || a.Attempts != want {
			t.Errorf("retries %d: server saw %d requests, Attempts %d; want %d", retries, got, a.Attempts, want)
		}
	}
}

func TestRetryThenSuccess(t *testing.T) {
	var n int
	var mu sync.Mutex
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		switch i {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			reply(w, 10014, 0)
		default:
			reply(w, 0, 2)
		}
	})
	c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.Retries = 5 })
	a, err := c.Query(t.Context(), testMobile, testDate)
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	if a.Attempts != 3 || a.Res != 2 || a.Status() != "not_recycled" || a.OrderID != "JH0000000001" || a.Mode != juhe.ModePlain {
		t.Errorf("answer = %+v", a)
	}
}

// block is a handler that holds the request until the client gives up on
// it, announcing its arrival on arrived.
func block(arrived chan<- struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// The server notices a client hanging up only once the request
		// body has been read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}
}

func TestCallerCancellation(t *testing.T) {
	t.Run("canceled during the request", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		srv := newServer(t, block(arrived))
		c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.Breaker.Failures = 1 })
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			<-arrived
			cancel()
		}()
		a, err := c.Query(ctx, testMobile, testDate)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if _, ok := juhe.ClassOf(err); ok {
			t.Errorf("a cancellation is not an *Error: %v", err)
		}
		if a.Attempts != 1 || srv.requests.Load() != 1 {
			t.Errorf("attempts %d, requests %d; want 1, 1 (no retry)", a.Attempts, srv.requests.Load())
		}
		if s := c.BreakerState(); s != juhe.BreakerClosed {
			t.Errorf("breaker %s: the caller's cancellation must not count", s)
		}
	})
	t.Run("caller's deadline", func(t *testing.T) {
		srv := newServer(t, block(nil))
		c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.Breaker.Failures = 1 })
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		_, err := c.Query(ctx, testMobile, testDate)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		if _, ok := juhe.ClassOf(err); ok {
			t.Errorf("the caller's deadline is not an *Error: %v", err)
		}
		if s := c.BreakerState(); s != juhe.BreakerClosed {
			t.Errorf("breaker %s: the caller's deadline must not count", s)
		}
	})
	t.Run("canceled before", func(t *testing.T) {
		srv := newServer(t, answering(0))
		c := newClient(t, srv.URL, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := c.Query(ctx, testMobile, testDate); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if n := srv.requests.Load(); n != 0 {
			t.Errorf("server saw %d requests, want 0", n)
		}
	})
	t.Run("canceled during the backoff", func(t *testing.T) {
		srv := newServer(t, answering(232701))
		ctx, cancel := context.WithCancel(t.Context())
		c := newClient(t, srv.URL, func(cfg *juhe.Config) {
			cfg.Backoff, cfg.MaxBackoff = time.Hour, time.Hour
		})
		done := make(chan error, 1)
		go func() {
			_, err := c.Query(ctx, testMobile, testDate)
			done <- err
		}()
		waitFor(t, "the first request", func() bool { return srv.requests.Load() == 1 })
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if n := srv.requests.Load(); n != 1 {
			t.Errorf("server saw %d requests, want 1", n)
		}
	})
}

func TestAttemptTimeoutIsTransport(t *testing.T) {
	srv := newServer(t, block(nil))
	c := newClient(t, srv.URL, func(cfg *juhe.Config) {
		cfg.Timeout = 20 * time.Millisecond
		cfg.Retries = 1
		cfg.Breaker.Failures = 2
	})
	a, err := c.Query(t.Context(), testMobile, testDate)
	if !juhe.IsTransport(err) {
		t.Fatalf("err = %v, want a transport error", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("an attempt's timeout must not look like the caller's deadline: %v", err)
	}
	if !strings.Contains(err.Error(), "juhe.timeout") {
		t.Errorf("message %q should name juhe.timeout", err)
	}
	if a.Attempts != 2 {
		t.Errorf("Attempts = %d, want 2 (timeouts are retried)", a.Attempts)
	}
	if s := c.BreakerState(); s != juhe.BreakerOpen {
		t.Errorf("breaker %s: two attempt timeouts are two provider faults", s)
	}
}

func TestTransportFaults(t *testing.T) {
	tests := []struct {
		name   string
		h      http.HandlerFunc
		status int
		text   string
	}{
		{"not json", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>busy</html>")) }, 200, "undecodable reply"},
		{"no error_code", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"reason":"ok"}`)) }, 200, "no error_code"},
		{"null result", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"reason":"成功","result":null,"error_code":0}`))
		}, 200, "without a result"},
		{"res 7", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"reason":"成功","result":{"res":7,"orderid":"JH1"},"error_code":0}`))
		}, 200, "result.res is 7"},
		{"truncated", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"reason":"成功","result":{"res":1,`))
		}, 200, "undecodable reply"},
		{"huge", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"reason":"` + strings.Repeat("x", 1<<20) + `","error_code":0}`))
		}, 200, "larger than 64 KiB"},
		{"HTTP 500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, 500, "HTTP 500 Internal Server Error"},
		{"HTTP 503 with a valid body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(503)
			w.Write([]byte(`{"reason":"成功","result":{"res":1,"orderid":"JH1"},"error_code":0}`))
		}, 503, "HTTP 503"},
		{"HTTP 404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, 404, "HTTP 404 Not Found (the provider gives its errors as a reply's error_code: is juhe.url its API's"},
		{"HTTP 403", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(403) }, 403, "HTTP 403 Forbidden (the provider gives its errors"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://example.invalid/steal", http.StatusFound)
		}, 302, "HTTP 302"},
		{"connection reset", resetConn, 0, "request failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.h)
			c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.Retries = 1 })
			_, err := c.Query(t.Context(), testMobile, testDate)
			if !juhe.IsTransport(err) {
				t.Fatalf("err = %v, want a transport error", err)
			}
			var e *juhe.Error
			errors.As(err, &e)
			if e.HTTPStatus != tt.status {
				t.Errorf("HTTPStatus = %d, want %d", e.HTTPStatus, tt.status)
			}
			if !strings.Contains(err.Error(), tt.text) || !strings.HasPrefix(err.Error(), "juhe: POST /twoSellTel/query: ") {
				t.Errorf("message %q should start with the op and contain %q", err, tt.text)
			}
			if n := srv.requests.Load(); n != 2 {
				t.Errorf("server saw %d requests, want 2 (transport faults are retried)", n)
			}
		})
	}
}

// resetConn answers with a TCP reset.
func resetConn(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close with RST instead of FIN
	}
	conn.Close()
}

func TestInvalidInputSendsNothing(t *testing.T) {
	srv := newServer(t, answering(0))
	c := newClient(t, srv.URL, nil)
	for _, in := range []struct{ mobile, date string }{
		{"12345678901", testDate},
		{"1731234567", testDate},
		{"173123456789", testDate},
		{"1731234567x", testDate},
		{"+8617312345678", testDate},
		{testMobile, "2024-01-02"},
		{testMobile, "20241302"},
		{testMobile, "20240230"},
		{testMobile, ""},
	} {
		a, err := c.Query(t.Context(), in.mobile, in.date)
		if !juhe.IsRecord(err) || a.Attempts != 0 {
			t.Errorf("Query(%q, %q) = %+v, %v; want a record error and no attempt", in.mobile, in.date, a, err)
		}
		if in.mobile != testMobile && strings.Contains(err.Error(), in.mobile) {
			t.Errorf("message %q quotes the mobile", err)
		}
	}
	if n := srv.requests.Load(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}

func TestBreaker(t *testing.T) {
	var healthy atomic.Bool
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if healthy.Load() {
			reply(w, 0, 1)
			return
		}
		reply(w, 10014, 0)
	})
	var mu sync.Mutex
	var changes []string
	var logs syncBuffer
	var c *juhe.Client
	c = newClient(t, srv.URL, func(cfg *juhe.Config) {
		cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		cfg.Retries = -1
		cfg.Breaker = juhe.BreakerConfig{Failures: 3, OpenFor: 10 * time.Millisecond}
		cfg.OnStateChange = func(from, to string) {
			_ = c.BreakerState() // must not deadlock
			mu.Lock()
			changes = append(changes, from+">"+to)
			mu.Unlock()
		}
	})

	for i := range 3 {
		if _, err := c.Query(t.Context(), testMobile, testDate); !juhe.IsTransient(err) {
			t.Fatalf("query %d: %v, want transient", i, err)
		}
	}
	if s := c.BreakerState(); s != juhe.BreakerOpen {
		t.Fatalf("after 3 faults the breaker is %s, want open", s)
	}
	before := srv.requests.Load()
	a, err := c.Query(t.Context(), testMobile, testDate)
	if !juhe.IsUnavailable(err) || a.Attempts != 0 {
		t.Fatalf("query while open = %+v, %v; want unavailable with no attempt", a, err)
	}
	checkHelpers(t, err, juhe.ClassUnavailable)
	// Why it opened, at the default log level and in every refusal: the
	// last fault (found by review: a wrong juhe.url showed only that the
	// breaker had opened).
	if !strings.Contains(err.Error(), "(the last: ") || !strings.Contains(err.Error(), "10014") {
		t.Errorf("refusal %q does not name the last fault", err)
	}
	if !strings.Contains(logs.String(), `"to":"open","last_fault":"`) || !strings.Contains(logs.String(), `10014`) {
		t.Errorf("the opening's log does not name the last fault:\n%s", logs.String())
	}
	if srv.requests.Load() != before {
		t.Fatalf("a request was sent while the breaker was open")
	}

	// A failed trial call opens it again.
	waitFor(t, "half-open", func() bool { return c.BreakerState() == juhe.BreakerHalfOpen })
	if _, err := c.Query(t.Context(), testMobile, testDate); !juhe.IsTransient(err) {
		t.Fatalf("trial call: %v, want transient", err)
	}
	if s := c.BreakerState(); s != juhe.BreakerOpen {
		t.Fatalf("after a failed trial the breaker is %s, want open", s)
	}

	// A successful trial call closes it.
	healthy.Store(true)
	waitFor(t, "half-open", func() bool { return c.BreakerState() == juhe.BreakerHalfOpen })
	if _, err := c.Query(t.Context(), testMobile, testDate); err != nil {
		t.Fatalf("trial call: %v", err)
	}
	if s := c.BreakerState(); s != juhe.BreakerClosed {
		t.Fatalf("after a successful trial the breaker is %s, want closed", s)
	}

	mu.Lock()
	defer mu.Unlock()
	want := "closed>open open>half-open half-open>open open>half-open half-open>closed"
	if got := strings.Join(changes, " "); got != want {
		t.Errorf("state changes:\n got %s\nwant %s", got, want)
	}
	if n := strings.Count(logs.String(), `"msg":"juhe: circuit breaker state changed"`); n != 5 {
		t.Errorf("%d log lines for 5 state changes:\n%s", n, logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBreakerHalfOpenAdmitsLimitedTrials(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	var failing atomic.Bool
	failing.Store(true)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			reply(w, 232704, 0)
			return
		}
		arrived <- struct{}{}
		<-release
		reply(w, 0, 3)
	})
	c := newClient(t, srv.URL, func(cfg *juhe.Config) {
		cfg.Retries = -1
		cfg.Breaker = juhe.BreakerConfig{Failures: 1, OpenFor: 10 * time.Millisecond, HalfOpenRequests: 1}
	})
	if _, err := c.Query(t.Context(), testMobile, testDate); !juhe.IsTransient(err) {
		t.Fatalf("first query: %v", err)
	}
	failing.Store(false)
	waitFor(t, "half-open", func() bool { return c.BreakerState() == juhe.BreakerHalfOpen })

	trial := make(chan error, 1)
	go func() {
		_, err := c.Query(t.Context(), testMobile, testDate)
		trial <- err
	}()
	<-arrived
	_, err := c.Query(t.Context(), testMobile, testDate)
	if !juhe.IsUnavailable(err) || !strings.Contains(err.Error(), "half-open") {
		t.Errorf("second call during the trial: %v, want unavailable (half-open)", err)
	}
	close(release)
	if err := <-trial; err != nil {
		t.Fatalf("trial: %v", err)
	}
	if s := c.BreakerState(); s != juhe.BreakerClosed {
		t.Errorf("breaker %s, want closed", s)
	}
}

func TestRecordAnswersNeverTripTheBreaker(t *testing.T) {
	for _, code := range []int{232702, 232703} {
		srv := newServer(t, answering(code))
		c := newClient(t, srv.URL, func(cfg *juhe.Config) {
			cfg.Breaker.Failures = 1
			cfg.BadParamFatalAfter = -1
		})
		for range 10 {
			_, _ = c.Query(t.Context(), testMobile, testDate)
		}
		if s := c.BreakerState(); s != juhe.BreakerClosed {
			t.Errorf("code %d: breaker %s, want closed", code, s)
		}
		if n := srv.requests.Load(); n != 10 {
			t.Errorf("code %d: server saw %d requests, want 10", code, n)
		}
	}
}

func TestBadParamRun(t *testing.T) {
	var code atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { reply(w, int(code.Load()), 1) })
	query := func(c *juhe.Client) error {
		_, err := c.Query(t.Context(), testMobile, testDate)
		return err
	}

	t.Run("fatal at exactly the limit", func(t *testing.T) {
		code.Store(232702)
		c := newClient(t, srv.URL, func(cfg *juhe.Config) {
			cfg.Mode = juhe.ModeAES
			cfg.OpenID = "OPENID-9b2d"
			cfg.BadParamFatalAfter = 5
		})
		for i := 1; i < 5; i++ {
			if err := query(c); !juhe.IsRecord(err) {
				t.Fatalf("answer %d: %v, want a record error", i, err)
			}
		}
		err := query(c)
		if !juhe.IsFatal(err) {
			t.Fatalf("answer 5: %v, want fatal", err)
		}
		want := "juhe: 5 bad-parameter answers in a row: the provider cannot read the numbers; check juhe.mode (aes) and juhe.openid"
		if err.Error() != want {
			t.Errorf("message:\n got %q\nwant %q", err, want)
		}
		var e *juhe.Error
		if errors.As(err, &e); e.Code != 232702 {
			t.Errorf("Code = %d, want 232702", e.Code)
		}
		if err := query(c); !juhe.IsFatal(err) {
			t.Errorf("answer 6: %v, want still fatal", err)
		}
	})
	t.Run("an answer resets the run", func(t *testing.T) {
		c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.BadParamFatalAfter = 3 })
		for _, step := range []int{232702, 232702, 232703, 232702, 232702, 0, 232702, 232702} {
			code.Store(int64(step))
			if err := query(c); juhe.IsFatal(err) {
				t.Fatalf("fatal after %d: %v", step, err)
			}
		}
		code.Store(232702)
		err := query(c)
		if !juhe.IsFatal(err) {
			t.Fatalf("third in a row: %v, want fatal", err)
		}
		if !strings.Contains(err.Error(), "check juhe.mode (plain)") || strings.Contains(err.Error(), "openid") {
			t.Errorf("message %q: plain mode should name juhe.mode only", err)
		}
	})
	t.Run("provider faults neither count nor reset", func(t *testing.T) {
		c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.BadParamFatalAfter = 2; cfg.Retries = -1 })
		code.Store(232702)
		_ = query(c)
		code.Store(10014)
		_ = query(c)
		code.Store(232702)
		if err := query(c); !juhe.IsFatal(err) {
			t.Fatalf("%v, want fatal", err)
		}
	})
	t.Run("negative never fatal", func(t *testing.T) {
		code.Store(232702)
		c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.BadParamFatalAfter = -1 })
		for range 50 {
			if err := query(c); !juhe.IsRecord(err) {
				t.Fatalf("%v, want a record error", err)
			}
		}
	})
}

// TestConnectionReuse runs rounds of concurrent queries (the handler holds
// each round until all its requests are in flight, so they need distinct
// connections) and counts the connections the server accepted.
func TestConnectionReuse(t *testing.T) {
	const workers, rounds = 8, 25
	pooled := connectionsFor(t, workers, rounds, workers)
	// Go's default pool keeps 2 idle connections: most of every round's
	// connections are closed and dialled again.
	small := connectionsFor(t, workers, rounds, 2)
	t.Logf("%d workers x %d rounds: %d connections with MaxConns %d, %d with MaxConns 2",
		workers, rounds, pooled, workers, small)
	if pooled > workers*rounds/4 {
		t.Errorf("%d connections for %d requests: the pool is not reused", pooled, workers*rounds)
	}
	if small <= pooled {
		t.Errorf("a pool of 2 opened %d connections, a pool of %d opened %d: the test does not discriminate",
			small, workers, pooled)
	}
}

// connectionsFor returns how many connections the server accepted for
// rounds of workers concurrent queries from a client with maxConns.
func connectionsFor(t *testing.T, workers, rounds, maxConns int) int {
	var mu sync.Mutex
	newConns := 0
	b := newBarrier(workers)
	srv := newServerWith(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		b.await(r.Context())
		reply(w, 0, 1)
	}, func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			newConns++
			mu.Unlock()
		}
	})
	c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.MaxConns = maxConns })

	// Workers also wait for each other between rounds, so that every
	// round's connections are back in the pool at once: a pool of 2 must
	// then close the rest, on every run, whatever the scheduler does.
	between := newBarrier(workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				if _, err := c.Query(t.Context(), testMobile, testDate); err != nil {
					t.Error(err)
					return
				}
				between.await(t.Context())
			}
		})
	}
	wg.Wait()
	if n := srv.requests.Load(); n != int64(workers*rounds) {
		t.Fatalf("server saw %d requests, want %d", n, workers*rounds)
	}
	mu.Lock()
	defer mu.Unlock()
	return newConns
}

// barrier releases its waiters n at a time.
type barrier struct {
	mu      sync.Mutex
	n, in   int
	release chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, release: make(chan struct{})} }

// await returns when n callers are waiting, or when ctx is done.
func (b *barrier) await(ctx context.Context) {
	b.mu.Lock()
	b.in++
	ch := b.release
	if b.in == b.n {
		close(b.release)
		b.in, b.release = 0, make(chan struct{})
	}
	b.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// Answer.Billable counts the attempts the provider may have billed: the
// answer, and each whose outcome is unknown; not a known error code, nor a
// connection never made. WithRetryGate is asked before each retry, told
// whether the attempt before it may have been billed, and its error ends
// the query with the last attempt's fault.
func TestBillableAttemptsAndRetryGate(t *testing.T) {
	answer := `{"reason":"成功","result":{"res":1,"orderid":"JH1"},"error_code":0}`
	var n atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			resetConn(w, r) // cut off: may have been billed
		case 2:
			w.Write([]byte(`{"reason":"数据源超时","result":null,"error_code":232701}`)) // refused: not billed
		default:
			w.Write([]byte(answer))
		}
	})
	c := newClient(t, srv.URL, func(cfg *juhe.Config) { cfg.Retries = 2 })
	var gates []bool
	ctx := juhe.WithRetryGate(t.Context(), func(_ context.Context, billed bool) error { gates = append(gates, billed); return nil })
	a, err := c.Query(ctx, testMobile, testDate)
	if err != nil || a.Attempts != 3 || a.Billable != 2 || a.BillableRequests != 0b101 || !slices.Equal(gates, []bool{true, false}) {
		t.Errorf("answer %+v, %v, gates told %v; want 3 attempts, 2 billable (the cut-off one and the answer: requests 0b101), 2 gates told billed, then not", a, err, gates)
	}

	n.Store(0)
	refused := errors.New("no budget left")
	ctx = juhe.WithRetryGate(t.Context(), func(context.Context, bool) error { return refused })
	a, err = c.Query(ctx, testMobile, testDate)
	if !juhe.IsTransport(err) || errors.Is(err, refused) || a.Attempts != 1 || a.Billable != 1 || a.BillableRequests != 1 {
		t.Errorf("gate refusing: %+v, %v; want the first attempt's transport fault, 1 attempt, billable", a, err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there: the connection is refused
	a, err = newClient(t, "http://"+addr, func(cfg *juhe.Config) { cfg.Retries = 1 }).Query(t.Context(), testMobile, testDate)
	if err == nil || a.Attempts != 2 || a.Billable != 0 {
		t.Errorf("connection refused: %+v, %v; want 2 attempts, none billable", a, err)
	}
}

// The order id is the provider's text: one that echoes the request (a
// gateway in front of the provider) carries neither a secret nor the
// mobile into the answer, which goes into the output, the ledger and its
// export. Found by review (the mobile by a second one).
func TestOrderIDEchoingTheKeyIsRedacted(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		fmt.Fprintf(w, `{"reason":"成功","result":{"res":1,"orderid":"JH-%s-%s-%s"},"error_code":0}`,
			r.Form.Get("key"), r.Form.Get("mobile"), r.Form.Get("date"))
	})
	c := newClient(t, srv.URL, nil)
	a, err := c.Query(t.Context(), testMobile, testDate)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(a.OrderID, testKey) || strings.Contains(a.OrderID, testMobile) ||
		!strings.HasPrefix(a.OrderID, "JH-") || !strings.HasSuffix(a.OrderID, testDate) {
		t.Errorf("order id %q: want the key and the mobile masked, the rest kept", a.OrderID)
	}
}
