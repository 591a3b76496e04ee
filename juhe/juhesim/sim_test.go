package juhesim_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
)

func TestNewNeedsAKey(t *testing.T) {
	for _, keys := range [][]string{nil, {}, {""}, {"  "}} {
		if _, err := juhesim.New(juhesim.Config{Keys: keys}); err == nil {
			t.Errorf("New with keys %q: no error", keys)
		}
	}
	if _, err := juhesim.New(juhesim.Config{Keys: []string{"k"}, Faults: juhesim.Faults{Outage: "flood"}}); err == nil {
		t.Error("New with an unknown outage: no error")
	}
}

// TestEveryMode sends each number of a population in every mode, by GET and
// by POST, and checks the answers against the rule and the mode counters.
func TestEveryMode(t *testing.T) {
	sim, srv := newSim(t, nil)
	aesKey := juhe.AESKey(testOpenID)
	numbers := juhesim.Population(100) // every last-two-digit case once
	methods := []string{http.MethodGet, http.MethodPost}
	for _, mode := range juhe.Modes {
		for _, method := range methods {
			t.Run(string(mode)+"/"+method, func(t *testing.T) {
				for _, m := range numbers {
					enc, err := juhe.EncodeMobile(mode, m, aesKey)
					if err != nil {
						t.Fatal(err)
					}
					a := ask(t, srv, method, mode.Path(), params(testKey, enc, testDate))
					wantCode, wantRes := juhesim.Expect(m, testDate)
					if code, res := a.got(); code != wantCode || res != wantRes {
						t.Fatalf("%s: %d, %d; want %d, %d", m, code, res, wantCode, wantRes)
					}
				}
			})
		}
	}
	st := sim.Stats()
	for _, mode := range juhe.Modes {
		if got, want := st.ByMode[string(mode)], int64(len(numbers)*len(methods)); got != want {
			t.Errorf("ByMode[%s] = %d, want %d", mode, got, want)
		}
	}
	total := int64(len(juhe.Modes) * len(methods) * len(numbers))
	if st.Requests != total || st.ByMethod["GET"]+st.ByMethod["POST"] != total || st.ByMethod["GET"] != st.ByMethod["POST"] {
		t.Errorf("Requests %d, ByMethod %v; want %d split evenly", st.Requests, st.ByMethod, total)
	}
	var answered int64
	for _, n := range st.ByCode {
		answered += n
	}
	if answered != total || st.ByCode[232703] == 0 || st.ByCode[0] == 0 {
		t.Errorf("ByCode %v: want %d answers, some 0 and some 232703", st.ByCode, total)
	}
}

// TestQueryEncryRejects covers the values of mobile that no mode explains,
// and digests of numbers the simulator does not know.
func TestQueryEncryRejects(t *testing.T) {
	_, srv := newSim(t, func(c *juhesim.Config) { c.Population = -1 })
	const m = "17312345678"
	aesKey := juhe.AESKey(testOpenID)
	wrongKey := juhe.AESKey("someone-else")
	mustEnc := func(key []byte, s string) string {
		v, err := juhe.EncryptAES(key, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name   string
		mobile string
		code   int
	}{
		{"plaintext on the encrypted endpoint", m, 232702},
		{"invalid 11 digits", "12345678901", 232702},
		{"uppercase md5", strings.ToUpper(juhe.MD5Hex(m)), 232702},
		{"uppercase sha256", strings.ToUpper(juhe.SHA256Hex(m)), 232702},
		{"md5 one char short", juhe.MD5Hex(m)[:31], 232702},
		{"not base64", "!!not base64!!", 232702},
		{"base64 of a partial block", "MTIzNDU2Nzg=", 232702},
		{"aes under another openid", mustEnc(wrongKey, m), 232702},
		{"md5+aes under another openid", mustEnc(wrongKey, juhe.MD5Hex(m)), 232702},
		{"aes of a non-number", mustEnc(aesKey, "hello world"), 232702},
		{"aes of an invalid number", mustEnc(aesKey, "12345678901"), 232702},
		{"aes of uppercase md5", mustEnc(aesKey, strings.ToUpper(juhe.MD5Hex(m))), 232702},
		{"md5 of an unknown number", juhe.MD5Hex(m), 232703},
		{"sha256 of an unknown number", juhe.SHA256Hex(m), 232703},
		{"md5+aes of an unknown number", mustEnc(aesKey, juhe.MD5Hex(m)), 232703},
		{"sha256+aes of an unknown number", mustEnc(aesKey, juhe.SHA256Hex(m)), 232703},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := ask(t, srv, http.MethodGet, juhe.PathQueryEncry, params(testKey, tc.mobile, "20180518"))
			if a.ErrorCode != tc.code {
				t.Errorf("code %d, want %d", a.ErrorCode, tc.code)
			}
		})
	}
}

