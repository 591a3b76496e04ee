package juhesim

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/internal/ascii"
)

// request is a request to the API that the fast path serves, as parsed in
// the connection's buffer.
type request struct {
	size            int // its bytes, head and body
	formAt, formEnd int // where its query string (GET) or body (POST) is
	post            bool
	encrypted       bool // to /twoSellTel/queryEncry
	close           bool // Connection: close
}

// parseRequest parses the request at the start of b if the fast path serves
// it exactly as net/http would; ok is false for anything it is not sure of,
// which goes to net/http. It takes:
//
//   - the request line "GET target HTTP/1.1" or "POST target HTTP/1.1", the
//     target the path of one of the two endpoints and a query string if any,
//     without the spaces and control characters net/http rejects;
//   - header lines "Name: value" ending in CRLF, the name a token and the
//     value without control characters but HTAB, as net/http requires, and
//     no folded lines;
//   - one Host, of characters net/http accepts there;
//   - no more than one Connection, "close" or "keep-alive";
//   - for a POST, one Content-Length of at most maxFormBytes and one
//     Content-Type application/x-www-form-urlencoded; for a GET, no
//     Content-Length;
//   - no Transfer-Encoding, Expect or Upgrade;
//
// and a head that ends, with an empty line, in b. The body, which r.size
// counts, may not be in b yet.
func parseRequest(b []byte) (r request, ok bool) {
	line, n, ok := cutLine(b, 0)
	if !ok {
		return r, false
	}
	var target []byte
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		target = line[len("GET "):]
	case bytes.HasPrefix(line, []byte("POST ")):
		target, r.post = line[len("POST "):], true
	default:
		return r, false
	}
	if target, ok = bytes.CutSuffix(target, []byte(" HTTP/1.1")); !ok {
		return r, false
	}
	path, query, _ := bytes.Cut(target, []byte("?"))
	switch string(path) {
	case juhe.PathQuery:
	case juhe.PathQueryEncry:
		r.encrypted = true
	default:
		return r, false
	}
	for _, c := range query {
		if c <= ' ' || c == 0x7f {
			return r, false
		}
	}
	r.formEnd = len(line) - len(" HTTP/1.1")
	r.formAt = r.formEnd - len(query)

	var hosts, conns, lengths, types, length int
	formTyped := false
	for {
		if line, n, ok = cutLine(b, n); !ok {
			return r, false
		}
		if len(line) == 0 {
			break
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found || !isToken(name) || !validValue(value) {
			return r, false
		}
		value = bytes.Trim(value, " \t")
		switch {
		case ascii.EqualFold(name, "Host"):
			hosts++
			if !validHost(value) {
				return r, false
			}
		case ascii.EqualFold(name, "Connection"):
			conns++
			if r.close = ascii.EqualFold(value, "close"); !r.close && !ascii.EqualFold(value, "keep-alive") {
				return r, false
			}
		case ascii.EqualFold(name, "Content-Length"):
			lengths++
			if length, ok = parseLength(value); !ok {
				return r, false
			}
		case ascii.EqualFold(name, "Content-Type"):
			types++
			formTyped = string(value) == formType
		case ascii.EqualFold(name, "Transfer-Encoding"), ascii.EqualFold(name, "Expect"), ascii.EqualFold(name, "Upgrade"):
			return r, false
		}
	}
	if hosts != 1 || conns > 1 {
		return r, false
	}
	if !r.post {
		r.size = n
		return r, lengths == 0
	}
	if lengths != 1 || types != 1 || !formTyped {
		return r, false
	}
	r.formAt, r.formEnd, r.size = n, n+length, n+length
	return r, true
}

// cutLine returns the line of b that starts at i, without its CRLF, and
// where the next begins; ok is false if the line does not end in b, or ends
// in a bare LF.
func cutLine(b []byte, i int) (line []byte, next int, ok bool) {
	j := bytes.IndexByte(b[i:], '\n')
	if j < 1 || b[i+j-1] != '\r' {
		return nil, 0, false
	}
	return b[i : i+j-1], i + j + 1, true
}

// isToken reports whether b is an HTTP token, as a header name must be.
func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return len(b) > 0
}

// validValue reports whether a header value has no control character but
// HTAB.
func validValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost reports whether a Host value is made of characters net/http
// accepts there; it accepts a few more (httpguts.ValidHostHeader).
func validHost(b []byte) bool {
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~:[]", c) >= 0) {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length of at most maxFormBytes: digits only,
// as net/http reads it.
func parseLength(b []byte) (int, bool) {
	n, ok := ascii.ParseDigits(b, 9)
	return int(n), ok && n <= maxFormBytes
}

// leadingCRLF counts the CR and LF bytes b starts with.
func leadingCRLF(b []byte) int {
	n := 0
	for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
		n++
	}
	return n
}

// reply writes an HTTP 200 whose body is a JSON answer, or empty when body
// is nil, in the bytes net/http writes for a handler that sets the
// Content-Type and writes body, or nothing at all. It reports whether the
// connection stays open: not if close, the client's request, nor after
// Shutdown began (net/http stops keep-alives then).
func (c *conn) reply(body []byte, close bool) bool {
	close = close || c.sv.closing.Load()
	b := append(c.out[:0], "HTTP/1.1 200 OK\r\n"...)
	if body != nil {
		b = append(b, "Content-Type: "+jsonType+"\r\n"...)
	}
	b = append(b, "Date: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	if close {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	c.out = append(b, body...)
	_, err := c.nc.Write(c.out)
	return err == nil && !close
}
