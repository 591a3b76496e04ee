package main

import (
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
)

// replyingServer listens on a local port and answers the first bytes of
// every connection with reply, then closes it: what a server that is not a
// Kafka listener does with a Kafka request (nginx answers a request line it
// cannot parse with a 400 at once; a TLS listener answers bytes that are not
// a handshake with an alert). It returns the address and the count of
// connections.
func replyingServer(t *testing.T, reply []byte) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				if _, err := c.Read(make([]byte, 512)); err != nil && err != io.EOF {
					return
				}
				c.Write(reply)
			}()
		}
	}()
	return ln.Addr().String(), &conns
}

// Found by a walkthrough: --brokers given a port that is not a Kafka
// listener ended with franz-go's guess ("is your broker port correct?") and
// no word of the setting to change. The error now says what the port is and
// what to fix, and the command ends at the first answer.
func TestNotAKafkaListenerSaysWhatToFix(t *testing.T) {
	t.Setenv("TWOSELL_CACHE_SECRET", "listener-test-secret")
	for _, tt := range []struct {
		name  string
		reply string
		want  string
	}{
		{"http", "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
			"it is an HTTP server's (a web console, a REST proxy, a schema registry?), not a Kafka listener; check kafka.brokers (--brokers"},
		// A TLS 1.2 fatal alert, handshake_failure: what a TLS listener
		// sends for a plaintext Kafka request.
		{"tls", "\x15\x03\x03\x00\x02\x02\x28", "it is a TLS listener; set kafka.tls.enabled: true"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, conns := replyingServer(t, []byte(tt.reply))
			code, stdout, stderr := reviewRun(t, t.Context(), "ledger", "export", "--brokers", addr)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stdout %q; stderr %q", code, stdout, stderr)
			}
			if !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, "kafka (brokers "+addr) {
				t.Errorf("stderr does not say what to fix (%q):\n%s", tt.want, stderr)
			}
			// franz-go tries a request again on a new connection at once,
			// once, and takes the answer for final.
			if n := conns.Load(); n > 2 {
				t.Errorf("%d connections, want at most 2", n)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}