// TestRawPlusIsNotBase64 shows why a client must URL-encode the AES form: a
// raw '+' in a query string is a space.
func TestRawPlusIsNotBase64(t *testing.T) {
	_, srv := newSim(t, nil)
	enc, err := juhe.EncodeMobile(juhe.ModeAES, "17312345678", juhe.AESKey(testOpenID))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(enc, "+") {
		t.Fatalf("test vector %q has no '+'", enc)
	}
	resp, err := srv.Client().Get(srv.URL + juhe.PathQueryEncry + "?key=" + testKey + "&date=20180518&mobile=" + enc)
	if err != nil {
		t.Fatal(err)
	}
	if a := decode(t, resp); a.ErrorCode != 232702 {
		t.Errorf("raw '+': code %d, want 232702", a.ErrorCode)
	}
}

// TestDigestIndex checks which numbers the digest modes can answer for: the
// population, Register, and numbers seen in plaintext or AES form.
func TestDigestIndex(t *testing.T) {
	sim, srv := newSim(t, func(c *juhesim.Config) { c.Population = -1 })
	aesKey := juhe.AESKey(testOpenID)
	byDigest := func(mode juhe.Mode, m string) int {
		t.Helper()
		enc, err := juhe.EncodeMobile(mode, m, aesKey)
		if err != nil {
			t.Fatal(err)
		}
		return ask(t, srv, http.MethodGet, juhe.PathQueryEncry, params(testKey, enc, "20180518")).ErrorCode
	}
	const registered, plain, aes = "17312345678", "13912345678", "15912345678"
	for _, m := range []string{registered, plain, aes} {
		if code := byDigest(juhe.ModeMD5, m); code != 232703 {
			t.Fatalf("md5 of %s before it is known: %d, want 232703", m, code)
		}
	}
	sim.Register(registered, "not a mobile")
	ask(t, srv, http.MethodGet, juhe.PathQuery, params(testKey, plain, testDate))
	byDigest(juhe.ModeAES, aes)
	for _, m := range []string{registered, plain, aes} {
		for _, mode := range []juhe.Mode{juhe.ModeMD5, juhe.ModeSHA256, juhe.ModeMD5AES, juhe.ModeSHA256AES} {
			if code := byDigest(mode, m); code != 0 {
				t.Errorf("%s of %s once known: %d, want 0", mode, m, code)
			}
		}
	}

	// The default population is indexed at start.
	_, srv2 := newSim(t, func(c *juhesim.Config) { c.Population = 0 })
	pop := juhesim.Population(juhesim.DefaultPopulation)
	last := pop[len(pop)-1]
	a := ask(t, srv2, http.MethodGet, juhe.PathQueryEncry, params(testKey, juhe.SHA256Hex(last), testDate))
	if code, _ := juhesim.Expect(last, testDate); a.ErrorCode != code {
		t.Errorf("sha256 of the last of the default population: %d, want %d", a.ErrorCode, code)
	}
}

