package juhesim_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
)

// A wireCase is a conversation with a server over one connection, in raw
// bytes.
type wireCase struct {
	name   string
	writes []string // each written once the reply to the one before is read
	// pipeline writes them all at once, then reads a reply for each.
	pipeline bool
	// hangUp writes them all, closes the client's side of the connection
	// and reads whatever comes to the end.
	hangUp bool
	fast   bool // the fast path serves every request: nothing is handed over
	faults juhesim.Faults
}

// wireConfig is the configuration of both servers' simulators: the same seed
// and a fixed clock give the same answers and order ids.
func wireConfig(f juhesim.Faults) juhesim.Config {
	return juhesim.Config{
		Keys: []string{testKey}, OpenID: testOpenID, Population: 20, Seed: 1,
		Now: func() time.Time { return fixedNow }, Faults: f,
	}
}

// startServer serves a new simulator with a Server on loopback; it returns
// the simulator, the address and the count of connections handed over.
func startServer(t *testing.T, cfg juhesim.Config, wrap func(http.Handler) http.Handler) (*juhesim.Sim, *juhesim.Server, string, *atomic.Int64) {
	t.Helper()
	sim, err := juhesim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := sim.NewServer()
	handOvers := srv.CountHandOvers()
	if wrap != nil {
		srv.WrapHandler(wrap)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sim, srv, ln.Addr().String(), handOvers
}

// startNetHTTP serves a new simulator with a plain http.Server, the
// reference.
func startNetHTTP(t *testing.T, cfg juhesim.Config) (*juhesim.Sim, string) {
	t.Helper()
	sim, err := juhesim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: sim}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sim, ln.Addr().String()
}

// conversation is what a client saw of a wireCase.
type conversation struct {
	raw     string   // the bytes of the replies, Date's value blanked
	replies []string // each reply parsed, Date's value blanked
	alive   bool     // the connection took one more request afterwards
}

var dateLine = regexp.MustCompile(`\r\nDate: [^\r]*\r\n`)

// probe is the request that tells whether a connection is still open.
var probe = getQuery(juhe.PathQuery, params(testKey, "17312345678", testDate).Encode())

// converse runs tc against the server at addr.
func converse(t *testing.T, addr string, tc wireCase) conversation {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var raw bytes.Buffer
	br := bufio.NewReader(io.TeeReader(nc, &raw))
	var cv conversation
	// read reads the reply to a request of method, after any 1xx; it
	// reports false if the connection ended instead.
	read := func(method string) bool {
		for {
			resp, err := http.ReadResponse(br, &http.Request{Method: method})
			if err != nil {
				cv.replies = append(cv.replies, "(connection ended)")
				return false
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading a body: %v", err)
			}
			cv.replies = append(cv.replies, dumpReply(resp, body))
			if resp.StatusCode >= 200 {
				return true
			}
		}
	}
	methodOf := func(w string) string { m, _, _ := strings.Cut(w, " "); return m }
	switch {
	case tc.hangUp:
		io.WriteString(nc, strings.Join(tc.writes, ""))
		nc.(*net.TCPConn).CloseWrite()
		for read(methodOf(tc.writes[0])) {
		}
	case tc.pipeline:
		io.WriteString(nc, strings.Join(tc.writes, ""))
		for _, w := range tc.writes {
			if !read(methodOf(w)) {
				break
			}
		}
	default:
		for _, w := range tc.writes {
			if _, err := io.WriteString(nc, w); err != nil || !read(methodOf(w)) {
				break
			}
		}
	}
	if !tc.hangUp {
		_, err := io.WriteString(nc, probe)
		cv.alive = err == nil && read(http.MethodGet)
	}
	cv.raw = dateLine.ReplaceAllString(raw.String()[:raw.Len()-br.Buffered()], "\r\nDate: *\r\n")
	return cv
}

