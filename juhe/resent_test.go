package juhe

// Answer.Resent counts only the requests net/http sent again after the one
// before had reached the socket. From a review of b13257e, which counted
// WroteRequest events: each test failed on it for the reason its comment
// gives.

import (
	"bufio"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Behind a proxy (pooledTransport): net/http reports WroteRequest (Err nil)
// once the request is in the connection's bufio.Writer, before the flush to
// the socket. A reused connection whose flush fails before a byte is
// written (nothingWrittenError) is replaced by net/http, which sends the
// request once more: two WroteRequest events, one request on the wire.
// Counted from those events, Answer.Resent was 1, and the cost controls
// charged a budget unit and wrote an "unavailable" ledger record for a
// request the provider never received; for POST too.
func TestResentIsNotARequestNeverWritten(t *testing.T) {
	for _, method := range []string{"POST", "GET"} {
		t.Run(method, func(t *testing.T) {
			srv := newZzServer(t, func([]byte, int, int) (string, bool) { return zzOKReply(), false })
			cfg := zzConfig(srv.url)
			cfg.Method = method
			cfg.Retries = -1
			c := zzNew(t, cfg)
			zzProxyPath(c, cfg)
			// As pooledTransport dials, over a connection the test can kill.
			var conns killableConns
			c.pooled.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := conns.dial(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &countingConn{Conn: conn}, nil
			}
			if _, err := c.Query(t.Context(), zzMobile, zzDate); err != nil {
				t.Fatal(err)
			}
			conns.killAll() // the idle connection: its next write fails, nothing sent
			a, err := c.Query(t.Context(), zzMobile, zzDate)
			if err != nil {
				t.Fatal(err)
			}
			if n := srv.read.Load(); a.Resent != 0 || n != 2 {
				t.Errorf("the provider read %d requests (want 2: one per query); the second query's answer counts Resent %d: "+
					"a request net/http never wrote, replaced on a fresh connection, is charged as paid", n, a.Resent)
			}
		})
	}
}

// The same on the client's own direct transport when the query is traced
// (the net/http request stack over directTransport): exchange's req.Write
// into the connection's bufio.Writer fires WroteRequest (Err nil) before
// the flush; a pooled connection whose flush fails is "unsent" and the
// request is sent again on a new connection (RoundTrip's loop), and
// Answer.Resent says 1 for the one request the provider read. reply.go: "0
// on the fast path and for POST, which are never sent again but by a
// retry".
func TestResentIsZeroOnTheTracedDirectTransport(t *testing.T) {
	srv := newZzServer(t, func([]byte, int, int) (string, bool) { return zzOKReply(), false })
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg := zzConfig(srv.url)
	cfg.Retries = -1
	cfg.TracerProvider = tp
	c := zzNew(t, cfg)
	if c.direct == nil {
		t.Fatal("setup: no direct transport")
	}
	// A pooled connection that the server reset while it was idle: its
	// flush fails before a byte goes out.
	raw, err := net.Dial("tcp", srv.url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	killed := new(atomic.Bool)
	killed.Store(true)
	conn := deadOnWriteConn{raw, killed}
	dc := &directConn{conn: conn, head: headLimit{r: conn, n: -1}, bw: bufio.NewWriterSize(conn, 4096)}
	dc.br = bufio.NewReaderSize(&dc.head, 4096)
	dc.poison = func() { _ = dc.conn.SetDeadline(time.Unix(1, 0)) }
	c.direct.idle <- dc

	ctx, span := tp.Tracer("test").Start(t.Context(), "process")
	a, err := c.Query(ctx, zzMobile, zzDate)
	span.End()
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.read.Load(); a.Resent != 0 || n != 1 {
		t.Errorf("POST on the direct transport, traced: the provider read %d request(s), the answer counts Resent %d, want 0", n, a.Resent)
	}
}
