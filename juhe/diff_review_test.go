package juhe

import (
	"context"
	"strings"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// deadOnWriteConn is a connection that, once killed, fails every write
// before a byte goes out: a pooled connection the proxy or the server closed
// while it was idle (the write meets the peer's reset).
type deadOnWriteConn struct {
	net.Conn
	killed *atomic.Bool
}

func (c deadOnWriteConn) Write(p []byte) (int, error) {
	if c.killed.Load() {
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE}
	}
	return c.Conn.Write(p)
}

// killableConns dials connections the test can kill (deadOnWriteConn).
type killableConns struct {
	mu    sync.Mutex
	kills []*atomic.Bool
}

func (k *killableConns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	killed := new(atomic.Bool)
	k.mu.Lock()
	k.kills = append(k.kills, killed)
	k.mu.Unlock()
	return deadOnWriteConn{conn, killed}, nil
}

// killAll kills the connections dialled so far; it returns how many.
func (k *killableConns) killAll() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, killed := range k.kills {
		killed.Store(true)
	}
	return len(k.kills)
}

// Behind a proxy (or with Config.Transport, net/http's Transport), a stale
// pooled connection is replaced by net/http at no cost, for a GET as well.
// Found by a review of the session's diff: a GET made not to be replayed
// (an empty body without GetBody) lost that, net/http's retry of what it
// never wrote (nothingWrittenError wants outgoingLength 0 or GetBody), and
// the failed attempt was counted billable. The change was taken back; the
// GET's silent resend after a written request is documented instead.
func TestDiffReviewProxyPathStalePooledConnectionNotReplaced(t *testing.T) {
	srv := newZzServer(t, func(_ []byte, _, _ int) (string, bool) { return zzOKReply(), false })
	var conns killableConns
	cfg := zzConfig(srv.url)
	cfg.Method = "GET"
	cfg.Retries = -1
	cfg.Transport = &http.Transport{DialContext: conns.dial}
	c := zzNew(t, cfg)

	if _, err := c.Query(t.Context(), zzMobile, zzDate); err != nil {
		t.Fatalf("first query: %v", err)
	}
	conns.killAll() // the pooled connection goes stale
	a, err := c.Query(t.Context(), zzMobile, zzDate)
	if err != nil {
		t.Errorf("second query: %v (attempts %d, billable %d); want an answer: nothing was written on the stale connection, "+
			"which net/http replaces with a new one for a GET without a body", err, a.Attempts, a.Billable)
	}
	if n := srv.read.Load(); n != 2 {
		t.Errorf("the provider read %d requests, want 2", n)
	}
}

// README (Metrics): the code is "`http_STATUS` for a reply that was not
// the API's, such as `http_503`, or `http_200` for an HTML page; `none` when
// no reply came". outcomeOf now labels any error with an HTTP status and no
// error_code by its status, 2xx included: a reply cut short after its head
// (the connection closed mid-body, or the attempt's timeout while the body
// was on its way: "no complete reply within juhe.timeout"), which may well
// be the API's own reply, is counted as code="http_200", the series of the
// HTML pages of a gateway, where it was "none" with the other replies that
// did not come whole.
func TestDiffReviewReplyCutAfterItsHeadIsNotANonAPIReply(t *testing.T) {
	srv := newZzServer(t, func(_ []byte, _, _ int) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(zzOK)) + "\r\n\r\n" + zzOK[:10], true // cut: closed mid-body
	})
	reader := sdkmetric.NewManualReader()
	cfg := zzConfig(srv.url)
	cfg.Retries = -1
	cfg.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	c := zzNew(t, cfg)
	_, err := c.Query(t.Context(), zzMobile, zzDate)
	if err == nil {
		t.Fatal("a reply cut mid-body answered")
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != MetricProviderCalls {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				if code, _ := dp.Attributes.Value("code"); strings.HasPrefix(code.AsString(), "http_2") {
					t.Errorf("a reply cut after its head (%v) counted as code=%s: the label of a non-API reply such as an HTML page", err, code.AsString())
				}
			}
		}
	}
}