// dumpReply prints a reply: its status, its headers (Date's value blanked),
// whether it closes the connection, and its body.
func dumpReply(resp *http.Response, body []byte) string {
	h := resp.Header.Clone()
	if _, ok := h["Date"]; ok {
		h["Date"] = []string{"*"}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s (close %v)\n", resp.Proto, resp.Status, resp.Close)
	h.Write(&b)
	b.WriteString("\n")
	b.Write(body)
	return b.String()
}

// checkConformance runs tc against a Server and against a plain
// http.Server, each on a new simulator, and requires the same replies, byte
// for byte but for Date's value, the same connection behaviour and the same
// counters.
func checkConformance(t *testing.T, tc wireCase) {
	t.Helper()
	cfg := wireConfig(tc.faults)
	fastSim, _, fastAddr, handOvers := startServer(t, cfg, nil)
	refSim, refAddr := startNetHTTP(t, cfg)
	got, want := converse(t, fastAddr, tc), converse(t, refAddr, tc)
	if !slices.Equal(got.replies, want.replies) {
		t.Errorf("replies differ from net/http's\n got: %q\nwant: %q", got.replies, want.replies)
	} else if got.raw != want.raw {
		t.Errorf("reply bytes differ from net/http's\n got: %q\nwant: %q", got.raw, want.raw)
	}
	if got.alive != want.alive {
		t.Errorf("connection kept open: %v; net/http: %v", got.alive, want.alive)
	}
	if g, w := fastSim.Stats(), refSim.Stats(); !reflect.DeepEqual(g, w) {
		t.Errorf("stats %+v; net/http: %+v", g, w)
	}
	if g, w := fastSim.Faults(), refSim.Faults(); !reflect.DeepEqual(g, w) {
		t.Errorf("faults %+v; net/http: %+v", g, w)
	}
	if n := handOvers.Load(); tc.fast != (n == 0) {
		t.Errorf("%d connections handed over to net/http; the fast path should serve all: %v", n, tc.fast)
	}
}

// head joins lines into a request head.
func head(lines ...string) string {
	return strings.Join(lines, "\r\n") + "\r\n\r\n"
}

// getQuery is a GET to path with the query q, as twosell's client writes it,
// with the headers extra added.
func getQuery(path, q string, extra ...string) string {
	return head(append([]string{"GET " + path + "?" + q + " HTTP/1.1", "Host: 127.0.0.1:8088", "User-Agent: Go-http-client/1.1"}, extra...)...)
}

// postQuery is a POST of the form body to path, as twosell's client writes
// it, with the headers extra added.
func postQuery(path, body string, extra ...string) string {
	return head(append([]string{"POST " + path + " HTTP/1.1", "Host: 127.0.0.1:8088", "User-Agent: Go-http-client/1.1",
		"Content-Length: " + strconv.Itoa(len(body)), "Content-Type: application/x-www-form-urlencoded"}, extra...)...) + body
}

// wireCases are the conformance cases: the fast path's requests and their
// variations, then what it hands over.
func wireCases(t *testing.T) []wireCase {
	aesKey := juhe.AESKey(testOpenID)
	mobiles := juhesim.Population(20)
	ok := func(mobile string) string { return params(testKey, mobile, testDate).Encode() }
	known := mobiles[15]
	var cases []wireCase
	for _, mode := range juhe.Modes {
		for _, m := range []string{known, "13900000001", "13900000006"} {
			v, err := juhe.EncodeMobile(mode, m, aesKey)
			if err != nil {
				t.Fatal(err)
			}
			q := ok(v)
			cases = append(cases,
				wireCase{name: fmt.Sprintf("GET %s %s", mode, m), writes: []string{getQuery(mode.Path(), q)}, fast: true},
				wireCase{name: fmt.Sprintf("POST %s %s", mode, m), writes: []string{postQuery(mode.Path(), q)}, fast: true})
		}
	}
	md5Upper := strings.ToUpper(juhe.MD5Hex(known))
	fast := []struct{ name, req string }{
		{"wrong key", getQuery(juhe.PathQuery, params("wrong", known, testDate).Encode())},
		{"no key", postQuery(juhe.PathQuery, params("", known, testDate).Encode())},
		{"no mobile", getQuery(juhe.PathQuery, params(testKey, "", testDate).Encode())},
		{"short mobile", getQuery(juhe.PathQuery, ok("1731234567"))},
		{"no date", postQuery(juhe.PathQuery, params(testKey, known, "").Encode())},
		{"not a day", getQuery(juhe.PathQuery, params(testKey, known, "20200230").Encode())},
		{"date with dashes", getQuery(juhe.PathQuery, params(testKey, known, "2020-01-01").Encode())},
		{"plaintext on queryEncry", getQuery(juhe.PathQueryEncry, ok(known))},
		{"uppercase digest", postQuery(juhe.PathQueryEncry, ok(md5Upper))},
		{"unknown digest", getQuery(juhe.PathQueryEncry, ok(juhe.MD5Hex("13900000001")))},
		{"not base64", getQuery(juhe.PathQueryEncry, ok("not+base64"))},
		{"percent-encoded names and values", getQuery(juhe.PathQuery, "%6Bey="+testKey+"&mobile=%31%37%33%31%32%33%34%35%36%37%38&date=2020%30101")},
		{"plus for space", postQuery(juhe.PathQuery, "key="+testKey+"&mobile=173+12345678&date="+testDate)},
		{"bad escape", getQuery(juhe.PathQuery, ok(known)+"&x=%zz")},
		{"bad escape in a body", postQuery(juhe.PathQuery, ok(known)+"&x=%zz")},
		{"semicolon", getQuery(juhe.PathQuery, ok(known)+"&a;b=c")},
		{"semicolon in a body", postQuery(juhe.PathQuery, ok(known)+"&a;b=c")},
		{"repeated key, first wrong", getQuery(juhe.PathQuery, "key=wrong&"+ok(known))},
		{"repeated key, first right", postQuery(juhe.PathQuery, ok(known)+"&key=wrong")},
		{"repeated mobile", getQuery(juhe.PathQuery, ok(known)+"&mobile=1")},
		{"fragment", getQuery(juhe.PathQuery, ok(known)+"#frag")},
		{"non-ASCII in the query", getQuery(juhe.PathQuery, ok(known)+"&x=\xff\xfe")},
		{"empty query", head("GET "+juhe.PathQuery+" HTTP/1.1", "Host: sim")},
		{"bare question mark", head("GET "+juhe.PathQuery+"? HTTP/1.1", "Host: sim")},
		{"many parameters", getQuery(juhe.PathQuery, strings.Repeat("x=1&", 20)+ok(known))},
		{"empty body", postQuery(juhe.PathQuery, "")},
		{"lowercase names", head("GET "+juhe.PathQuery+"?"+ok(known)+" HTTP/1.1", "host: sim", "connection: keep-alive")},
		{"no space, tabs", head("GET "+juhe.PathQuery+"?"+ok(known)+" HTTP/1.1", "Host:sim", "X-Tabs:\t a \t", "Connection:\tKeep-Alive ")},
		{"empty Host", head("GET "+juhe.PathQuery+"?"+ok(known)+" HTTP/1.1", "Host:")},
		{"IPv6 Host", head("GET "+juhe.PathQuery+"?"+ok(known)+" HTTP/1.1", "Host: [::1]:8088")},
		{"obs-text value", getQuery(juhe.PathQuery, ok(known), "X-Note: caf\xc3\xa9 \xff")},
		{"net/http client's headers", getQuery(juhe.PathQuery, ok(known), "Accept-Encoding: gzip", "Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
		{"Content-Type on a GET", getQuery(juhe.PathQuery, ok(known), "Content-Type: text/plain")},
		{"padded Content-Length", strings.Replace(postQuery(juhe.PathQuery, ok(known)), "Content-Length: ", "Content-Length: 000", 1)},
		{"spaced Content-Type", strings.Replace(postQuery(juhe.PathQuery, ok(known)), "Content-Type: ", "content-type:   ", 1)},
		{"Connection: close", getQuery(juhe.PathQuery, ok(known), "Connection: close")},
		{"Connection: CLOSE on a POST", postQuery(juhe.PathQueryEncry, ok(juhe.SHA256Hex(known)), "Connection: CLOSE")},
	}
	for _, f := range fast {
		cases = append(cases, wireCase{name: f.name, writes: []string{f.req}, fast: true})
	}
	aes, err := juhe.EncodeMobile(juhe.ModeAES, known, aesKey)
	if err != nil {
		t.Fatal(err)
	}
	get, post := getQuery(juhe.PathQuery, ok(known)), postQuery(juhe.PathQueryEncry, ok(aes))
	stats := head("GET /sim/stats HTTP/1.1", "Host: sim")
	cases = append(cases,
		wireCase{name: "keep-alive", writes: []string{get, post, get, postQuery(juhe.PathQuery, "key=x")}, fast: true},
		wireCase{name: "pipelined", writes: []string{get, post, get}, pipeline: true, fast: true},
		wireCase{name: "CRLF after a POST's body", writes: []string{post + "\r\n", get}, fast: true},
		wireCase{name: "latency", writes: []string{get, post}, fast: true, faults: juhesim.Faults{Latency: time.Millisecond, Jitter: time.Millisecond}},
		wireCase{name: "pipelined with latency", writes: []string{get, post}, pipeline: true, fast: true, faults: juhesim.Faults{Latency: time.Millisecond}},
		wireCase{name: "qps limit", writes: []string{get, get, post, get}, fast: true, faults: juhesim.Faults{QPS: 2}},
		wireCase{name: "ip limit", writes: []string{get, post}, fast: true, faults: juhesim.Faults{IPQPS: 1}},
		wireCase{name: "error rates", writes: []string{get, post, get, post, get, post}, fast: true,
			faults: juhesim.Faults{ErrorRates: map[int]float64{232701: 0.3, 424242: 0.3}, AfterRequests: 1}},
		// A client that gives up during the latency, by a half-close.
		wireCase{name: "abandoned GET", writes: []string{get}, hangUp: true, fast: true, faults: juhesim.Faults{Latency: time.Hour}},
		wireCase{name: "abandoned POST with Connection: close", writes: []string{postQuery(juhe.PathQuery, ok(known), "Connection: close")},
			hangUp: true, fast: true, faults: juhesim.Faults{Latency: time.Hour}},
		wireCase{name: "abandoned, pipelined", writes: []string{get, get}, hangUp: true, fast: true, faults: juhesim.Faults{Latency: time.Hour}},
		// Fast requests, then one handed over on the same connection.
		wireCase{name: "then admin", writes: []string{get, post, stats, get}},
		wireCase{name: "then admin, pipelined", writes: []string{get, stats, get}, pipeline: true},
	)

	path := juhe.PathQuery + "?" + ok(known)
	body := ok(known)
	handed := []struct{ name, req string }{
		{"HTTP/1.0", head("GET "+path+" HTTP/1.0", "Host: sim")},
		{"HTTP/1.0 keep-alive", head("GET "+path+" HTTP/1.0", "Connection: keep-alive")},
		{"HTTP/1.2", head("GET "+path+" HTTP/1.2", "Host: sim")},
		{"HTTP/2.0", head("GET "+path+" HTTP/2.0", "Host: sim")},
		{"chunked POST", head("POST "+juhe.PathQuery+" HTTP/1.1", "Host: sim", "Content-Type: application/x-www-form-urlencoded", "Transfer-Encoding: chunked") +
			fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)},
		{"chunked GET", head("GET "+path+" HTTP/1.1", "Host: sim", "Transfer-Encoding: chunked") + "0\r\n\r\n"},
		{"identity encoding", head("GET "+path+" HTTP/1.1", "Host: sim", "Transfer-Encoding: identity")},
		{"text/plain POST", strings.Replace(postQuery(juhe.PathQuery, body), "application/x-www-form-urlencoded", "text/plain", 1)},
		{"form with a charset", strings.Replace(postQuery(juhe.PathQuery, body), "urlencoded", "urlencoded; charset=utf-8", 1)},
		{"uppercase form type", strings.Replace(postQuery(juhe.PathQuery, body), "application/x-www-form-urlencoded", "Application/X-WWW-Form-Urlencoded", 1)},
		{"no Content-Type", head("POST "+juhe.PathQuery+" HTTP/1.1", "Host: sim", "Content-Length: "+strconv.Itoa(len(body))) + body},
		{"two Content-Types", postQuery(juhe.PathQuery, body, "Content-Type: application/x-www-form-urlencoded")},
		{"no Content-Length", head("POST "+juhe.PathQuery+" HTTP/1.1", "Host: sim", "Content-Type: application/x-www-form-urlencoded")},
		{"two equal Content-Lengths", postQuery(juhe.PathQuery, body, "Content-Length: "+strconv.Itoa(len(body)))},
		{"two Content-Lengths", postQuery(juhe.PathQuery, body, "Content-Length: 1")},
		{"bad Content-Length", strings.Replace(postQuery(juhe.PathQuery, body), "Content-Length: ", "Content-Length: +", 1)},
		{"GET with a body", getQuery(juhe.PathQuery, ok(known), "Content-Length: 4") + "abcd"},
		{"GET with Content-Length: 0", getQuery(juhe.PathQuery, ok(known), "Content-Length: 0")},
		{"body beyond the buffer", postQuery(juhe.PathQuery, body+"&pad="+strings.Repeat("x", 5000))},
		{"body beyond maxFormBytes", postQuery(juhe.PathQuery, body+"&pad="+strings.Repeat("x", 70000))},
		{"head beyond the buffer", getQuery(juhe.PathQuery, ok(known), "X-Long: "+strings.Repeat("x", 5000))},
		{"Expect: 100-continue", postQuery(juhe.PathQuery, body, "Expect: 100-continue")},
		{"Expect: 100-continue, no body", getQuery(juhe.PathQuery, ok(known), "Expect: 100-continue")},
		{"Expect: other", getQuery(juhe.PathQuery, ok(known), "Expect: something")},
		{"Upgrade", getQuery(juhe.PathQuery, ok(known), "Connection: Upgrade", "Upgrade: websocket")},
		{"two Connection tokens", getQuery(juhe.PathQuery, ok(known), "Connection: keep-alive, close")},
		{"two Connections", getQuery(juhe.PathQuery, ok(known), "Connection: keep-alive", "Connection: close")},
		{"Connection: TE", getQuery(juhe.PathQuery, ok(known), "Connection: TE", "TE: trailers")},
		{"GET /sim/faults", head("GET /sim/faults HTTP/1.1", "Host: sim")},
		{"GET /sim/stats", stats},
		{"PUT /sim/faults", head("PUT /sim/faults HTTP/1.1", "Host: sim", "Content-Length: 12") + `{"qps": 0.5}`},
		{"PUT /sim/faults, bad", head("PUT /sim/faults HTTP/1.1", "Host: sim", "Content-Length: 8") + `{"qp": 1`},
		{"unknown path", head("GET /nope?"+ok(known)+" HTTP/1.1", "Host: sim")},
		{"trailing slash", head("GET "+juhe.PathQuery+"/?"+ok(known)+" HTTP/1.1", "Host: sim")},
		{"escaped path", head("GET /twoSellTel/%71uery?"+ok(known)+" HTTP/1.1", "Host: sim")},
		{"uppercase path", head("GET /twoSellTel/QUERY?"+ok(known)+" HTTP/1.1", "Host: sim")},
		{"absolute URI", head("GET http://sim"+path+" HTTP/1.1", "Host: sim")},
		{"HEAD", head("HEAD "+path+" HTTP/1.1", "Host: sim")},
		{"PUT", head("PUT "+path+" HTTP/1.1", "Host: sim", "Content-Length: 0")},
		{"DELETE", head("DELETE "+path+" HTTP/1.1", "Host: sim")},
		{"lowercase method", head("get "+path+" HTTP/1.1", "Host: sim")},
		{"OPTIONS *", head("OPTIONS * HTTP/1.1", "Host: sim")},
		{"no version", "GET " + path + "\r\n\r\n"},
		{"two spaces", head("GET  "+path+" HTTP/1.1", "Host: sim")},
		{"space in the query", head("GET "+juhe.PathQuery+"?a b HTTP/1.1", "Host: sim")},
		{"trailing space", head("GET "+path+" HTTP/1.1 ", "Host: sim")},
		{"control byte in the query", head("GET "+path+"\x01 HTTP/1.1", "Host: sim")},
		{"DEL in the query", head("GET "+path+"\x7f HTTP/1.1", "Host: sim")},
		{"bare LF", "GET " + path + " HTTP/1.1\nHost: sim\n\n"},
		{"bare LF at the end", "GET " + path + " HTTP/1.1\r\nHost: sim\r\n\n"},
		{"CR in a value", head("GET "+path+" HTTP/1.1", "Host: sim", "X-A: a\rb")},
		{"leading CRLF", "\r\n" + head("GET "+path+" HTTP/1.1", "Host: sim")},
		{"no Host", head("GET " + path + " HTTP/1.1")},
		{"two Hosts", head("GET "+path+" HTTP/1.1", "Host: a", "Host: b")},
		{"bad Host", head("GET "+path+" HTTP/1.1", "Host: a b")},
		{"odd but valid Host", head("GET "+path+" HTTP/1.1", "Host: a!b")},
		{"no colon", head("GET "+path+" HTTP/1.1", "Host: sim", "NoColon")},
		{"space before the colon", head("GET "+path+" HTTP/1.1", "Host : sim")},
		{"folded line", head("GET "+path+" HTTP/1.1", "Host: sim", "X-A: a", " folded")},
		{"folded first line", head("GET "+path+" HTTP/1.1", " X-A: a", "Host: sim")},
		{"control byte in a value", head("GET "+path+" HTTP/1.1", "Host: sim", "X-A: a\x01b")},
		{"empty name", head("GET "+path+" HTTP/1.1", "Host: sim", ": a")},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
	}
	for _, h := range handed {
		cases = append(cases, wireCase{name: h.name, writes: []string{h.req}})
	}
	return cases
}

// TestServerConformance holds the Server to net/http's replies: the fast
// path's, byte for byte, and everything handed over.
func TestServerConformance(t *testing.T) {
	for _, tc := range wireCases(t) {
		t.Run(tc.name, func(t *testing.T) { checkConformance(t, tc) })
	}
}

// TestServerConformanceRandom runs requests built at random from valid and
// invalid pieces through both servers.
func TestServerConformanceRandom(t *testing.T) {
	aes, err := juhe.EncodeMobile(juhe.ModeAES, "17312345678", juhe.AESKey(testOpenID))
	if err != nil {
		t.Fatal(err)
	}
	methods := []string{"GET", "GET", "GET", "POST", "POST", "POST", "HEAD", "PUT", "get"}
	paths := []string{juhe.PathQuery, juhe.PathQuery, juhe.PathQueryEncry, juhe.PathQueryEncry, juhe.PathQuery + "/", "/sim/stats", "/x"}
	protos := []string{"HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/1.2", "HTTP/1.1 ", "HTTP/3"}
	pairs := []string{"key=" + testKey, "key=" + testKey, "key=wrong", "mobile=17312345678", "mobile=17312345678",
		"mobile=" + url.QueryEscape(aes), "mobile=" + aes, "mobile=" + juhe.MD5Hex("17312345678"), "date=" + testDate,
		"date=" + testDate, "date=2020", "%6Bey=" + testKey, "a;b", "x=%zz", "x=\xff", "", "=", "x#y", "x\x01", "x y"}
	headers := []string{"Host: sim", "Host: sim", "Host: sim", "host: 127.0.0.1:1", "Host: a b", "Host:", "Host: a!b",
		"User-Agent: x", "Connection: close", "Connection: keep-alive", "connection: Close", "Connection: close, keep-alive",
		"Connection: Upgrade", "Content-Type: application/x-www-form-urlencoded", "Content-Type: application/x-www-form-urlencoded",
		"content-type: application/x-www-form-urlencoded ", "Content-Type: text/plain",
		"Content-Type: application/x-www-form-urlencoded; charset=utf-8", "Expect: 100-continue", "Expect: nope",
		"Upgrade: websocket", "X-Obs: \x80\xff", "X-Ctl: a\x01b", "Bad Name: x", "NoColon", " folded",
		"Accept-Encoding: gzip", "Transfer-Encoding: identity", "X-Empty:", ":", "X-Tab:\tv\t"}
	rng := rand.New(rand.NewPCG(7, 8))
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	for i := range 300 {
		var q []string
		for range rng.IntN(5) {
			q = append(q, pick(pairs))
		}
		form := strings.Join(q, "&")
		method, path := pick(methods), pick(paths)
		target := path
		var body string
		if method == "POST" || rng.IntN(4) == 0 {
			body = form
		} else if rng.IntN(5) > 0 {
			target += "?" + form
		}
		lines := []string{method + " " + target + " " + pick(protos)}
		for range rng.IntN(5) {
			lines = append(lines, pick(headers))
		}
		if body != "" || method == "POST" && rng.IntN(2) == 0 {
			// An honest length, or none and no body: a server must not
			// wait for bytes that never come.
			n := strconv.Itoa(len(body))
			switch rng.IntN(8) {
			case 0:
				body = ""
				lines = append(lines, "X-No-Length: 1")
			case 1:
				lines = append(lines, "Content-Length: 0"+n)
			case 2:
				lines = append(lines, "Content-Length: "+n, "Content-Length: "+n)
			default:
				lines = append(lines, "Content-Length: "+n)
			}
		}
		rng.Shuffle(len(lines)-1, func(i, j int) { lines[i+1], lines[j+1] = lines[j+1], lines[i+1] })
		req := head(lines...) + body
		if rng.IntN(10) == 0 {
			req = strings.ReplaceAll(req, "\r\n", "\n")
		}
		tc := wireCase{name: strconv.Itoa(i), writes: []string{req}}
		t.Run(tc.name, func(t *testing.T) {
			cfg := wireConfig(juhesim.Faults{})
			fastSim, _, fastAddr, _ := startServer(t, cfg, nil)
			refSim, refAddr := startNetHTTP(t, cfg)
			got, want := converse(t, fastAddr, tc), converse(t, refAddr, tc)
			if !slices.Equal(got.replies, want.replies) || got.raw != want.raw || got.alive != want.alive {
				t.Errorf("request %q:\n got %q (alive %v)\nwant %q (alive %v)", req, got.raw, got.alive, want.raw, want.alive)
			}
			if g, w := fastSim.Stats(), refSim.Stats(); !reflect.DeepEqual(g, w) {
				t.Errorf("request %q: stats %+v; net/http: %+v", req, g, w)
			}
		})
	}
}

// TestServerJuheClient: twosell's client, in every mode and method, gets the
// simulator's rule from a Server, all through the fast path.
func TestServerJuheClient(t *testing.T) {
	_, _, addr, handOvers := startServer(t, wireConfig(juhesim.Faults{}), nil)
	mobiles := juhesim.Population(20)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, mode := range juhe.Modes {
			c, err := juhe.New(juhe.Config{
				BaseURL: "http://" + addr, Key: testKey, OpenID: testOpenID, Method: method, Mode: mode,
				Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range mobiles {
				date := []string{"20150101", "20190615", "20241231"}[i%3]
				a, err := c.Query(t.Context(), m, date)
				if code, res := juhesim.Expect(m, date); err != nil || a.Code != code || a.Res != res || code == 0 && len(a.OrderID) != 23 {
					t.Fatalf("%s %s: Query(%s, %s) = %+v, %v; want code %d res %d", method, mode, m, date, a, err, code, res)
				}
			}
		}
	}
	if n := handOvers.Load(); n != 0 {
		t.Errorf("%d connections handed over to net/http, want none", n)
	}
}

// pipeListener accepts one connection, the server's end of a net.Pipe,
// whose reads return exactly what each write of the client's end sends.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// TestServerSplitHead: a head that arrives in pieces goes to net/http.
func TestServerSplitHead(t *testing.T) {
	sim, err := juhesim.New(wireConfig(juhesim.Faults{}))
	if err != nil {
		t.Fatal(err)
	}
	srv := sim.NewServer()
	handOvers := srv.CountHandOvers()
	ln := &pipeListener{conns: make(chan net.Conn, 1), done: make(chan struct{})}
	client, server := net.Pipe()
	ln.conns <- server
	go srv.Serve(ln)
	defer srv.Close()
	defer client.Close()

	req := getQuery(juhe.PathQuery, params(testKey, "17312345678", testDate).Encode())
	for _, part := range []string{req[:30], req[30:]} {
		if _, err := io.WriteString(client, part); err != nil {
			t.Fatal(err)
		}
	}
	a := decode(t, mustReadResponse(t, bufio.NewReader(client)))
	if code, res := juhesim.Expect("17312345678", testDate); a.ErrorCode != code || a.Result == nil || a.Result.Res != res {
		t.Errorf("answer %+v, want code %d res %d", a, code, res)
	}
	if n := handOvers.Load(); n != 1 {
		t.Errorf("%d connections handed over, want 1", n)
	}
}

func mustReadResponse(t *testing.T, br *bufio.Reader) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestServerOutageAtRunTime switches an outage on through /sim/faults while
// a connection is in the fast path: its next query meets the outage.
func TestServerOutageAtRunTime(t *testing.T) {
	query := getQuery(juhe.PathQuery, params(testKey, "17312345678", testDate).Encode())
	for _, kind := range []string{juhesim.Outage503, juhesim.OutageGarbage, juhesim.OutageReset, juhesim.OutageHang} {
		t.Run(kind, func(t *testing.T) {
			var sig *signalling
			sim, _, addr, handOvers := startServer(t, wireConfig(juhesim.Faults{}), func(h http.Handler) http.Handler {
				sig = newSignalling(h)
				return sig
			})
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			br := bufio.NewReader(nc)
			io.WriteString(nc, query)
			if a := decode(t, mustReadResponse(t, br)); a.ErrorCode != 0 {
				t.Fatalf("before the outage: code %d", a.ErrorCode)
			}
			if n := handOvers.Load(); n != 0 {
				t.Fatalf("%d connections handed over before the outage", n)
			}

			req, err := http.NewRequest(http.MethodPut, "http://"+addr+"/sim/faults", strings.NewReader(`{"outage":"`+kind+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("PUT /sim/faults: HTTP %d", resp.StatusCode)
			}
			<-sig.entered // the PUT's
			<-sig.done

			io.WriteString(nc, query)
			switch kind {
			case juhesim.Outage503:
				resp := mustReadResponse(t, br)
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "<center>nginx</center>") {
					t.Errorf("HTTP %d %q, want the gateway's 503", resp.StatusCode, body)
				}
			case juhesim.OutageGarbage:
				resp := mustReadResponse(t, br)
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusOK || json.Valid(body) {
					t.Errorf("HTTP %d %q, want 200 with a body that is not JSON", resp.StatusCode, body)
				}
			case juhesim.OutageReset:
				if _, err := http.ReadResponse(br, nil); !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("%v, want the connection reset", err)
				}
			case juhesim.OutageHang:
				<-sig.entered
				nc.Close() // the client gives up
				<-sig.done // and the handler returns
			}
			if got := sim.Stats().ByOutage[kind]; got != 1 {
				t.Errorf("ByOutage[%s] = %d, want 1", kind, got)
			}
			if n := handOvers.Load(); n != 2 {
				t.Errorf("%d connections handed over, want 2: the PUT's and the query's", n)
			}
		})
	}
}

// closeSignalListener tells when the server closes a connection.
type closeSignalListener struct {
	net.Listener
	closed chan struct{}
}

func (l *closeSignalListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &closeSignalConn{Conn: c, closed: l.closed}, nil
}

type closeSignalConn struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (c *closeSignalConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.closed <- struct{}{} })
	return err
}

