//go:build unix

package juhesim_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
)

// BenchmarkServe measures the simulator's cost per request over real
// loopback HTTP/1.1 keep-alive connections, as "twosell bench" loads it,
// served by net/http (net-http) and by Server's fast path (fast). The client
// writes pre-built request bytes and reads the reply by hand, so that nearly
// all the time and allocations measured are the server's.
func BenchmarkServe(b *testing.B) {
	aesKey := juhe.AESKey(testOpenID)
	mobiles := juhesim.Population(200)
	for _, server := range []string{"net-http", "fast"} {
		for _, mode := range []juhe.Mode{juhe.ModePlain, juhe.ModeMD5, juhe.ModeAES, juhe.ModeSHA256AES} {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				b.Run(fmt.Sprintf("%s/%s/%s", server, method, mode), func(b *testing.B) {
					reqs := make([][]byte, len(mobiles))
					for i, m := range mobiles {
						v, err := juhe.EncodeMobile(mode, m, aesKey)
						if err != nil {
							b.Fatal(err)
						}
						reqs[i] = rawRequest(method, mode.Path(), url.Values{
							"key": {testKey}, "mobile": {v}, "date": {testDate},
						})
					}
					benchServe(b, server == "fast", reqs)
				})
			}
		}
	}
}

func rawRequest(method, path string, v url.Values) []byte {
	q := v.Encode()
	if method == http.MethodGet {
		return fmt.Appendf(nil, "GET %s?%s HTTP/1.1\r\nHost: sim\r\nUser-Agent: bench\r\n\r\n", path, q)
	}
	return fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: sim\r\nUser-Agent: bench\r\n"+
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", path, len(q), q)
}

func benchServe(b *testing.B, fast bool, reqs [][]byte) {
	sim, err := juhesim.New(juhesim.Config{
		Keys:       []string{testKey},
		OpenID:     testOpenID,
		Population: 200,
		Seed:       1,
	})
	if err != nil {
		b.Fatal(err)
	}
	addr := serveBench(b, sim, fast)

	b.ReportAllocs()
	b.SetParallelism(4) // more connections than cores, as a pooled client has
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		for i := 0; pb.Next(); i++ {
			if _, err := conn.Write(reqs[i%len(reqs)]); err != nil {
				b.Error(err)
				return
			}
			if err := readReply(br); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	// The machine may be shared: CPU time per request is steadier than the
	// wall time of ns/op. It includes the client's, which is small.
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-us/op")
}

// serveBench serves sim on loopback until the benchmark ends, with its
// Server or (fast false) with net/http, and returns the address.
func serveBench(b *testing.B, sim *juhesim.Sim, fast bool) string {
	if !fast {
		srv := httptest.NewServer(sim)
		b.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := sim.NewServer()
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// processCPU returns the CPU time, user and system, this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readReply reads one HTTP/1.1 response with a Content-Length and checks
// its status is 200 and its body a success or no-record answer.
func readReply(br *bufio.Reader) error {
	n := -1
	for first := true; ; first = false {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if first {
			if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
				return fmt.Errorf("status line %q", line)
			}
			continue
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, err = strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return err
			}
		}
	}
	if n < 0 {
		return fmt.Errorf("no Content-Length")
	}
	body, err := br.Peek(n)
	if err != nil {
		return err
	}
	if !bytes.Contains(body, []byte(`"error_code":0}`)) && !bytes.Contains(body, []byte(`"error_code":232703}`)) {
		return fmt.Errorf("reply %s", body)
	}
	_, err = br.Discard(n)
	return err
}
