package juhe

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twosell/twosell/juhe/internal/ascii"
)

// The client's fast path speaks HTTP/1.1 on directTransport's connections
// itself, without net/http's Request and Response: it appends the request to
// the connection's buffer and reads the reply's status, the three headers
// that frame its body, and the body into a pooled buffer. It is taken when
// the client uses its own direct transport and the query's span is not
// recording; otherwise Query goes through net/http and otelhttp (transport.go).
//
// The bytes sent are those net/http's Request.Write sends for the same
// request (wire_test.go compares them): the request line, Host, the
// User-Agent net/http defaults to, and for POST Content-Length and
// Content-Type. The reply is read as net/http's ReadResponse reads it, with
// stricter limits: a head of at most maxHeadBytes, no line longer than the
// connection's 4 KiB read buffer, and no obsolete line folding.

// maxHeadBytes caps a reply's status line and headers together.
const maxHeadBytes = 64 << 10

// userAgent is the User-Agent net/http's Request.Write sends by default.
const userAgent = "Go-http-client/1.1"

// wireRequest is the constant part of a client's requests, laid out by New.
type wireRequest struct {
	post bool
	head string // up to the form (GET) or up to Content-Length's value (POST)
	tail string // after the form (GET) or after Content-Length's value (POST)
	key  string // the key, query-escaped
}

// newWireRequest lays out the requests to endpoint, or returns nil when the
// fast path cannot write them as net/http would: a host that net/http would
// rewrite (not ASCII, or an IPv6 zone) is left to net/http.
func newWireRequest(method string, endpoint *url.URL, key string) *wireRequest {
	host := endpoint.Host
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 || host[i] <= ' ' || host[i] == '%' {
			return nil
		}
	}
	headers := "Host: " + host + "\r\nUser-Agent: " + userAgent + "\r\n"
	w := &wireRequest{key: url.QueryEscape(key)}
	if method == "POST" {
		w.post = true
		w.head = "POST " + endpoint.EscapedPath() + " HTTP/1.1\r\n" + headers + "Content-Length: "
		w.tail = "\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n"
	} else {
		w.head = "GET " + endpoint.EscapedPath() + "?"
		w.tail = " HTTP/1.1\r\n" + headers + "\r\n"
	}
	return w
}

// appendTo appends the request for p to b. The parameters are in the order
// url.Values.Encode gives them: date, key, mobile.
func (w *wireRequest) appendTo(b []byte, p params) []byte {
	b = append(b, w.head...)
	if w.post {
		n := len("date=&key=&mobile=") + queryEscapedLen(p.date) + len(w.key) + queryEscapedLen(p.mobile)
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, w.tail...)
		return w.appendForm(b, p)
	}
	b = w.appendForm(b, p)
	return append(b, w.tail...)
}

func (w *wireRequest) appendForm(b []byte, p params) []byte {
	b = append(b, "date="...)
	b = appendQueryEscaped(b, p.date)
	b = append(b, "&key="...)
	b = append(b, w.key...)
	b = append(b, "&mobile="...)
	return appendQueryEscaped(b, p.mobile)
}

// unreservedQuery reports whether url.QueryEscape leaves c as it is.
func unreservedQuery(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// appendQueryEscaped appends url.QueryEscape(s) to b, without allocating.
func appendQueryEscaped(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case unreservedQuery(c):
			b = append(b, c)
		case c == ' ':
			b = append(b, '+')
		default:
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return b
}

// queryEscapedLen returns len(url.QueryEscape(s)).
func queryEscapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if c := s[i]; !unreservedQuery(c) && c != ' ' {
			n += 2
		}
	}
	return n
}

// Errors of the reply's framing. They never quote the reply: a hostile
// server could echo the key there.
var (
	errStatusLine    = errors.New("juhe: malformed HTTP status line")
	errHeaderLine    = errors.New("juhe: malformed HTTP header line")
	errHeadTooLong   = errors.New("juhe: HTTP response head too long")
	errLineTooLong   = errors.New("juhe: HTTP response line too long") // than br's buffer: a header line may be (readHeaderLine)
	errContentLength = errors.New("juhe: bad or conflicting Content-Length")
	errTransferEnc   = errors.New("juhe: unsupported Transfer-Encoding")
	errChunked       = errors.New("juhe: malformed chunked encoding")
)

// wireReply is a reply read off the wire.
type wireReply struct {
	status int
	body   []byte // at most maxReplyBytes+1 bytes: more means too large
	keep   bool   // the body was read to its end and the connection may be reused
}

