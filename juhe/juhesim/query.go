package juhesim

import (
	"context"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twosell/twosell/juhe"
)

// maxFormBytes bounds a POST body: three short parameters fit in far less.
const maxFormBytes = 64 << 10

// serveQuery serves /twoSellTel/query (encrypted false) and
// /twoSellTel/queryEncry (encrypted true) through net/http. The fast path
// of Server (server.go) serves the same requests by the same steps: both
// leave the rules to decide.
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
	code, res := s.decide(st, active, r.RemoteAddr, params, encrypted)
	s.answer(w, code, res)
}

// decide returns the answer to a request that has waited out its latency
// and met no outage: steps 3 to 9 of the package documentation. st are the
// faults in force when it arrived, active whether they apply to it.
func (s *Sim) decide(st *faultState, active bool, remoteAddr string, params queryParams, encrypted bool) (code, res int) {
	if active && !st.allowIP(remoteAddr, s.now()) {
		return codeIPLimit, 0
	}
	if _, ok := s.keys[params.key]; !ok {
		return codeBadKey, 0
	}
	if active && !st.allowGlobal(s.now()) {
		return codeRequestsLimit, 0
	}
	if active && len(st.codes) > 0 {
		if code, ok := st.injected(s.float64()); ok {
			return code, 0
		}
	}

	mobile, date := params.mobile, params.date
	if mobile == "" || date == "" {
		return codeBadParam, 0
	}
	if _, ok := parseDate(date); !ok {
		return codeBadParam, 0
	}
	if encrypted {
		mobile, mode, code := s.decodeMobile(mobile)
		if mode != "" {
			s.stats.mode(mode)
		}
		if code != codeOK {
			return code, 0
		}
		return Expect(mobile, date)
	}
	if !juhe.ValidMobile(mobile) {
		return codeBadParam, 0
	}
	s.stats.mode(juhe.ModePlain)
	s.learn(mobile)
	return Expect(mobile, date)
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
func formParams(w http.ResponseWriter, r *http.Request) queryParams {
	if r.Method == http.MethodGet {
		return paramsOf(r.URL.RawQuery, false)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		return queryParams{}
	}
	if ct := r.Header.Get("Content-Type"); ct != formType { // the usual case needs no parsing
		if ct, _, err = mime.ParseMediaType(ct); err != nil || ct != formType {
			return queryParams{}
		}
	}
	return paramsOf(string(body), true)
}

// paramsOf returns the parameters in form, a query string or (body true) a
// POST's form body. A query keeps the pairs that parse, as r.URL.Query()
// does; a body that does not parse has none (see formParams).
func paramsOf(form string, body bool) queryParams {
	p, ok := parseParams(form)
	if body && !ok {
		return queryParams{}
	}
	return p
}

const formType = "application/x-www-form-urlencoded"

// queryParams are the parameters the provider reads, each its first value, as
// url.Values.Get gives it.
type queryParams struct {
	key, mobile, date string
}

// maxFastParams is how many parameters parseParams reads itself; it leaves
// longer queries to url.ParseQuery, whose limit on their number can be
// changed with GODEBUG.
const maxFastParams = 16

// parseParams parses q as url.ParseQuery does, without building the
// url.Values; ok is false where url.ParseQuery returns an error. Like
// url.ParseQuery, it keeps the pairs that parse when some do not.
func parseParams(q string) (p queryParams, ok bool) {
	if strings.Count(q, "&") >= maxFastParams {
		v, err := url.ParseQuery(q)
		return queryParams{v.Get("key"), v.Get("mobile"), v.Get("date")}, err == nil
	}
	ok = true
	var seenKey, seenMobile, seenDate bool
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		if strings.Contains(pair, ";") {
			ok = false
			continue
		}
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		name, err := queryUnescape(name)
		if err != nil {
			ok = false
			continue
		}
		if value, err = queryUnescape(value); err != nil {
			ok = false
			continue
		}
		switch {
		case name == "key" && !seenKey:
			p.key, seenKey = value, true
		case name == "mobile" && !seenMobile:
			p.mobile, seenMobile = value, true
		case name == "date" && !seenDate:
			p.date, seenDate = value, true
		}
	}
	return p, ok
}

// queryUnescape is url.QueryUnescape, which allocates even when there is
// nothing to unescape.
func queryUnescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	return url.QueryUnescape(s)
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
	pt, err := decryptAES(s.aesBlock, v)
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