// TestServerAbandon: a client that closes its connection during the
// latency is counted abandoned, and its request gets no answer.
func TestServerAbandon(t *testing.T) {
	q := params(testKey, "17312345678", testDate).Encode()
	for _, req := range []string{getQuery(juhe.PathQuery, q), postQuery(juhe.PathQuery, q)} {
		sim, err := juhesim.New(wireConfig(juhesim.Faults{Latency: time.Hour}))
		if err != nil {
			t.Fatal(err)
		}
		srv := sim.NewServer()
		handOvers := srv.CountHandOvers()
		tcp, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln := &closeSignalListener{Listener: tcp, closed: make(chan struct{}, 1)}
		go srv.Serve(ln)
		defer srv.Close()

		nc, err := net.Dial("tcp", tcp.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(nc, req)
		nc.Close()
		<-ln.closed // the server is done with the connection
		st := sim.Stats()
		if st.Requests != 1 || st.Abandoned != 1 || len(st.ByCode) != 0 {
			t.Errorf("%.4s: stats %+v, want 1 request, abandoned, unanswered", req, st)
		}
		if n := handOvers.Load(); n != 0 {
			t.Errorf("%.4s: %d connections handed over, want 0", req, n)
		}
	}
}

// gateClock is a Config.Now that, once armed, holds its callers until the
// test opens the gate: a request reads the clock after its latency, to
// answer, and stays in flight meanwhile.
type gateClock struct {
	armed   atomic.Bool
	once    sync.Once
	entered chan struct{} // closed when a caller first waits
	gate    chan struct{}
}

func newGateClock() *gateClock {
	return &gateClock{entered: make(chan struct{}), gate: make(chan struct{})}
}

func (g *gateClock) Now() time.Time {
	if g.armed.Load() {
		g.once.Do(func() { close(g.entered) })
		<-g.gate
	}
	return fixedNow
}

// inFlight starts a Server, makes idle a keep-alive connection that has been
// answered, sends a query on conn and returns once the query is in flight,
// held by the gate; Serve returns into served.
func inFlight(t *testing.T) (srv *juhesim.Server, gate *gateClock, conn net.Conn, idle net.Conn, served chan error) {
	t.Helper()
	gate = newGateClock()
	cfg := wireConfig(juhesim.Faults{})
	cfg.Now = gate.Now
	sim, err := juhesim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv = sim.NewServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served = make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	// An idle keep-alive connection.
	idle, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idle.Close() })
	io.WriteString(idle, getQuery(juhe.PathQuery, params("wrong", "17312345678", testDate).Encode()))
	if a := decode(t, mustReadResponse(t, bufio.NewReader(idle))); a.ErrorCode != 10001 {
		t.Fatalf("code %d, want 10001", a.ErrorCode)
	}

	conn, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	gate.armed.Store(true)
	io.WriteString(conn, getQuery(juhe.PathQuery, params(testKey, "17312345678", testDate).Encode()))
	<-gate.entered
	return srv, gate, conn, idle, served
}

