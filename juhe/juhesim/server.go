package juhesim

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// readHeaderTimeout is net/http's ReadHeaderTimeout for the simulator: how
// long a connection may take to send a request's head, from its opening or
// from the head's first bytes. A client that never finishes one must not
// hold a goroutine for ever.
const readHeaderTimeout = 10 * time.Second

// Server serves a Sim over HTTP/1.1 for less CPU per request than net/http:
// "twosell bench" runs the simulator on the cores it measures twosell on, so
// what the simulator spends is taken from twosell.
//
// Its fast path reads and answers the provider's queries itself, in the very
// bytes net/http writes for them (server_test.go holds it to that): a GET or
// POST to one of the two endpoints in HTTP/1.1, with the headers clients
// send (see parseRequest), whose head arrived whole with its first bytes,
// while Faults.Outage is not set. Everything else it hands over, with its
// connection and the bytes it read ahead, to a net/http server whose handler
// is the Sim, and which serves that connection from then on: the admin
// endpoints, other paths and methods, HTTP/1.0, chunked or other bodies,
// Expect, Upgrade, anything malformed, and every request during an outage
// (checked per request: faults change at run time).
//
// Like net/http, the fast path watches the connection during the latency: a
// client that closes it is counted Stats.Abandoned and gets what net/http
// writes when a handler returns without a word, an empty HTTP 200, before
// the connection closes.
type Server struct {
	sim       *Sim
	http      *http.Server     // serves the connections handed over
	handoff   *handoffListener // through which they reach it
	startHTTP sync.Once

	closing atomic.Bool // Shutdown or Close has begun

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{} // the fast path's
	drained   chan struct{}      // closed once closing and conns is empty
}

// NewServer returns a Server for s. s.ServeHTTP still serves as well, in an
// httptest.Server or any other.
func (s *Sim) NewServer() *Server {
	return &Server{
		sim:       s,
		http:      &http.Server{Handler: s, ReadHeaderTimeout: readHeaderTimeout},
		handoff:   &handoffListener{conns: make(chan net.Conn), done: make(chan struct{})},
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		drained:   make(chan struct{}),
	}
}

// Serve accepts connections on l and serves them, until Shutdown or Close
// (it then returns http.ErrServerClosed) or an error of l.Accept. It closes
// l.
func (sv *Server) Serve(l net.Listener) error {
	defer l.Close()
	if !sv.trackListener(l, true) {
		return http.ErrServerClosed
	}
	defer sv.trackListener(l, false)
	sv.startHTTP.Do(func() { go sv.http.Serve(sv.handoff) })
	for {
		nc, err := l.Accept()
		if err != nil {
			if sv.closing.Load() {
				return http.ErrServerClosed
			}
			return err
		}
		c := newConn(sv, nc)
		if !sv.trackConn(c, true) {
			nc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// Shutdown stops the server as http.Server's Shutdown does: it closes the
// listeners and the idle connections, then waits for the requests in
// progress to be answered, or for ctx to end, whose error it then returns.
// The net/http side shuts down alongside.
func (sv *Server) Shutdown(ctx context.Context) error {
	httpDone := make(chan error, 1)
	go func() { httpDone <- sv.http.Shutdown(ctx) }()
	sv.stop(false)
	var err error
	select {
	case <-sv.drained:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if httpErr := <-httpDone; err == nil {
		err = httpErr
	}
	return err
}

// Close closes the listeners and every connection at once, as http.Server's
// Close does: a request waiting out its latency is abandoned.
func (sv *Server) Close() error {
	sv.stop(true)
	return sv.http.Close()
}

// stop closes the listeners and the idle connections, or all of them.
func (sv *Server) stop(all bool) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	sv.closing.Store(true)
	for l := range sv.listeners {
		l.Close()
	}
	for c := range sv.conns {
		if all || c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.nc.Close()
		}
	}
	sv.checkDrained()
}

// trackListener adds l to the listeners that stop closes, or removes it; it
// adds none once stop has run.
func (sv *Server) trackListener(l net.Listener, add bool) bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if !add {
		delete(sv.listeners, l)
		return true
	}
	if sv.closing.Load() {
		return false
	}
	sv.listeners[l] = struct{}{}
	return true
}

// trackConn adds c to the connections that Shutdown waits for, or removes
// it; it adds none once stop has run.
func (sv *Server) trackConn(c *conn, add bool) bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if !add {
		delete(sv.conns, c)
		sv.checkDrained()
		return true
	}
	if sv.closing.Load() {
		return false
	}
	sv.conns[c] = struct{}{}
	return true
}

// checkDrained closes drained once stop has run and no connection is left.
// sv.mu must be held.
func (sv *Server) checkDrained() {
	if !sv.closing.Load() || len(sv.conns) > 0 {
		return
	}
	select {
	case <-sv.drained:
	default:
		close(sv.drained)
	}
}

// handOver gives c, with the bytes it read ahead, to the net/http server.
func (sv *Server) handOver(c *conn) {
	select {
	case sv.handoff.conns <- &handedConn{Conn: c.nc, br: c.br}:
	case <-sv.handoff.done:
		c.nc.Close() // net/http is shutting down
	}
}