// decryptAES is juhe.DecryptAES with the cipher built once: the standard
// base64 of AES-128-ECB with PKCS5 padding.
func decryptAES(block cipher.Block, b64 string) (string, error) {
	ct := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Decode(ct, []byte(b64))
	if err != nil {
		return "", err
	}
	ct = ct[:n]
	bs := block.BlockSize()
	if len(ct) == 0 || len(ct)%bs != 0 {
		return "", errNotAES
	}
	for i := 0; i < len(ct); i += bs {
		block.Decrypt(ct[i:i+bs], ct[i:i+bs])
	}
	pad := int(ct[len(ct)-1])
	if pad == 0 || pad > bs || pad > len(ct) {
		return "", errNotAES
	}
	for _, b := range ct[len(ct)-pad:] {
		if int(b) != pad {
			return "", errNotAES
		}
	}
	return string(ct[:len(ct)-pad]), nil
}

var errNotAES = errors.New("not whole AES blocks with PKCS5 padding")

// jsonType is the Content-Type of every answer.
const jsonType = "application/json;charset=utf-8"

// jsonContentType is jsonType as a header value, shared: net/http copies a
// handler's header before it writes it, and never changes it.
var jsonContentType = []string{jsonType}

// answer writes the reply of appendAnswer through net/http.
func (s *Sim) answer(w http.ResponseWriter, code, res int) {
	w.Header()["Content-Type"] = jsonContentType
	w.Write(s.appendAnswer(make([]byte, 0, 128), code, res))
}

// appendAnswer counts the answer code and appends the provider's JSON reply
// for it to b, with res and a new order id on success. The reply is written
// by hand, in the bytes encoding/json writes for
// {"reason":…,"result":{"res":…,"orderid":…}|null,"error_code":…}.
func (s *Sim) appendAnswer(b []byte, code, res int) []byte {
	s.stats.code(code)
	if code != codeOK {
		return append(b, errorReply(code)...)
	}
	b = append(b, successHead...)
	b = strconv.AppendInt(b, int64(res), 10)
	b = append(b, `,"orderid":"`...)
	b = s.appendOrderID(b)
	return append(b, `"},"error_code":0}`...)
}

// successHead begins every success reply.
var successHead = `{"reason":` + jsonString(Reason(codeOK)) + `,"result":{"res":`

// errorReplies are the replies of the document's codes, made once.
var errorReplies = func() map[int]string {
	m := make(map[int]string, len(reasons))
	for code := range reasons {
		m[code] = makeErrorReply(code)
	}
	return m
}()

// errorReply returns the reply for code, an error.
func errorReply(code int) string {
	if r, ok := errorReplies[code]; ok {
		return r
	}
	return makeErrorReply(code) // a code only an injected fault gives
}

func makeErrorReply(code int) string {
	return `{"reason":` + jsonString(Reason(code)) + `,"result":null,"error_code":` + strconv.Itoa(code) + `}`
}

// jsonString encodes s as encoding/json does, HTML escaping included.
func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // cannot happen: a string
	}
	return string(b)
}

// orderID returns an order id in the provider's format: JH327, the time in
// China as yyyyMMddHHmmss, and a 4-digit counter (23 characters).
func (s *Sim) orderID() string {
	return string(s.appendOrderID(make([]byte, 0, 23)))
}

// appendOrderID appends a new order id to b.
func (s *Sim) appendOrderID(b []byte) []byte {
	n := s.orders.Add(1) % 10000
	t := s.now().In(china)
	b = append(b, "JH327"...)
	if yy, mm, dd := t.Date(); yy < 0 || yy > 9999 {
		b = t.AppendFormat(b, "20060102150405") // a clock far off: let time say how
	} else {
		h, mi, sec := t.Clock()
		b = appendDigits(b, yy, 4)
		b = appendDigits(b, int(mm), 2)
		b = appendDigits(b, dd, 2)
		b = appendDigits(b, h, 2)
		b = appendDigits(b, mi, 2)
		b = appendDigits(b, sec, 2)
	}
	return appendDigits(b, int(n), 4)
}

// appendDigits appends the width lowest decimal digits of v >= 0,
// zero-padded.
func appendDigits(b []byte, v, width int) []byte {
	start := len(b)
	for range width {
		b = append(b, '0')
	}
	for i := len(b) - 1; i >= start; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

// delay waits for the latency of f, or until ctx ends; it reports whether
// the wait ran its course.
func (s *Sim) delay(ctx context.Context, f Faults) bool {
	d := s.latency(f)
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

// latency draws the delay of one reply under f: its latency and jitter.
func (s *Sim) latency(f Faults) time.Duration {
	d := f.Latency
	if f.Jitter > 0 {
		d += time.Duration(s.int64N(int64(f.Jitter)))
	}
	return d
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
		if hc, ok := conn.(interface{ NetConn() net.Conn }); ok {
			conn = hc.NetConn() // a connection Server handed over (handedConn)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // close with RST, not FIN: a reset, not an empty reply
		}
		conn.Close()
	}
}
