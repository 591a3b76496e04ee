package juhesim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twosell/twosell/juhe/juhesim"
)

const (
	testKey    = "test-key-0123456789abcdef"
	testOpenID = "oTwosellTestOpenID0001"
	testDate   = "20200101"
)

var cst = time.FixedZone("CST", 8*60*60)

// fixedNow is the document's example order time, 2019-11-08 15:25:22 in China.
var fixedNow = time.Date(2019, time.November, 8, 7, 25, 22, 0, time.UTC)

// clock is a test clock that moves only when told to.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newSim starts a simulator with the test key and openid, a small population
// and a fixed clock; edit changes the configuration first.
func newSim(t *testing.T, edit func(*juhesim.Config)) (*juhesim.Sim, *httptest.Server) {
	t.Helper()
	cfg := juhesim.Config{
		Keys:       []string{testKey},
		OpenID:     testOpenID,
		Population: 200,
		Seed:       1,
		Now:        func() time.Time { return fixedNow },
	}
	if edit != nil {
		edit(&cfg)
	}
	sim, err := juhesim.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

// answer is the provider's reply as a client decodes it.
type answer struct {
	Reason string `json:"reason"`
	Result *struct {
		Res     int    `json:"res"`
		OrderID string `json:"orderid"`
	} `json:"result"`
	ErrorCode int `json:"error_code"`
}

// params builds a request's parameters; empty values are left out, so that a
// test can say "no mobile" with "".
func params(key, mobile, date string) url.Values {
	v := url.Values{}
	for name, val := range map[string]string{"key": key, "mobile": mobile, "date": date} {
		if val != "" {
			v.Set(name, val)
		}
	}
	return v
}

// send sends v to path with method: in the query string for GET, as a form
// body for POST.
func send(ctx context.Context, srv *httptest.Server, method, path string, v url.Values) (*http.Response, error) {
	var req *http.Request
	var err error
	if method == http.MethodPost {
		req, err = http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader(v.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		req, err = http.NewRequestWithContext(ctx, method, srv.URL+path+"?"+v.Encode(), nil)
	}
	if err != nil {
		return nil, err
	}
	return srv.Client().Do(req)
}

// ask sends v and decodes the provider's reply, failing the test unless it
// is an HTTP 200 JSON answer.
func ask(t *testing.T, srv *httptest.Server, method, path string, v url.Values) answer {
	t.Helper()
	resp, err := send(t.Context(), srv, method, path, v)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return decode(t, resp)
}

func decode(t *testing.T, resp *http.Response) answer {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json;charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	if (a.ErrorCode == 0) != (a.Result != nil) {
		t.Fatalf("result must be present exactly on success: %s", body)
	}
	if a.Reason != juhesim.Reason(a.ErrorCode) {
		t.Fatalf("reason %q for code %d, want %q", a.Reason, a.ErrorCode, juhesim.Reason(a.ErrorCode))
	}
	return a
}

// got reduces an answer to what the rule decides: the code and res.
func (a answer) got() (code, res int) {
	if a.Result == nil {
		return a.ErrorCode, 0
	}
	return a.ErrorCode, a.Result.Res
}
