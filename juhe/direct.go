package juhe

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// directTransport is an HTTP/1.1 transport to the one host the client talks
// to: persistent connections from a pool, each carrying one request at a
// time, written and read on the caller's goroutine.
//
// net/http's Transport runs two goroutines per connection and hands every
// request and response between them and the caller over channels; against a
// provider answering hundreds of calls a second that hand-off, not the
// network, was most of the client's CPU (twosell bench). This transport does
// one write and the reads the response needs, and nothing else. It is used
// when no proxy applies to the provider's URL; behind a proxy the client
// keeps net/http's Transport, which speaks CONNECT.
type directTransport struct {
	addr    string      // host:port
	tlsConf *tls.Config // nil for plain http
	dialer  net.Dialer
	idle    chan *directConn // idle connections; its capacity is the pool's size
	closed  atomic.Bool      // Client.Close: a connection handed back is closed, not kept
}

// close closes the idle connections, and from now on each one handed back.
func (t *directTransport) close() {
	t.closed.Store(true)
	for {
		select {
		case c := <-t.idle:
			c.conn.Close()
		default:
			return
		}
	}
}

type directConn struct {
	conn   net.Conn
	br     *bufio.Reader // reads through head
	head   headLimit
	bw     *bufio.Writer
	poison func() // interrupts blocked I/O with a deadline in the past
}

// errClosedBeforeReply is a connection that ended after the request was
// written and before any byte of a reply: a transport fault, retried.
var errClosedBeforeReply = errors.New("the provider closed the connection before replying (the request may have been read)")

// idleState is what an idle connection holds (peekIdle).
type idleState uint8

const (
	idleQuiet  idleState = iota // nothing (or nothing this system can tell): usable
	idleClosed                  // the server's end, or a reset
	idleBytes                   // bytes no request asked for
)

// alive reports whether c, idle, can carry a request: the server has not
// closed it and sent nothing on it. On TLS, bytes can be a session ticket
// (TLS 1.3 sends it after the handshake), which crypto/tls takes in while
// reading, or a close_notify alert: read for at most a millisecond to tell
// them apart. On plain http any byte is one no request asked for.
func (c *directConn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	switch peekIdle(c.conn) {
	case idleClosed:
		return false
	case idleBytes:
		if _, ok := c.conn.(*tls.Conn); !ok {
			return false
		}
		if err := c.conn.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
			return false
		}
		_, err := c.br.Peek(1)
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout() && c.conn.SetReadDeadline(time.Time{}) == nil
	}
	return true
}

// headLimit caps what http.ReadResponse may read of a reply's head (the
// traced path's exchange): it has no cap of its own, and net/http's
// Transport sets one (10 MiB); a reply whose head never ended was buffered
// whole. The wire path's readHead counts its own (maxHeadBytes).
type headLimit struct {
	r io.Reader
	n int // bytes left while armed; -1: not armed
}

func (l *headLimit) Read(p []byte) (int, error) {
	switch {
	case l.n < 0:
		return l.r.Read(p)
	case l.n == 0:
		return 0, errHeadTooLong
	}
	k, err := l.r.Read(p[:min(len(p), l.n)])
	l.n -= k
	return k, err
}

// maxInformational is how many informational (1xx) replies may precede a
// reply, as net/http allows.
const maxInformational = 5

// newDirectTransport returns a transport for base's host, or nil when a
// proxy applies to it (see http.ProxyFromEnvironment).
func newDirectTransport(base *url.URL, maxConns int, rootCAs *x509.CertPool) *directTransport {
	if proxy, err := http.ProxyFromEnvironment(&http.Request{URL: base}); err != nil || proxy != nil {
		return nil
	}
	t := &directTransport{
		addr:   canonicalAddr(base),
		dialer: net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second},
		idle:   make(chan *directConn, maxConns),
	}
	if base.Scheme == "https" {
		t.tlsConf = &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    rootCAs,
			ServerName: base.Hostname(),
			NextProtos: []string{"http/1.1"},
		}
	}
	return t
}

func canonicalAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// RoundTrip sends req on an idle connection, or a new one. An idle
// connection the server closed is replaced before anything is written on it
// (get); one that fails while the request is written (closed just then) is
// too, the request sent once more on a fresh connection, its body rewound
// (GetBody), as the wire path (query) does.
func (t *directTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	for {
		c, reused, err := t.get(ctx, time.Time{})
		if err != nil {
			return nil, err
		}
		resp, unsent, err := t.exchange(ctx, c, req)
		if err == nil {
			return resp, nil
		}
		c.conn.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		if !reused || !unsent {
			return nil, err
		}
		if req.Body != nil && req.Body != http.NoBody {
			body, gerr := getBody(req)
			if gerr != nil {
				return nil, err
			}
			req = req.Clone(ctx)
			req.Body = body
		}
	}
}