// conn is a connection in the fast path.
type conn struct {
	sv         *Server
	nc         net.Conn
	br         *bufio.Reader
	remoteAddr string // as net/http's Request.RemoteAddr
	state      atomic.Int32
	body, out  []byte // a reply's body and bytes, reused
}

func newConn(sv *Server, nc net.Conn) *conn {
	c := &conn{sv: sv, nc: nc, br: bufio.NewReader(nc)}
	if ra := nc.RemoteAddr(); ra != nil {
		c.remoteAddr = ra.String()
	}
	return c
}

// The states of a conn, for Shutdown: it closes idle connections only.
const (
	stateActive int32 = iota // reading or answering a request
	stateIdle                // waiting for a request
	stateClosed              // closed by Shutdown while idle
)

// serve serves c's requests until it closes, or until one that the fast path
// leaves to net/http, which c is then handed over to with that request.
func (c *conn) serve() {
	defer c.sv.trackConn(c, false)
	afterPost := false
	for first := true; ; first = false {
		if !c.await(first, afterPost) {
			c.nc.Close()
			return
		}
		r, form, ok := c.next()
		st := c.sv.sim.faults.Load()
		if !ok || st.f.Outage != OutageNone {
			c.sv.handOver(c)
			return
		}
		if !c.serveQuery(r, form, st) {
			c.nc.Close()
			return
		}
		afterPost = r.post
	}
}

// await waits, idle, for the next request to begin, as net/http's
// connections do: for its first bytes within readHeaderTimeout of the
// connection's opening, or for 4 bytes after a request (after a POST it
// then drops the CR and LF some clients add after the body). It reports
// false when the connection is done: closed, or the server stopping.
func (c *conn) await(first, afterPost bool) bool {
	c.state.Store(stateIdle)
	if c.sv.closing.Load() {
		return false
	}
	var err error
	if first {
		c.nc.SetReadDeadline(time.Now().Add(readHeaderTimeout))
		_, err = c.br.Peek(1)
		c.nc.SetReadDeadline(time.Time{})
	} else {
		var b []byte
		if b, err = c.br.Peek(4); err == nil && afterPost {
			c.br.Discard(leadingCRLF(b))
		}
	}
	return err == nil && c.state.CompareAndSwap(stateIdle, stateActive) && !c.sv.closing.Load()
}

// next parses the request at the head of the buffer without consuming it,
// and returns it with its form (its query string or body, in the buffer); ok
// is false when the fast path leaves it to net/http. It waits for the rest
// of a POST's body, but not for the rest of a head: a head that did not
// arrive whole goes to net/http, with its timeout.
func (c *conn) next() (r request, form []byte, ok bool) {
	b, _ := c.br.Peek(c.br.Buffered())
	if r, ok = parseRequest(b); !ok || r.size > c.br.Size() {
		return r, nil, false
	}
	b, err := c.br.Peek(r.size)
	if err != nil {
		return r, nil, false // the body never came: net/http says what to
	}
	return r, b[r.formAt:r.formEnd], true
}

// serveQuery answers r under the faults st, which have no outage, by the
// steps of Sim.serveQuery; it reports whether the connection stays open.
func (c *conn) serveQuery(r request, form []byte, st *faultState) bool {
	s := c.sv.sim
	method := http.MethodGet
	if r.post {
		method = http.MethodPost
	}
	s.stats.request(method)
	params := paramsOf(string(form), r.post)
	c.br.Discard(r.size)
	active := st.active()
	if !c.wait(s.latency(st.f)) {
		s.stats.abandoned()
		return c.reply(nil, r.close) // net/http answers it all the same
	}
	code, res := s.decide(st, active, c.remoteAddr, params, r.encrypted)
	c.body = s.appendAnswer(c.body[:0], code, res)
	return c.reply(c.body, r.close)
}

// wait waits d, watching the connection as net/http does while a handler
// runs: a client that closes it, or Close, ends the wait with false. Bytes
// that arrive meanwhile (a pipelined request) end the watch, not the wait.
// Without a latency it does not look: net/http's look then races with its
// read of the connection.
func (c *conn) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	end := time.Now().Add(d)
	c.nc.SetReadDeadline(end)
	_, err := c.br.Peek(c.br.Buffered() + 1)
	c.nc.SetReadDeadline(time.Time{})
	switch {
	case err == nil, errors.Is(err, bufio.ErrBufferFull):
		time.Sleep(time.Until(end))
		return true
	}
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// handedConn is a connection handed over to net/http: it reads first the
// bytes the fast path read ahead.
type handedConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *handedConn) Read(p []byte) (int, error) { return c.br.Read(p) }

// CloseWrite half-closes the connection, if it can, as net/http does to a
// *net.TCPConn before it closes one whose request it did not read whole.
func (c *handedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// NetConn returns the connection underneath, which the reset outage resets.
func (c *handedConn) NetConn() net.Conn { return c.Conn }

// handoffListener is the listener through which the net/http server accepts
// the connections handed over.
type handoffListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return handoffAddr{} }

// handoffAddr is the address of handoffListener, which has none.
type handoffAddr struct{}

func (handoffAddr) Network() string { return "handoff" }
func (handoffAddr) String() string  { return "juhesim-handoff" }
