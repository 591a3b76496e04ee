package juhesim

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twosell/twosell/juhe"
)

// The simulator parses, formats and decrypts by hand where the standard
// library allocates. These tests hold each hand-written path to the library
// code it replaces, on many inputs.

func TestParseParamsMatchesURL(t *testing.T) {
	pieces := []string{
		"key=k", "key=", "key", "key=k2", "%6Bey=escaped", "mobile=17312345678", "mobile=a+b",
		"mobile=%2B%2F%3D", "mobile=%zz", "mobile=%", "mo%62ile=m", "date=20200101", "date=2020%3B",
		"date", "=x", "=", "a;b=c", "date=x;y", "x=%4", "+key=plus", "key+=plus", "other=1", "",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(q string) {
		t.Helper()
		v, err := url.ParseQuery(q)
		want := queryParams{v.Get("key"), v.Get("mobile"), v.Get("date")}
		got, ok := parseParams(q)
		if got != want || ok != (err == nil) {
			t.Fatalf("parseParams(%q) = %+v, %v; url.ParseQuery: %+v, %v", q, got, ok, want, err)
		}
	}
	for range 20000 {
		parts := make([]string, rng.IntN(6))
		for i := range parts {
			parts[i] = pieces[rng.IntN(len(pieces))]
		}
		check(strings.Join(parts, "&"))
	}
	check(strings.Repeat("&", maxFastParams-1) + "key=k")
	check(strings.Repeat("&", maxFastParams) + "key=k")
	check(strings.Repeat("x=1&", 10001) + "key=k") // over url's limit: an error
}

func FuzzParseParams(f *testing.F) {
	f.Add("key=k&mobile=17312345678&date=20200101")
	f.Add("key=k;x&mobile=%2B&date=%zz")
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		want := queryParams{v.Get("key"), v.Get("mobile"), v.Get("date")}
		if got, ok := parseParams(q); got != want || ok != (err == nil) {
			t.Fatalf("parseParams(%q) = %+v, %v; url.ParseQuery: %+v, %v", q, got, ok, want, err)
		}
	})
}

// reply is the provider's answer as encoding/json writes it, the reference
// for answer.
type reply struct {
	Reason    string  `json:"reason"`
	Result    *result `json:"result"` // null on every error
	ErrorCode int     `json:"error_code"`
}

type result struct {
	Res     int    `json:"res"`
	OrderID string `json:"orderid"`
}