// TestServerShutdown: Shutdown closes the idle connections, lets the request
// in flight finish, with Connection: close, and Serve returns
// http.ErrServerClosed.
func TestServerShutdown(t *testing.T) {
	srv, gate, conn, idle, served := inFlight(t)
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v, want http.ErrServerClosed", err)
	}
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("reading the idle connection: %v, want EOF", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	close(gate.gate)
	br := bufio.NewReader(conn)
	resp := mustReadResponse(t, br)
	if !resp.Close {
		t.Error("the reply during Shutdown lacks Connection: close")
	}
	if a := decode(t, resp); a.ErrorCode != 0 {
		t.Errorf("code %d, want 0", a.ErrorCode)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the reply: %v, want EOF", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := srv.Serve(&pipeListener{done: make(chan struct{})}); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v, want http.ErrServerClosed", err)
	}
}

// TestServerShutdownGraceOver: Shutdown gives up when its context ends, and
// Close then drops the request in flight.
func TestServerShutdownGraceOver(t *testing.T) {
	srv, gate, conn, _, served := inFlight(t)
	ctx, cancel := context.WithCancel(t.Context())
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	<-served
	cancel()
	if err := <-shut; !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown: %v, want context.Canceled", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	close(gate.gate)
	if n, err := conn.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("read %d bytes (%v), want the connection closed without a reply", n, err)
	}
}
