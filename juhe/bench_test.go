package juhe_test

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
)

// BenchmarkQuery measures Client.Query against an in-process simulator, as
// twosell runs it by default: tracing off (a noop provider), metrics on (the
// SDK, as the Prometheus exporter uses it). The simulator's own work is part
// of each iteration; compare runs made in the same session.
func BenchmarkQuery(b *testing.B) {
	sim, err := juhesim.New(juhesim.Config{Keys: []string{simKey}, OpenID: simOpenID, Population: 200, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	b.Cleanup(srv.Close)
	mp := benchMeterProvider(b)
	mobiles := juhesim.Population(200)
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		b.Run(method, func(b *testing.B) {
			c := benchClient(b, srv.URL, method, mp)
			ctx := b.Context()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := c.Query(ctx, mobiles[i%len(mobiles)], "20200101"); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkQueryCanned is BenchmarkQuery against a server that answers every
// request with the same bytes, so that the figures are the client's alone.
func BenchmarkQueryCanned(b *testing.B) {
	const body = `{"reason":"成功","result":{"res":2,"orderid":"JH327201911081525223306"},"error_code":0}`
	addr := cannedServer(b, "HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=utf-8\r\n"+
		"Date: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	mp := benchMeterProvider(b)
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		b.Run(method, func(b *testing.B) {
			c := benchClient(b, "http://"+addr, method, mp)
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Query(ctx, testMobile, testDate); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchMeterProvider is the metrics SDK, as the Prometheus exporter uses it.
func benchMeterProvider(b *testing.B) *sdkmetric.MeterProvider {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp
}

// benchClient is a client as twosell runs it by default: tracing off,
// metrics on.
func benchClient(b *testing.B, baseURL, method string, mp *sdkmetric.MeterProvider) *juhe.Client {
	c, err := juhe.New(juhe.Config{
		BaseURL: baseURL, Key: simKey, OpenID: simOpenID, Method: method,
		TracerProvider: noop.NewTracerProvider(), MeterProvider: mp,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// cannedServer answers every HTTP/1.1 request on every connection with
// resp, reading each request's head and its Content-Length body first.
func cannedServer(tb testing.TB, resp string) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	out := []byte(resp)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					n := 0
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if string(line) == "\r\n" {
							break
						}
						if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
							n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
						}
					}
					if _, err := br.Discard(n); err != nil {
						return
					}
					if _, err := conn.Write(out); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
