package juhesim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/twosell/twosell/juhe"
)

// maxFormBytes bounds a POST body: three short parameters fit in far less.
const maxFormBytes = 64 << 10

// reply is the provider's answer, its fields in the document's order.
type reply struct {
	Reason    string  `json:"reason"`
	Result    *result `json:"result"` // null on every error
	ErrorCode int     `json:"error_code"`
}

type result struct {
	Res     int    `json:"res"`
	OrderID string `json:"orderid"`
}

// serveQuery serves /twoSellTel/query (encrypted false) and
// /twoSellTel/queryEncry (encrypted true).
func (s *Sim) serveQuery(w http.ResponseWriter, r *http.Request, encrypted bool) {
	s.stats.request(r.Method)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	params := formParams(w, r) // before any wait: see formParams
	st := s.faults.Load()
	active := st.active()
	if !s.delay(r.Context(), st.f) {
		s.stats.abandoned()
		return // the client gave up: nobody reads an answer
	}
	if active && st.f.Outage != OutageNone {
		s.stats.outage(st.f.Outage)
		s.outage(w, r, st.f.Outage)
		return
	}
	if active && !st.allowIP(r.RemoteAddr, s.now()) {
		s.answer(w, codeIPLimit, 0)
		return
	}
	if _, ok := s.keys[params.Get("key")]; !ok {
		s.answer(w, codeBadKey, 0)
		return
	}
	if active && !st.allowGlobal(s.now()) {
		s.answer(w, codeRequestsLimit, 0)
		return
	}
	if active && len(st.codes) > 0 {
		if code, ok := st.injected(s.float64()); ok {
			s.answer(w, code, 0)
			return
		}
	}

	mobile, date := params.Get("mobile"), params.Get("date")
	if mobile == "" || date == "" {
		s.answer(w, codeBadParam, 0)
		return
	}
	if _, ok := parseDate(date); !ok {
		s.answer(w, codeBadParam, 0)
		return
	}
	var mode juhe.Mode
	if encrypted {
		var code int
		mobile, mode, code = s.decodeMobile(mobile)
		if mode != "" {
			s.stats.mode(mode)
		}
		if code != codeOK {
			s.answer(w, code, 0)
			return
		}
	} else {
		if !juhe.ValidMobile(mobile) {
			s.answer(w, codeBadParam, 0)
			return
		}
		mode = juhe.ModePlain
		s.stats.mode(mode)
		s.learn(mobile)
	}
	code, res := Expect(mobile, date)
	s.answer(w, code, res)
}

// formParams returns the request's parameters: the query string of a GET,
// the form body of a POST. A POST whose body is not
// application/x-www-form-urlencoded has none, and neither does a body that
// does not parse: the provider reads nothing else.
//
// It reads a POST's body to the end whatever its type, and must run before
// any wait: net/http notices that an HTTP/1.1 client has gone away only once
// the handler has consumed the body, so a handler that waits on an unread
// body would wait for ever after its client gave up.
func formParams(w http.ResponseWriter, r *http.Request) url.Values {
	if r.Method == http.MethodGet {
		return r.URL.Query()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		return url.Values{}
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/x-www-form-urlencoded" {
		return url.Values{}
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return url.Values{}
	}
	return v
}

// decodeMobile reads the mobile parameter of /twoSellTel/queryEncry. It tells
// the mode from the value's shape, as the provider does, and returns the
// number with codeOK, or a code: codeBadParam for a value that no mode
// explains, codeNoRecord for a digest of a number the simulator does not
// know. mode is "" when no mode explains the value.
func (s *Sim) decodeMobile(v string) (mobile string, mode juhe.Mode, code int) {
	switch {
	case len(v) == 11 && allDigits(v):
		return "", "", codeBadParam // plaintext on the encrypted endpoint
	case len(v) == 32 && isLowerHex(v):
		return s.fromDigest(v, juhe.ModeMD5)
	case len(v) == 64 && isLowerHex(v):
		return s.fromDigest(v, juhe.ModeSHA256)
	}
	pt, err := juhe.DecryptAES(s.aesKey, v)
	if err != nil {
		return "", "", codeBadParam // not base64, bad padding, or another openid's key
	}
	switch {
	case juhe.ValidMobile(pt):
		s.learn(pt)
		return pt, juhe.ModeAES, codeOK
	case len(pt) == 32 && isLowerHex(pt):
		return s.fromDigest(pt, juhe.ModeMD5AES)
	case len(pt) == 64 && isLowerHex(pt):
		return s.fromDigest(pt, juhe.ModeSHA256AES)
	}
	return "", "", codeBadParam
}

func (s *Sim) fromDigest(digest string, mode juhe.Mode) (string, juhe.Mode, int) {
	m, ok := s.lookup(digest)
	if !ok {
		return "", mode, codeNoRecord
	}
	return m, mode, codeOK
}

// isLowerHex reports whether s is lowercase hex only: the provider's digests
// are lowercase, so uppercase hex is a client's mistake, not a digest.
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && (s[i] < 'a' || s[i] > 'f') {
			return false
		}
	}
	return true
}

// answer writes the provider's JSON reply for code, with res and an order id
// on success.
func (s *Sim) answer(w http.ResponseWriter, code, res int) {
	s.stats.code(code)
	rep := reply{Reason: Reason(code), ErrorCode: code}
	if code == codeOK {
		rep.Result = &result{Res: res, OrderID: s.orderID()}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		panic(err) // cannot happen: strings and ints only
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Write(b)
}

// orderID returns an order id in the provider's format: JH327, the time in
// China as yyyyMMddHHmmss, and a 4-digit counter (23 characters).
func (s *Sim) orderID() string {
	n := s.orders.Add(1) % 10000
	return fmt.Sprintf("JH327%s%04d", s.now().In(china).Format("20060102150405"), n)
}

// delay waits for the latency and jitter of f, or until ctx ends; it
// reports whether the wait ran its course.
func (s *Sim) delay(ctx context.Context, f Faults) bool {
	d := f.Latency
	if f.Jitter > 0 {
		d += time.Duration(s.int64N(int64(f.Jitter)))
	}
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// gatewayPage is what a reverse proxy answers when its upstream is down.
const gatewayPage = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n" +
	"<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n" +
	"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

// garbageBody is an HTTP 200 body that is not JSON, labelled as JSON: a
// client must not trust the content type.
const garbageBody = "<html><body>系统繁忙，请稍后再试</body></html>\n"

// outage answers r as the outage kind says.
func (s *Sim) outage(w http.ResponseWriter, r *http.Request, kind string) {
	switch kind {
	case Outage503:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, gatewayPage)
	case OutageHang:
		<-r.Context().Done() // ends when the client gives up or the server closes
	case OutageGarbage:
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		io.WriteString(w, garbageBody)
	case OutageReset:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			// HTTP/2 cannot hijack; aborting the handler resets the stream.
			panic(http.ErrAbortHandler)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // close with RST, not FIN: a reset, not an empty reply
		}
		conn.Close()
	}
}
