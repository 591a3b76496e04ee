package juhe

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// The fast path writes the bytes net/http's Request.Write writes for the
// request the other path builds.
func TestWireRequestMatchesNetHTTP(t *testing.T) {
	aesKey := AESKey("test-openid")
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, mode := range Modes {
			for _, base := range []string{"http://127.0.0.1:8088", "https://apis.juhe.cn/gate way/", "http://[::1]:80"} {
				u, err := url.Parse(base)
				if err != nil {
					t.Fatal(err)
				}
				ep := endpoint(u, mode)
				enc, err := EncodeMobile(mode, "17312345678", aesKey)
				if err != nil {
					t.Fatal(err)
				}
				p := params{key: "k+y/=1 2&é", mobile: enc, date: "20240102"}
				w := newWireRequest(method, ep, p.key)
				got := w.appendTo(nil, p)

				form := url.Values{"key": {p.key}, "mobile": {p.mobile}, "date": {p.date}}.Encode()
				target := *ep
				var body io.Reader
				if method == http.MethodGet {
					target.RawQuery = form
				} else {
					body = strings.NewReader(form)
				}
				req, err := http.NewRequest(method, target.String(), body)
				if err != nil {
					t.Fatal(err)
				}
				if method == http.MethodPost {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				var want bytes.Buffer
				if err := req.Write(&want); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want.Bytes()) {
					t.Errorf("%s %s %s:\n got %q\nwant %q", method, mode, base, got, want.Bytes())
				}
			}
		}
	}
}

func TestWireRequestLeavesOddHostsToNetHTTP(t *testing.T) {
	for _, base := range []string{"http://bücher.example", "http://[fe80::1%25eth0]:80"} {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		if w := newWireRequest("GET", u, "k"); w != nil {
			t.Errorf("%s: the fast path would write its Host", base)
		}
	}
}

func TestQueryEscape(t *testing.T) {
	var all strings.Builder
	for c := range 256 {
		all.WriteByte(byte(c))
	}
	for _, s := range []string{"", "abc", "a b+c/d=e", all.String(), "長い"} {
		want := url.QueryEscape(s)
		if got := string(appendQueryEscaped([]byte("x"), s)); got != "x"+want {
			t.Errorf("appendQueryEscaped(%q) = %q, want %q", s, got[1:], want)
		}
		if n := queryEscapedLen(s); n != len(want) {
			t.Errorf("queryEscapedLen(%q) = %d, want %d", s, n, len(want))
		}
	}
}