// replyHead is what the status line and the headers say about the body.
type replyHead struct {
	status        int
	http10        bool
	contentLength int64 // -1 if absent
	chunked       bool
	close         bool // Connection: close, or HTTP/1.0 without keep-alive
}

// readReply reads one reply from br, its body into buf. On an error, status
// is set once the head has been read; err is io.EOF exactly when not one
// byte of the reply arrived (the server closed an idle connection).
func readReply(br *bufio.Reader, buf []byte) (r wireReply, err error) {
	var h replyHead
	for n := 0; ; n++ {
		if h, err = readHead(br); err != nil {
			if n > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF // the informational reply arrived
			}
			return wireReply{}, err
		}
		// An informational reply (100 Continue, 103 Early Hints) comes
		// before the reply, as net/http reads them.
		if h.status/100 != 1 || h.status == 101 || n == maxInformational { // 101: Switching Protocols
			break
		}
	}
	r.status = h.status
	switch {
	case h.status/100 == 1 || h.status == 204 || h.status == 304:
		// No body. A 1xx reply past maxInformational is followed by the
		// real one, which this client does not wait for: the connection
		// is not reused.
		r.body, r.keep = buf[:0], h.status/100 != 1 && !h.close
	case h.chunked:
		r.body, r.keep, err = readChunked(br, buf)
		r.keep = r.keep && !h.close
	case h.contentLength >= 0:
		n := min(h.contentLength, maxReplyBytes+1)
		r.body = grow(buf, int(n))
		if _, err = io.ReadFull(br, r.body); err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		r.keep = h.contentLength <= maxReplyBytes && !h.close
	default:
		// Delimited by the end of the connection.
		r.body, err = readToEOF(br, buf)
	}
	return r, err
}

// readHead reads the status line and the headers, keeping those that frame
// the body: Content-Length, Transfer-Encoding and Connection.
func readHead(br *bufio.Reader) (replyHead, error) {
	h := replyHead{contentLength: -1}
	budget := maxHeadBytes
	line, err := readLine(br, &budget)
	if err == errLineTooLong {
		err = errHeadTooLong // a status line over 4 KiB: none is
	}
	if err != nil {
		if err == io.ErrUnexpectedEOF && budget == maxHeadBytes {
			return h, io.EOF // not one byte: see readReply
		}
		return h, err
	}
	if h.status, h.http10, err = parseStatusLine(line); err != nil {
		return h, err
	}
	var tes int
	var chunked, hasClose, hasKeepAlive bool
	// A field is read whole before it is taken: a line that starts with a
	// space or a tab continues the one before (obsolete line folding, which
	// a client must read as a space: RFC 9112, section 5.2, as net/http
	// does). Only the fields that frame the body are kept, in value.
	var field framingField
	var valueBuf [64]byte
	value := valueBuf[:0]
	var prefix [256]byte // of a cut line
	take := func() error {
		value = bytes.Trim(value, " \t")
		switch field {
		case fieldContentLength:
			n, ok := ascii.ParseDigits(value, 18)
			if !ok || (h.contentLength >= 0 && n != h.contentLength) {
				return errContentLength
			}
			h.contentLength = n
		case fieldTransferEncoding:
			tes++
			chunked = ascii.EqualFold(value, "chunked")
		case fieldConnection:
			hasClose = hasClose || hasToken(value, "close")
			hasKeepAlive = hasKeepAlive || hasToken(value, "keep-alive")
		}
		field, value = fieldOther, value[:0]
		return nil
	}
	for first := true; ; first = false {
		line, cut, err := readHeaderLine(br, &budget, &prefix)
		if err != nil {
			return h, err
		}
		if len(line) == 0 {
			if err := take(); err != nil {
				return h, err
			}
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if first {
				return h, errHeaderLine // nothing to continue (net/http refuses it too)
			}
			if field != fieldOther {
				if cut {
					return h, errHeadTooLong
				}
				value = append(append(value, ' '), line...)
			}
			continue
		}
		if err := take(); err != nil {
			return h, err
		}
		name, v, ok := bytes.Cut(line, []byte(":"))
		if !ok && cut {
			name, ok = line, true // a name longer than the prefix: not one of those kept
		}
		if !ok || len(name) == 0 || !isToken(name) {
			return h, errHeaderLine
		}
		switch {
		case ascii.EqualFold(name, "Content-Length"):
			field = fieldContentLength
		case ascii.EqualFold(name, "Transfer-Encoding"):
			field = fieldTransferEncoding
		case ascii.EqualFold(name, "Connection"):
			field = fieldConnection
		default:
			continue // not kept: its length does not matter, within the head's
		}
		if cut {
			return h, errHeadTooLong // a field that frames the body, longer than a line may be
		}
		value = append(value, v...)
	}
	// As net/http: Transfer-Encoding is ignored in HTTP/1.0, and otherwise
	// only one "chunked" is understood; it overrides Content-Length.
	if tes > 0 && !h.http10 {
		if tes > 1 || !chunked {
			return h, errTransferEnc
		}
		h.chunked = true
	}
	h.close = hasClose || h.http10 && !hasKeepAlive
	return h, nil
}

