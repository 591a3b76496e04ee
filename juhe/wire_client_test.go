package juhe_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/twosell/twosell/juhe"
)

const okBody = `{"reason":"成功","result":{"res":1,"orderid":"JH1"},"error_code":0}`

// rawServer serves HTTP/1.1 by hand, so that tests choose every byte of a
// reply. answer gets each request (its head and body) and its index on its
// connection, and returns the reply to write and whether to close the
// connection after it.
func rawServer(t *testing.T, answer func(req []byte, i int) (reply string, closeAfter bool)) (url string, conns *atomic.Int64) {
	t.Helper()
	url, conns, _ = rawServerClosing(t, answer)
	return url, conns
}

// rawServerClosing is rawServer, and a channel that receives once the
// server has closed each connection (Close returned: on loopback, the
// client's end has the FIN by then).
func rawServerClosing(t *testing.T, answer func(req []byte, i int) (reply string, closeAfter bool)) (url string, conns *atomic.Int64, closed <-chan struct{}) {
	t.Helper()
	closing := make(chan struct{}, 1000)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int64)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer func() {
					conn.Close()
					closing <- struct{}{}
				}()
				br := bufio.NewReader(conn)
				for i := 0; ; i++ {
					var req []byte
					n := 0
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						req = append(req, line...)
						if string(line) == "\r\n" {
							break
						}
						if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
							n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
						}
					}
					body := make([]byte, n)
					if _, err := io.ReadFull(br, body); err != nil {
						return
					}
					reply, closeAfter := answer(append(req, body...), i)
					if _, err := conn.Write([]byte(reply)); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String(), conns, closing
}

func okReply(extra string) string {
	return "HTTP/1.1 200 OK\r\n" + extra + "Content-Length: " + strconv.Itoa(len(okBody)) + "\r\n\r\n" + okBody
}

// The fast path keeps connections for reuse, and closes those the reply
// asks it to close.
func TestWireConnectionReuse(t *testing.T) {
	always := func(reply string) func([]byte, int) (string, bool) {
		return func([]byte, int) (string, bool) { return reply, false }
	}
	tests := []struct {
		name   string
		answer func(req []byte, i int) (string, bool)
		conns  int64
	}{
		{"keep-alive", always(okReply("")), 1},
		{"chunked", always("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strconv.FormatInt(int64(len(okBody)), 16) + "\r\n" + okBody + "\r\n0\r\n\r\n"), 1},
		{"Connection: close", always(okReply("Connection: close\r\n")), 5},
		{"HTTP/1.0", always(strings.Replace(okReply(""), "HTTP/1.1", "HTTP/1.0", 1)), 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, conns := rawServer(t, tt.answer)
			c := newClient(t, url, func(cfg *juhe.Config) { cfg.Retries = -1 })
			for i := range 5 {
				a, err := c.Query(t.Context(), testMobile, testDate)
				if err != nil || a.Res != 1 || a.OrderID != "JH1" || a.Attempts != 1 {
					t.Fatalf("query %d: %+v, %v", i, a, err)
				}
			}
			if n := conns.Load(); n != tt.conns {
				t.Errorf("%d connections for 5 queries, want %d", n, tt.conns)
			}
		})
	}
}

// Replies the fast path cannot read are transport faults, retried, whose
// messages name neither the key nor the mobile however the server echoes
// them.
func TestWireMalformedRepliesKeepSecrets(t *testing.T) {
	const key, mobile = "KEY-5e3c7a1f", "17355501234"
	echo := func(req []byte) string { return strings.ReplaceAll(string(req), "\r\n", " ") }
	tests := []struct {
		name   string
		reply  func(req []byte) string
		status int
		text   string
	}{
		{"status line", func(req []byte) string { return "HTTP/1.1 2" + echo(req) + "\r\n\r\n" }, 0, "request failed: juhe: malformed HTTP status line"},
		{"header", func(req []byte) string { return "HTTP/1.1 200 OK\r\n" + echo(req) + "\r\n\r\n" }, 0, "malformed HTTP header line"},
		{"content-length", func(req []byte) string {
			return "HTTP/1.1 200 OK\r\nContent-Length: " + echo(req) + "\r\n\r\n"
		}, 0, "Content-Length"},
		{"transfer-encoding", func(req []byte) string {
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: " + echo(req) + "\r\n\r\n"
		}, 0, "Transfer-Encoding"},
		{"chunk", func(req []byte) string {
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + echo(req) + "\r\n"
		}, 200, "reading the reply failed: juhe: malformed chunked encoding"},
		{"HTTP status", func(req []byte) string { return "HTTP/1.1 418 " + echo(req) + "\r\nContent-Length: 0\r\n\r\n" }, 418, "HTTP 418"},
		{"body", func(req []byte) string {
			b := "not json " + echo(req)
			return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(b)) + "\r\n\r\n" + b
		}, 200, "undecodable reply"},
		{"truncated", func(req []byte) string { return "HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n" + echo(req) }, 200,
			"reading the reply failed: unexpected EOF"},
	}
	for _, mode := range []juhe.Mode{juhe.ModePlain, juhe.ModeAES} {
		enc, err := juhe.EncodeMobile(mode, mobile, juhe.AESKey(testOpenID))
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(string(mode)+"/"+tt.name, func(t *testing.T) {
				var requests atomic.Int64
				url, _ := rawServer(t, func(req []byte, _ int) (string, bool) {
					requests.Add(1)
					if !bytes.Contains(req, []byte(key)) {
						t.Errorf("the request lacks the key: %q", req)
					}
					// A reply cut short ends with the connection.
					return tt.reply(req), tt.name == "truncated"
				})
				c := newClient(t, url, func(cfg *juhe.Config) { cfg.Key, cfg.Mode, cfg.Retries = key, mode, 1 })
				_, err := c.Query(t.Context(), mobile, testDate)
				var e *juhe.Error
				if !errors.As(err, &e) || e.Class != juhe.ClassTransport || e.HTTPStatus != tt.status {
					t.Fatalf("err = %v (%+v), want a transport error with status %d", err, e, tt.status)
				}
				if !strings.HasPrefix(err.Error(), "juhe: POST /twoSellTel/query") || !strings.Contains(err.Error(), tt.text) {
					t.Errorf("message %q, want one containing %q", err, tt.text)
				}
				for _, s := range []string{key, mobile, enc} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("message %q contains a secret", err)
					}
				}
				if n := requests.Load(); n != 2 {
					t.Errorf("%d requests, want 2 (transport faults are retried)", n)
				}
			})
		}
	}
}