func TestParameters(t *testing.T) {
	_, srv := newSim(t, nil)
	const m = "17312345678"
	tests := []struct {
		name string
		path string
		v    map[string]string
		code int
	}{
		{"valid", juhe.PathQuery, map[string]string{"key": testKey, "mobile": m, "date": testDate}, 0},
		{"no key", juhe.PathQuery, map[string]string{"mobile": m, "date": testDate}, 10001},
		{"wrong key", juhe.PathQuery, map[string]string{"key": "nope", "mobile": m, "date": testDate}, 10001},
		{"wrong key on queryEncry", juhe.PathQueryEncry, map[string]string{"key": "nope", "mobile": juhe.MD5Hex(m), "date": testDate}, 10001},
		{"key with a space", juhe.PathQuery, map[string]string{"key": testKey + " ", "mobile": m, "date": testDate}, 10001},
		{"no mobile", juhe.PathQuery, map[string]string{"key": testKey, "date": testDate}, 232702},
		{"no mobile on queryEncry", juhe.PathQueryEncry, map[string]string{"key": testKey, "date": testDate}, 232702},
		{"no date", juhe.PathQuery, map[string]string{"key": testKey, "mobile": m}, 232702},
		{"bad date", juhe.PathQuery, map[string]string{"key": testKey, "mobile": m, "date": "20230230"}, 232702},
		{"bad date on queryEncry", juhe.PathQueryEncry, map[string]string{"key": testKey, "mobile": juhe.MD5Hex(m), "date": "2023-01-01"}, 232702},
		{"mobile with +86", juhe.PathQuery, map[string]string{"key": testKey, "mobile": "+86" + m, "date": testDate}, 232702},
		{"mobile with a dash", juhe.PathQuery, map[string]string{"key": testKey, "mobile": "173-1234-5678", "date": testDate}, 232702},
		{"digest on the plain endpoint", juhe.PathQuery, map[string]string{"key": testKey, "mobile": juhe.MD5Hex(m), "date": testDate}, 232702},
	}
	for _, tc := range tests {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			t.Run(tc.name+"/"+method, func(t *testing.T) {
				v := make(map[string][]string)
				for k, s := range tc.v {
					v[k] = []string{s}
				}
				if a := ask(t, srv, method, tc.path, v); a.ErrorCode != tc.code {
					t.Errorf("code %d, want %d", a.ErrorCode, tc.code)
				}
			})
		}
	}
}

// TestPostContentType: only a form body carries parameters.
func TestPostContentType(t *testing.T) {
	_, srv := newSim(t, nil)
	body := params(testKey, "17312345678", testDate).Encode()
	tests := []struct {
		contentType string
		code        int
	}{
		{"application/x-www-form-urlencoded", 0},
		{"application/x-www-form-urlencoded; charset=UTF-8", 0},
		{"application/json", 10001},
		{"text/plain", 10001},
		{"", 10001},
	}
	for _, tc := range tests {
		t.Run(tc.contentType, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+juhe.PathQuery, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if a := decode(t, resp); a.ErrorCode != tc.code {
				t.Errorf("code %d, want %d", a.ErrorCode, tc.code)
			}
		})
	}
	// A POST reads its body only, not its query string.
	resp, err := srv.Client().Post(srv.URL+juhe.PathQuery+"?"+body, "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := decode(t, resp); a.ErrorCode != 10001 {
		t.Errorf("POST with parameters in the URL: code %d, want 10001", a.ErrorCode)
	}
}

