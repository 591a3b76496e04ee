package juhe_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/twosell/twosell/juhe"
)

// seen is what the server received.
type seen struct {
	method, path, contentType, rawQuery, body string
}

// recorder is a handler that keeps the last request and answers res 1.
type recorder struct {
	mu   sync.Mutex
	last seen
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.last = seen{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.URL.RawQuery, string(body)}
	rec.mu.Unlock()
	reply(w, 0, 1)
}

func (rec *recorder) get() seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.last
}

// mobileWith returns a mobile whose encoding in mode contains every one of
// chars, so that the test exercises URL encoding of base64's specials.
func mobileWith(t *testing.T, mode juhe.Mode, chars string) string {
	t.Helper()
	key := juhe.AESKey(testOpenID)
	for i := range 100000 {
		m := fmt.Sprintf("173%08d", i)
		enc, err := juhe.EncodeMobile(mode, m, key)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.ContainsFunc(chars, func(r rune) bool { return !strings.ContainsRune(enc, r) }) {
			return m
		}
	}
	t.Fatalf("no mobile encodes with all of %q in mode %s", chars, mode)
	return ""
}

func TestRequestShape(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, mode := range juhe.Modes {
			t.Run(method+"/"+string(mode), func(t *testing.T) {
				mobile := testMobile
				if mode.UsesAES() {
					// sha256+aes always ends in "=", md5+aes never does.
					chars := "+/"
					if mode != juhe.ModeMD5AES {
						chars += "="
					}
					mobile = mobileWith(t, mode, chars)
				}
				rec := &recorder{}
				srv := newServer(t, rec.ServeHTTP)
				c := newClient(t, srv.URL, func(cfg *juhe.Config) {
					cfg.Method = strings.ToLower(method) // any case is accepted
					cfg.Mode = mode
				})
				if _, err := c.Query(t.Context(), mobile, testDate); err != nil {
					t.Fatalf("Query: %v", err)
				}
				got := rec.get()

				enc, err := juhe.EncodeMobile(mode, mobile, juhe.AESKey(testOpenID))
				if err != nil {
					t.Fatal(err)
				}
				// Exactly these three parameters, URL-encoded: "+" as %2B
				// (a bare "+" would read as a space), "/" as %2F, "=" as %3D.
				want := url.Values{"key": {testKey}, "mobile": {enc}, "date": {testDate}}.Encode()
				raw := got.rawQuery
				if method == http.MethodPost {
					raw = got.body
					if got.rawQuery != "" {
						t.Errorf("POST has a query string %q", got.rawQuery)
					}
					if got.contentType != "application/x-www-form-urlencoded" {
						t.Errorf("POST Content-Type = %q", got.contentType)
					}
				} else if got.body != "" {
					t.Errorf("GET has a body %q", got.body)
				}
				if raw != want {
					t.Errorf("parameters:\n got %s\nwant %s", raw, want)
				}
				if mode.UsesAES() {
					for _, esc := range []string{"%2B", "%2F"} {
						if !strings.Contains(raw, esc) {
							t.Errorf("parameters %q lack %s", raw, esc)
						}
					}
				}
				if got.method != method || got.path != mode.Path() {
					t.Errorf("request %s %s, want %s %s", got.method, got.path, method, mode.Path())
				}
			})
		}
	}
}

func TestBaseURLWithPathPrefix(t *testing.T) {
	rec := &recorder{}
	srv := newServer(t, rec.ServeHTTP)
	c := newClient(t, srv.URL+"/gateway/juhe/", nil)
	if _, err := c.Query(t.Context(), testMobile, testDate); err != nil {
		t.Fatal(err)
	}
	if p := rec.get().path; p != "/gateway/juhe/twoSellTel/query" {
		t.Errorf("path = %q", p)
	}
}