func TestAnswerMatchesJSON(t *testing.T) {
	now := time.Date(2019, 11, 8, 7, 25, 22, 0, time.UTC)
	s, err := New(Config{Keys: []string{"k"}, Population: -1, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	codes := append(Codes(), 0, 1, -1, 99999, math.MaxInt)
	for _, code := range codes {
		for res := range 4 {
			s.orders.Store(uint64(res * 4000))
			rec := httptest.NewRecorder()
			s.answer(rec, code, res)

			s.orders.Store(uint64(res * 4000))
			want := reply{Reason: Reason(code), ErrorCode: code}
			if code == codeOK {
				want.Result = &result{Res: res, OrderID: s.orderID()}
			}
			b, err := json.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if got := rec.Body.String(); got != string(b) {
				t.Errorf("answer(%d, %d) = %s, want %s", code, res, got, b)
			}
			if ct := rec.Header().Values("Content-Type"); len(ct) != 1 || ct[0] != "application/json;charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
		}
	}
}

func TestOrderIDMatchesFormat(t *testing.T) {
	times := []time.Time{
		time.Date(0, 1, 1, 0, 0, 0, 0, china), time.Date(-1, 12, 31, 23, 59, 59, 0, china),
		time.Date(9999, 12, 31, 23, 59, 59, 0, china), time.Date(10000, 1, 1, 0, 0, 0, 0, china),
		time.Date(2019, 11, 8, 7, 25, 22, 999, time.UTC), {}, time.Now(),
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		times = append(times, time.Unix(rng.Int64N(1<<37)-1<<36, rng.Int64N(1e9)))
	}
	for i, tm := range times {
		s, err := New(Config{Keys: []string{"k"}, Population: -1, Now: func() time.Time { return tm }})
		if err != nil {
			t.Fatal(err)
		}
		n := uint64(i * 7919)
		s.orders.Store(n)
		want := fmt.Sprintf("JH327%s%04d", tm.In(china).Format("20060102150405"), (n+1)%10000)
		if got := s.orderID(); got != want {
			t.Errorf("orderID at %v = %s, want %s", tm, got, want)
		}
	}
}

func TestParseDateMatchesTime(t *testing.T) {
	check := func(s string) {
		t.Helper()
		want, err := time.ParseInLocation("20060102", s, china)
		if err != nil || len(s) != 8 || !allDigits(s) {
			want = time.Time{}
		}
		got, ok := parseDate(s)
		if ok != (want != time.Time{}) || !got.Equal(want) || got.Location() != want.Location() {
			t.Fatalf("parseDate(%q) = %v, %v; time.ParseInLocation: %v, %v", s, got, ok, want, err)
		}
	}
	var years []int
	for y := range 10000 {
		if y < 5 || y > 9995 || (y >= 1895 && y <= 2105) || y%100 == 0 {
			years = append(years, y)
		}
	}
	for _, y := range years {
		for m := range 14 {
			for d := range 33 {
				check(fmt.Sprintf("%04d%02d%02d", y, m, d))
			}
		}
	}
	for _, s := range []string{"", "2020010", "202001011", "2020-1-1", "+2020101", " 2020010", "２0200101"} {
		check(s)
	}
}

func TestDecryptAESMatchesJuhe(t *testing.T) {
	key := juhe.AESKey("openid")
	s, err := New(Config{Keys: []string{"k"}, OpenID: "openid", Population: -1})
	if err != nil {
		t.Fatal(err)
	}
	inputs := []string{"", "====", "not base64!", "AAAAAAAAAAAAAAAAAAAAAA==", "AAAA", "+86 173 1234 5678"}
	for _, pt := range []string{"", "17312345678", juhe.MD5Hex("17312345678"), juhe.SHA256Hex("x"), strings.Repeat("a", 16)} {
		v, err := juhe.EncryptAES(key, pt)
		if err != nil {
			t.Fatal(err)
		}
		other, _ := juhe.EncryptAES(juhe.AESKey("another"), pt)
		inputs = append(inputs, v, other, v[:len(v)-1], v+"\n", v[:4]+"\r\n"+v[4:], strings.TrimRight(v, "="))
	}
	// Every padding byte, valid or not.
	block := make([]byte, 16)
	for pad := range 256 {
		for i := range block {
			block[i] = byte(pad)
		}
		block[0] = 'x'
		ct := make([]byte, 16)
		s.aesBlock.Encrypt(ct, block)
		inputs = append(inputs, base64.StdEncoding.EncodeToString(ct))
	}
	for _, v := range inputs {
		want, wantErr := juhe.DecryptAES(key, v)
		got, err := decryptAES(s.aesBlock, v)
		if got != want || (err == nil) != (wantErr == nil) {
			t.Errorf("decryptAES(%q) = %q, %v; juhe.DecryptAES: %q, %v", v, got, err, want, wantErr)
		}
	}
}

// FuzzParseRequest holds parseRequest to http.ReadRequest: a request it
// takes, net/http reads alike, to the same byte (server_test.go compares the
// servers' replies).
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("GET /twoSellTel/query?date=20200101&key=k&mobile=17312345678 HTTP/1.1\r\nHost: 127.0.0.1:8088\r\nUser-Agent: Go-http-client/1.1\r\n\r\n"))
	f.Add([]byte("POST /twoSellTel/queryEncry HTTP/1.1\r\nHost: sim\r\nContent-Length: 05\r\ncontent-type: application/x-www-form-urlencoded\r\nConnection: Close\r\n\r\nkey=kGET"))
	f.Add([]byte("GET /twoSellTel/query? HTTP/1.1\r\nhost:\r\nX:\t\xff \r\nConnection: keep-alive\r\n\r\n"))
	f.Add([]byte("GET /twoSellTel/query HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := parseRequest(b)
		if !ok || r.size > len(b) {
			return
		}
		rd := bytes.NewReader(b)
		br := bufio.NewReader(rd)
		req, err := http.ReadRequest(br)
		if err != nil {
			t.Fatalf("parseRequest takes %q, which net/http rejects: %v", b, err)
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			t.Fatalf("%q: reading the body: %v", b, err)
		}
		method, path, form := http.MethodGet, juhe.PathQuery, string(b[r.formAt:r.formEnd])
		if r.post {
			method = http.MethodPost
		}
		if r.encrypted {
			path = juhe.PathQueryEncry
		}
		query := req.URL.RawQuery
		if r.post {
			query = string(body)
		}
		switch {
		case req.Method != method || req.Proto != "HTTP/1.1" || req.URL.Path != path:
			t.Fatalf("%q: net/http reads %s %s %s", b, req.Method, req.URL.Path, req.Proto)
		case query != form || !r.post && len(body) > 0:
			t.Fatalf("%q: form %q, net/http's %q (body %q)", b, form, query, body)
		case r.post && req.Header.Get("Content-Type") != formType:
			t.Fatalf("%q: net/http reads Content-Type %q", b, req.Header.Get("Content-Type"))
		case req.Close != r.close:
			t.Fatalf("%q: close %v, net/http's %v", b, r.close, req.Close)
		case len(req.TransferEncoding) > 0 || req.Header.Get("Expect") != "" || req.Header.Get("Upgrade") != "":
			t.Fatalf("%q: net/http reads a Transfer-Encoding, Expect or Upgrade", b)
		}
		if read := len(b) - br.Buffered() - rd.Len(); read != r.size {
			t.Fatalf("%q: size %d, net/http read %d bytes", b, r.size, read)
		}
	})
}