func TestReadReply(t *testing.T) {
	big := strings.Repeat("x", maxReplyBytes+10)
	tests := []struct {
		name   string
		in     string
		status int
		body   string
		keep   bool
		err    error // nil: none; errAny: some error
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", true, nil},
		{"bare LF, odd case, spaces", "HTTP/1.1 200 OK\ncontent-LENGTH:  5 \n\nhello", 200, "hello", true, nil},
		{"no reason", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 200, "", true, nil},
		{"duplicate equal lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi", 200, "hi", true, nil},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n", 200, "hello", true, nil},
		{"chunked overrides length", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", 200, "hi", true, nil},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi", 200, "hi", false, nil},
		{"connection close among tokens", "HTTP/1.1 200 OK\r\nConnection: upgrade, Close\r\nContent-Length: 2\r\n\r\nhi", 200, "hi", false, nil},
		{"chunked and close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n", 200, "hi", false, nil},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", 200, "hi", false, nil},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi", 200, "hi", true, nil},
		{"HTTP/1.0 ignores transfer-encoding", "HTTP/1.0 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhi", 200, "hi", false, nil},
		{"until EOF", "HTTP/1.1 200 OK\r\n\r\nhello", 200, "hello", false, nil},
		{"204", "HTTP/1.1 204 No Content\r\n\r\n", 204, "", true, nil},
		{"500 with a body", "HTTP/1.1 500 Oops\r\nContent-Length: 3\r\n\r\nbad", 500, "bad", true, nil},
		{"oversized, content-length", "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big, 200, big[:maxReplyBytes+1], false, nil},
		{"oversized, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8000\r\n" + big[:0x8000] + "\r\n8000\r\n" + big[:0x8000] + "\r\n10\r\n" + big[:16] + "\r\n0\r\n\r\n", 200, big[:maxReplyBytes+1], false, nil},
		{"oversized, until EOF", "HTTP/1.1 200 OK\r\n\r\n" + big, 200, big[:maxReplyBytes+1], false, nil},

		{"nothing", "", 0, "", false, io.EOF},
		{"truncated head", "HTTP/1.1 200 OK\r\nContent-Le", 0, "", false, io.ErrUnexpectedEOF},
		{"truncated status line", "HTTP/1.1 2", 0, "", false, io.ErrUnexpectedEOF},
		{"truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", 200, "", false, io.ErrUnexpectedEOF},
		{"truncated chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 200, "", false, io.ErrUnexpectedEOF},
		{"no last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n", 200, "", false, io.ErrUnexpectedEOF},
		{"garbage", "<html>busy</html>\r\n", 0, "", false, errStatusLine},
		{"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", 0, "", false, errStatusLine},
		{"four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", 0, "", false, errStatusLine},
		{"letters in status", "HTTP/1.1 2x0 OK\r\n\r\n", 0, "", false, errStatusLine},
		{"HTTP/2", "HTTP/2 200 OK\r\n\r\n", 0, "", false, errStatusLine},
		{"no status", "HTTP/1.1\r\n\r\n", 0, "", false, errStatusLine},
		{"header without colon", "HTTP/1.1 200 OK\r\nContent-Length 2\r\n\r\nhi", 0, "", false, errHeaderLine},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nhi", 0, "", false, errHeaderLine},
		// Obsolete line folding is read as a space (RFC 9112, 5.2), as
		// net/http reads it: the value is "keep-alive, close".
		{"folded header", "HTTP/1.1 200 OK\r\nConnection: keep-alive,\r\n close\r\nContent-Length: 2\r\n\r\nhi", 200, "hi", false, nil},
		{"folded other header", "HTTP/1.1 200 OK\r\nX-Served-By: gw-1,\r\n\tgw-2\r\nContent-Length: 2\r\n\r\nhi", 200, "hi", true, nil},
		{"fold with nothing to continue", "HTTP/1.1 200 OK\r\n X: 1\r\nContent-Length: 2\r\n\r\nhi", 0, "", false, errHeaderLine},
		// A line longer than the reader's buffer, within the head's
		// limit: read, unless it frames the body.
		{"long header line", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 5000) + "\r\nContent-Length: 0\r\n\r\n", 200, "", true, nil},
		{"long folded header", "HTTP/1.1 200 OK\r\nX: a\r\n " + strings.Repeat("a", 5000) + "\r\nContent-Length: 0\r\n\r\n", 200, "", true, nil},
		{"long header name", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X", 5000) + ": 1\r\nContent-Length: 0\r\n\r\n", 200, "", true, nil},
		{"long framing header line", "HTTP/1.1 200 OK\r\nConnection: " + strings.Repeat("a", 5000) + "\r\nContent-Length: 0\r\n\r\n", 0, "", false, errHeadTooLong},
		{"head too long", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: "+strings.Repeat("a", 1000)+"\r\n", 70) + "\r\n", 0, "", false, errHeadTooLong},
		{"conflicting lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi", 0, "", false, errContentLength},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nhi", 0, "", false, errContentLength},
		{"empty length", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\nhi", 0, "", false, errContentLength},
		{"gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhi", 0, "", false, errTransferEnc},
		{"two transfer-encodings", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, "", false, errTransferEnc},
		{"bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n0\r\n\r\n", 200, "", false, errChunked},
		{"chunk line with bare LF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nhi\r\n0\r\n\r\n", 200, "", false, errChunked},
		{"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiX\r\n0\r\n\r\n", 200, "", false, errChunked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), 4096)
			r, err := readReply(br, make([]byte, 0, 16))
			if tt.err != nil {
				if !errors.Is(err, tt.err) || r.status != tt.status {
					t.Fatalf("readReply = status %d, %v; want status %d, %v", r.status, err, tt.status, tt.err)
				}
				return
			}
			if err != nil || r.status != tt.status || string(r.body) != tt.body || r.keep != tt.keep {
				t.Fatalf("readReply = status %d, body %.40q (%d bytes), keep %v, %v; want %d, %.40q (%d bytes), %v",
					r.status, r.body, len(r.body), r.keep, err, tt.status, tt.body, len(tt.body), tt.keep)
			}
			// net/http agrees, short of the cap.
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(tt.in)), nil)
			if err != nil {
				t.Fatalf("net/http: %v", err)
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes+1))
			if err != nil || resp.StatusCode != tt.status || string(body) != tt.body || (resp.Close && tt.keep) {
				t.Errorf("net/http reads status %d, %d bytes, close %v, %v", resp.StatusCode, len(body), resp.Close, err)
			}
		})
	}
}

// Another reply may follow on the connection: readReply stops at the end of
// each one.
func TestReadReplyPipelined(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n" +
		"HTTP/1.1 204 No Content\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc"
	br := bufio.NewReader(strings.NewReader(in))
	var got []string
	for range 4 {
		r, err := readReply(br, nil)
		if err != nil || !r.keep {
			t.Fatalf("readReply: keep %v, %v", r.keep, err)
		}
		got = append(got, string(r.body))
	}
	if strings.Join(got, ",") != "a,b,,c" {
		t.Errorf("bodies %q", got)
	}
	if _, err := readReply(br, nil); err != io.EOF {
		t.Errorf("after the last reply: %v, want io.EOF", err)
	}
}