// parseStatusLine parses "HTTP/1.1 200 OK" (the reason may be empty or
// missing).
func parseStatusLine(line []byte) (status int, http10 bool, err error) {
	proto, rest, ok := bytes.Cut(line, []byte(" "))
	switch {
	case !ok:
		return 0, false, errStatusLine
	case string(proto) == "HTTP/1.0":
		http10 = true
	case string(proto) != "HTTP/1.1":
		return 0, false, errStatusLine
	}
	rest = bytes.TrimLeft(rest, " ")
	if len(rest) < 3 || len(rest) > 3 && rest[3] != ' ' {
		return 0, false, errStatusLine
	}
	for _, c := range rest[:3] {
		if c < '0' || c > '9' {
			return 0, false, errStatusLine
		}
		status = status*10 + int(c-'0')
	}
	return status, http10, nil
}

// framingField is a header field that frames a reply's body.
type framingField uint8

const (
	fieldOther framingField = iota
	fieldContentLength
	fieldTransferEncoding
	fieldConnection
)

// readHeaderLine is readLine for a header line, which may be longer than
// br's buffer (a gateway's Set-Cookie or policy, within the head's limit,
// which net/http reads): such a line comes back cut to the buffer, the
// rest read and charged to budget, with cut set. Found by review: any line
// over 4 KiB was "head too long", and the answer, paid for, a fault.
func readHeaderLine(br *bufio.Reader, budget *int, prefix *[256]byte) (line []byte, cut bool, err error) {
	line, err = readLine(br, budget)
	if err != errLineTooLong {
		return line, false, err
	}
	// What is needed of a cut line is its start: whether it continues a
	// field, or which field it begins (its name). Kept in prefix, as the
	// reads of the rest reuse br's buffer.
	n := copy(prefix[:], line)
	for err == errLineTooLong {
		_, err = readLine(br, budget)
	}
	if err != nil {
		return nil, false, err
	}
	return prefix[:n], true, nil
}

// readLine returns the next line without its "\n" or "\r\n", charging its
// length to budget. The line is valid until the next read from br. A line
// longer than br's buffer is errLineTooLong, its first buffer's worth read.
func readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	*budget -= len(line)
	switch {
	case *budget < 0:
		return nil, errHeadTooLong
	case err == bufio.ErrBufferFull:
		return line, errLineTooLong
	case err == io.EOF:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// readChunked reads a chunked body into buf, up to maxReplyBytes+1 bytes.
// complete reports that it was read to its end, trailers included.
func readChunked(br *bufio.Reader, buf []byte) (body []byte, complete bool, err error) {
	body = buf[:0]
	budget := maxHeadBytes // for the chunk lines and the trailers
	for {
		line, err := br.ReadSlice('\n')
		budget -= len(line)
		switch {
		case err == bufio.ErrBufferFull || budget < 0:
			return body, false, errChunked
		case err == io.EOF:
			return body, false, io.ErrUnexpectedEOF
		case err != nil:
			return body, false, err
		}
		// As net/http: CRLF and no other CR, extensions ignored.
		if bytes.IndexByte(line, '\r') != len(line)-2 {
			return body, false, errChunked
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line[:len(line)-2], " \t"), []byte(";"))
		n, ok := parseHex(size)
		if !ok {
			return body, false, errChunked
		}
		if n == 0 {
			break
		}
		if n > uint64(maxReplyBytes+1-len(body)) {
			// Too large: keep what makes it so, and stop reading.
			m := maxReplyBytes + 1 - len(body)
			body = grow(body, len(body)+m)
			_, err := io.ReadFull(br, body[len(body)-m:])
			return body, false, unexpected(err)
		}
		start := len(body)
		body = grow(body, start+int(n))
		if _, err := io.ReadFull(br, body[start:]); err != nil {
			return body, false, unexpected(err)
		}
		var crlf [2]byte
		if _, err := io.ReadFull(br, crlf[:]); err != nil {
			return body, false, unexpected(err)
		}
		if crlf != [2]byte{'\r', '\n'} {
			return body, false, errChunked
		}
	}
	var prefix [256]byte
	for { // trailers, ignored
		line, _, err := readHeaderLine(br, &budget, &prefix)
		if err != nil {
			return body, false, err
		}
		if len(line) == 0 {
			return body, true, nil
		}
	}
}