// Both paths, the fast one and the one traced queries take (net/http's
// reader on the same connections), read the same replies the same way.
func TestTransportsReadRepliesAlike(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for _, traced := range []bool{false, true} {
		client := func(t *testing.T, url string) *juhe.Client {
			return newClient(t, url, func(cfg *juhe.Config) {
				cfg.Retries = -1
				if traced {
					cfg.TracerProvider = tp
				}
			})
		}
		t.Run(fmt.Sprintf("traced=%v", traced), func(t *testing.T) {
			// A pooled connection the server closed while it was idle (a
			// keep-alive timeout) is replaced before anything is written on
			// it, at no attempt's cost: the traced path took it for a
			// failed query (a breaker failure), and could not resend a body.
			t.Run("closed while idle", func(t *testing.T) {
				url, conns, closed := rawServerClosing(t, func(req []byte, i int) (string, bool) {
					if !bytes.Contains(req, []byte("mobile=")) {
						return "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", true // the body was lost
					}
					return okReply(""), true // a keep-alive reply, then the server's close
				})
				c := client(t, url)
				for i := range 3 {
					if a, err := c.Query(t.Context(), testMobile, testDate); err != nil || a.Res != 1 || a.Attempts != 1 {
						t.Fatalf("query %d: %+v, %v", i, a, err)
					}
					<-closed
				}
				if n := conns.Load(); n != 3 {
					t.Errorf("%d connections for 3 queries, want 3", n)
				}
			})
			// A connection that ends after the request was read, before a
			// reply: the provider may have answered (and billed) it, so it
			// is an attempt, a transport fault, not sent again unseen.
			// (Found by review: it was resent within the attempt, and the
			// provider read three requests for two attempts.)
			t.Run("closed after reading the request", func(t *testing.T) {
				var read atomic.Int64
				url, _ := rawServer(t, func(_ []byte, i int) (string, bool) {
					read.Add(1)
					if i == 0 {
						return okReply(""), false
					}
					return "", true
				})
				c := client(t, url)
				attempts := 0
				for i := range 2 {
					a, err := c.Query(t.Context(), testMobile, testDate)
					attempts += a.Attempts
					if (i == 1) != juhe.IsTransport(err) {
						t.Fatalf("query %d: %v, want a transport fault for the second only", i, err)
					}
				}
				if n := read.Load(); n != int64(attempts) {
					t.Errorf("the provider read %d requests, the client counts %d attempts", n, attempts)
				}
			})
			// A reply over the limit is not read past it: the traced
			// path's body Close read the rest to its end (found by review).
			t.Run("reply over the limit", func(t *testing.T) {
				const size = 256 << 20
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				written := make(chan int64, 1)
				go func() {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					defer conn.Close()
					if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
						return
					}
					fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
					chunk := bytes.Repeat([]byte(" "), 64<<10)
					var n int64
					for n < size {
						k, err := conn.Write(chunk)
						n += int64(k)
						if err != nil {
							break
						}
					}
					written <- n
				}()
				if _, err := client(t, "http://"+ln.Addr().String()).Query(t.Context(), testMobile, testDate); !juhe.IsTransport(err) {
					t.Fatalf("err = %v, want a transport fault", err)
				}
				if n := <-written; n >= size {
					t.Errorf("the client read the whole %d MiB reply, not 64 KiB of it", n>>20)
				}
			})
			// An informational reply (103 Early Hints) before each reply:
			// left unread, it made every query take the reply of the one
			// before it on the same connection.
			t.Run("informational reply first", func(t *testing.T) {
				var n atomic.Int64
				url, conns := rawServer(t, func([]byte, int) (string, bool) {
					body := fmt.Sprintf(`{"reason":"成功","result":{"res":1,"orderid":"JH-%d"},"error_code":0}`, n.Add(1))
					return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
						"HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body, false
				})
				c := client(t, url)
				for i := 1; i <= 3; i++ {
					if a, err := c.Query(t.Context(), testMobile, testDate); err != nil || a.OrderID != fmt.Sprintf("JH-%d", i) {
						t.Fatalf("query %d: %+v, %v; want its own reply, JH-%d", i, a, err, i)
					}
				}
				if n := conns.Load(); n != 1 {
					t.Errorf("%d connections for 3 queries, want 1", n)
				}
			})
			// A head that does not end is not read whole.
			t.Run("head too long", func(t *testing.T) {
				url, _ := rawServer(t, func([]byte, int) (string, bool) {
					return "HTTP/1.1 200 OK\r\nX-Junk: " + strings.Repeat("a", 1<<20), true
				})
				if _, err := client(t, url).Query(t.Context(), testMobile, testDate); err == nil || !strings.Contains(err.Error(), "head too long") {
					t.Errorf("a 1 MiB head: %v, want the head refused", err)
				}
			})
		})
	}
}