// getBody returns req's body anew, for a request sent again.
func getBody(req *http.Request) (io.ReadCloser, error) {
	if req.GetBody == nil {
		return nil, errors.New("juhe: the request's body cannot be sent again")
	}
	return req.GetBody()
}

// get returns an idle connection (reused true) or dials a new one, by
// deadline if it is not zero. Idle connections have no deadline set.
//
// An idle connection is looked at before it is used (alive): one that the
// server closed meanwhile (its keep-alive timeout) is replaced at no cost,
// because nothing was written on it. Once a request is written, a
// connection that ends before a reply is the attempt's failure: the
// provider may have read the request, answered it and billed it.
func (t *directTransport) get(ctx context.Context, deadline time.Time) (*directConn, bool, error) {
	for {
		var c *directConn
		select {
		case c = <-t.idle:
		default:
		}
		if c == nil {
			break
		}
		if c.alive() {
			return c, true, nil
		}
		c.conn.Close()
	}
	dialer := t.dialer
	dialer.Deadline = deadline
	var conn net.Conn
	var err error
	if t.tlsConf != nil {
		d := tls.Dialer{NetDialer: &dialer, Config: t.tlsConf}
		conn, err = d.DialContext(ctx, "tcp", t.addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", t.addr)
	}
	if err != nil {
		noteSent(ctx, false) // no connection: nothing was sent
		return nil, false, err
	}
	c := &directConn{conn: conn, head: headLimit{r: conn, n: -1}, bw: bufio.NewWriterSize(conn, 4096)}
	c.br = bufio.NewReaderSize(&c.head, 4096)
	// Made once per connection rather than once per request.
	c.poison = func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) }
	return c, false, nil
}

// exchange writes req and reads the response head on c. The caller's
// context interrupts a blocked read or write through a deadline in the past.
// unsent reports a failure the server cannot have acted on: while writing.
// A connection that ends after the request, before a reply, may have had it
// read (and billed): that is the attempt's failure.
func (t *directTransport) exchange(ctx context.Context, c *directConn, req *http.Request) (resp *http.Response, unsent bool, err error) {
	stop := context.AfterFunc(ctx, c.poison)
	if err := ctx.Err(); err != nil { // ended already: nothing is written (the caller closes c)
		stop()
		noteSent(ctx, false)
		return nil, true, err
	}
	if err := req.Write(c.bw); err != nil {
		stop()
		noteSent(ctx, false)
		return nil, true, err
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		noteSent(ctx, false)
		return nil, true, err
	}
	noteSent(ctx, true)
	// ReadResponse reports a connection closed before the first byte as
	// io.ErrUnexpectedEOF, as it does one closed mid-reply: look first, so
	// that the error says so.
	if _, err := c.br.Peek(1); err != nil {
		stop()
		if err == io.EOF {
			err = errClosedBeforeReply
		}
		return nil, false, err
	}
	for n := 0; ; n++ {
		c.head.n = maxHeadBytes
		resp, err = http.ReadResponse(c.br, req)
		c.head.n = -1
		if err != nil {
			stop()
			return nil, false, err
		}
		// An informational reply (100 Continue, 103 Early Hints) comes
		// before the reply: left unread, it was taken for the next
		// request's on the same connection.
		if resp.StatusCode/100 != 1 || resp.StatusCode == http.StatusSwitchingProtocols || n == maxInformational {
			break
		}
	}
	keep := !resp.Close && !req.Close && resp.StatusCode >= 200
	resp.Body = &directBody{t: t, c: c, body: resp.Body, stop: stop, keep: keep}
	return resp, false, nil
}

// directBody hands its connection back to the pool once the response has
// been read to its end and closed, or closes it.
type directBody struct {
	t    *directTransport
	c    *directConn
	body io.ReadCloser
	stop func() bool
	keep bool // the connection may carry another request
	eof  bool
	once sync.Once
}

func (b *directBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil {
		b.keep = false
	}
	return n, err
}

func (b *directBody) Close() error {
	b.once.Do(func() {
		if !b.eof {
			// Not read to its end (a reply over maxReplyBytes, a read
			// error): net/http's body Close would read the rest, all of
			// it, and the connection is not reused anyway.
			b.c.conn.Close()
		}
		_ = b.body.Close()
		// If the context's deadline already fired, the connection is
		// poisoned: stop reports false.
		if !b.stop() || !b.keep || !b.eof {
			b.c.conn.Close()
			return
		}
		b.t.put(b.c)
	})
	return nil
}

// put hands an idle connection back to the pool, or closes it if the pool
// is full.
func (t *directTransport) put(c *directConn) {
	if t.closed.Load() {
		c.conn.Close()
		return
	}
	select {
	case t.idle <- c:
	default:
		c.conn.Close()
	}
	if t.closed.Load() { // closed meanwhile: its drain may have missed c
		t.close()
	}
}