// readToEOF reads a body delimited by the end of the connection, up to
// maxReplyBytes+1 bytes.
func readToEOF(br *bufio.Reader, buf []byte) ([]byte, error) {
	body := buf[:0]
	for len(body) <= maxReplyBytes {
		if len(body) == cap(body) {
			body = append(body, 0)[:len(body)]
		}
		n, err := br.Read(body[len(body):min(cap(body), maxReplyBytes+1)])
		body = body[:len(body)+n]
		if err == io.EOF {
			return body, nil
		}
		if err != nil {
			return body, err
		}
	}
	return body, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// grow returns b resliced to n bytes, reallocated if its capacity is less.
func grow(b []byte, n int) []byte {
	if n <= cap(b) {
		return b[:n]
	}
	nb := make([]byte, n)
	copy(nb, b)
	return nb
}

// parseHex parses a chunk size: hexadecimal digits, at most 16 of them.
func parseHex(v []byte) (n uint64, ok bool) {
	if len(v) == 0 || len(v) > 16 {
		return 0, false
	}
	for _, c := range v {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(c)
	}
	return n, true
}

// isToken reports whether b is an HTTP token, as a header name must be.
func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds token,
// ignoring case and surrounding spaces.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var t []byte
		t, v, _ = bytes.Cut(v, []byte(","))
		if ascii.EqualFold(bytes.Trim(t, " \t"), token) {
			return true
		}
	}
	return false
}

// replyBufs recycles the buffers replies are read into: a reply is about a
// hundred bytes, and the parsed Answer copies what it keeps.
var replyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// query sends one request on a connection of the pool and reads its reply
// into buf. The connection's deadline is the attempt's, so a timeout
// interrupts blocked I/O without a timer of the client's own; the caller's
// cancellation does it through a deadline in the past. A reused connection
// that fails while the request is written is replaced, as in RoundTrip.
func (t *directTransport) query(ctx context.Context, deadline time.Time, w *wireRequest, p params, buf []byte) (wireReply, error) {
	for {
		c, reused, err := t.get(ctx, deadline)
		if err != nil {
			return wireReply{}, err
		}
		r, unsent, err := t.wireExchange(ctx, c, deadline, w, p, buf)
		if err == nil {
			return r, nil
		}
		if ctx.Err() != nil || !reused || !unsent || !time.Now().Before(deadline) {
			return r, err
		}
	}
}

// wireExchange makes one exchange on c, and hands c back to the pool or
// closes it. unsent reports a failure the server cannot have acted on.
func (t *directTransport) wireExchange(ctx context.Context, c *directConn, deadline time.Time, w *wireRequest, p params, buf []byte) (r wireReply, unsent bool, err error) {
	if err := c.conn.SetDeadline(deadline); err != nil {
		c.conn.Close()
		noteSent(ctx, false)
		return r, true, err
	}
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, c.poison)
	}
	if err := ctx.Err(); err != nil { // ended already: nothing is written, and the connection stays whole
		if stop() {
			_ = c.conn.SetDeadline(time.Time{})
			t.put(c)
		} else {
			c.conn.Close()
		}
		noteSent(ctx, false)
		return r, true, err
	}
	_, err = c.bw.Write(w.appendTo(c.bw.AvailableBuffer(), p))
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		stop()
		c.conn.Close()
		noteSent(ctx, false)
		return r, true, err
	}
	noteSent(ctx, true)
	r, err = readReply(c.br, buf)
	// If the cancellation already fired, the connection is poisoned: stop
	// reports false.
	if !stop() || err != nil || !r.keep {
		c.conn.Close()
		if err == io.EOF { // not one byte: the request may have been read (see get)
			err = errClosedBeforeReply
		}
		return r, false, err
	}
	if err := c.conn.SetDeadline(time.Time{}); err != nil {
		c.conn.Close()
		return r, false, nil
	}
	t.put(c)
	return r, false, nil
}