func TestMethodsAndPaths(t *testing.T) {
	_, srv := newSim(t, nil)
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodPut, juhe.PathQuery, http.StatusMethodNotAllowed},
		{http.MethodDelete, juhe.PathQueryEncry, http.StatusMethodNotAllowed},
		{http.MethodHead, juhe.PathQuery, http.StatusMethodNotAllowed},
		{http.MethodGet, "/twoSellTel/query/", http.StatusNotFound},
		{http.MethodGet, "/twoSellTel/other", http.StatusNotFound},
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodPost, "/sim/faults", http.StatusMethodNotAllowed},
		{http.MethodPost, "/sim/stats", http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp, err := send(t.Context(), srv, tc.method, tc.path, params(testKey, "17312345678", testDate))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("HTTP %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}
}

// TestReplyBytes pins the exact bytes of a success and an error, in the
// document's shape and field order.
func TestReplyBytes(t *testing.T) {
	_, srv := newSim(t, nil)
	tests := []struct {
		mobile, want string
	}{
		{"17312345678", `{"reason":"成功","result":{"res":1,"orderid":"JH327201911081525220001"},"error_code":0}`},
		{"17312345678", `{"reason":"成功","result":{"res":1,"orderid":"JH327201911081525220002"},"error_code":0}`},
		{"17312345600", `{"reason":"查无记录","result":null,"error_code":232703}`},
		{"1731234567", `{"reason":"参数异常","result":null,"error_code":232702}`},
	}
	for _, tc := range tests {
		resp, err := send(t.Context(), srv, http.MethodGet, juhe.PathQuery, params(testKey, tc.mobile, "20160101"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tc.want {
			t.Errorf("body\n%s\nwant\n%s", body, tc.want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json;charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
	}
}

func TestOrderID(t *testing.T) {
	_, srv := newSim(t, func(c *juhesim.Config) { c.Now = nil }) // the real clock
	re := regexp.MustCompile(`^JH327\d{18}$`)
	seen := map[string]bool{}
	for range 20 {
		a := ask(t, srv, http.MethodGet, juhe.PathQuery, params(testKey, "17312345678", testDate))
		id := a.Result.OrderID
		if !re.MatchString(id) {
			t.Fatalf("orderid %q does not match %s", id, re)
		}
		if seen[id] {
			t.Fatalf("orderid %q repeated", id)
		}
		seen[id] = true
	}
}

// TestEncryptAESVector checks juhe.EncryptAES against vectors made with
// OpenSSL, and that the simulator reads them:
//
//	K=$(printf %s oTwosellTestOpenID0001 | md5sum | cut -c1-16)   # 4ae60d1c9246d667
//	printf 17312345678 | openssl enc -aes-128-ecb -K $(printf %s $K | xxd -p) | base64
//	printf 9304541deaf91eaf4efbed43e2d94d11 | openssl enc -aes-128-ecb -K ... | base64 -w0
func TestEncryptAESVector(t *testing.T) {
	key := juhe.AESKey(testOpenID)
	if string(key) != "4ae60d1c9246d667" {
		t.Fatalf("AESKey = %q", key)
	}
	const m = "17312345678"
	vectors := []struct {
		mode      juhe.Mode
		plaintext string
		want      string
	}{
		{juhe.ModeAES, m, "Qh7I8Dsk43pP09S7+YTxvw=="},
		{juhe.ModeMD5AES, "9304541deaf91eaf4efbed43e2d94d11", "MBg5rsgjWXUVhBws75YZVvM1yR3G8I5ZssDbQ0mLh0FbPgWeSRnb0DZf/AY6NV/E"},
	}
	sim, srv := newSim(t, func(c *juhesim.Config) { c.Population = -1 })
	sim.Register(m)
	for _, v := range vectors {
		if got := juhe.MD5Hex(m); v.mode == juhe.ModeMD5AES && got != v.plaintext {
			t.Fatalf("MD5Hex(%s) = %s, want %s", m, got, v.plaintext)
		}
		got, err := juhe.EncryptAES(key, v.plaintext)
		if err != nil || got != v.want {
			t.Errorf("EncryptAES(%s) = %q, %v; want %q", v.plaintext, got, err, v.want)
		}
		a := ask(t, srv, http.MethodGet, juhe.PathQueryEncry, params(testKey, v.want, "20180518"))
		if code, res := a.got(); code != 0 || res != 1 {
			t.Errorf("%s vector: %d, %d; want 0, 1", v.mode, code, res)
		}
	}
	st := sim.Stats()
	if st.ByMode["aes"] != 1 || st.ByMode["md5+aes"] != 1 {
		t.Errorf("ByMode %v, want one aes and one md5+aes", st.ByMode)
	}
}
