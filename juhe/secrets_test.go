package juhe_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/twosell/twosell/juhe"
)

// Distinctive secrets, so that any appearance is a leak and not chance.
const (
	leakKey    = "KEY-5e3c7a1f"
	leakOpenID = "OPENID-9b2d"
	leakMobile = "17355501234"
)

// hostile answers by date, through every outcome, and echoes the secrets it
// received wherever a careless client might print them.
func hostile(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("ParseForm: %v", err)
		}
		if r.Form.Get("key") != leakKey {
			t.Errorf("the server did not receive the key")
		}
		echo := fmt.Sprintf("key=%s openid=%s mobile=%s raw=%s", r.Form.Get("key"), leakOpenID,
			r.Form.Get("mobile"), r.URL.RawQuery)
		switch r.Form.Get("date") {
		case "20240101":
			reply(w, 0, 1)
		case "20240102":
			reply(w, 232703, 0)
		case "20240103":
			reply(w, 232702, 0)
		case "20240104":
			reply(w, 10001, 0)
		case "20240105":
			reply(w, 10012, 0)
		case "20240106":
			reply(w, 232701, 0)
		case "20240107":
			http.Error(w, echo, http.StatusInternalServerError)
		case "20240108":
			_, _ = w.Write([]byte(echo)) // not JSON
		case "20240109":
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done() // attempt timeout
		case "20240110":
			http.Redirect(w, r, "/elsewhere?"+url.Values{"key": {leakKey}}.Encode(), http.StatusFound)
		case "20240111":
			resetConn(w, r)
		case "20240112":
			// An unknown code whose reason quotes everything.
			fmt.Fprintf(w, `{"reason":%q,"result":null,"error_code":4242}`, echo+" aeskey="+string(juhe.AESKey(leakOpenID)))
		default:
			t.Errorf("unexpected date %q", r.Form.Get("date"))
		}
	}
}

// TestSecretsNeverLeak runs traced (net/http and otelhttp) and untraced
// (the fast path of wire.go).
func TestSecretsNeverLeak(t *testing.T) {
	t.Run("traced", func(t *testing.T) { testSecretsNeverLeak(t, true) })
	t.Run("untraced", func(t *testing.T) { testSecretsNeverLeak(t, false) })
}

func testSecretsNeverLeak(t *testing.T, traced bool) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sr := tracetest.NewSpanRecorder()
	var tp trace.TracerProvider = noop.NewTracerProvider()
	if traced {
		sdk := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
		t.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
		tp = sdk
	}

	srv := newServer(t, hostile(t))
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String()
	closed.Close() // connection refused: http.Client's *url.Error

	var errs []error
	dates := []string{"20240101", "20240102", "20240103", "20240104", "20240105", "20240106",
		"20240107", "20240108", "20240109", "20240110", "20240111", "20240112"}
	var encoded []string
	for _, mode := range []juhe.Mode{juhe.ModePlain, juhe.ModeAES, juhe.ModeSHA256AES} {
		enc, err := juhe.EncodeMobile(mode, leakMobile, juhe.AESKey(leakOpenID))
		if err != nil {
			t.Fatal(err)
		}
		encoded = append(encoded, enc)
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			for _, base := range []string{srv.URL, closedURL} {
				c, err := juhe.New(juhe.Config{
					BaseURL: base, Key: leakKey, OpenID: leakOpenID, Mode: mode, Method: method,
					Timeout: 50 * time.Millisecond, Retries: 1, Backoff: time.Microsecond, MaxBackoff: time.Microsecond,
					BadParamFatalAfter: 2, Breaker: juhe.BreakerConfig{Failures: 20, OpenFor: time.Hour},
					Logger: logger, TracerProvider: tp,
				})
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range dates {
					_, err := c.Query(t.Context(), leakMobile, d)
					errs = append(errs, err)
				}
				// More, to meet a bad-parameter run and an open breaker.
				for _, d := range []string{"20240103", "20240103", "20240106", "20240106", "20240106", "20240106"} {
					_, err := c.Query(t.Context(), leakMobile, d)
					errs = append(errs, err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				_, err = c.Query(ctx, leakMobile, "20240101")
				errs = append(errs, err)
			}
		}
	}

	// Everything that left the client, as text.
	var out strings.Builder
	classes := map[juhe.Class]bool{}
	for _, err := range errs {
		if c, ok := juhe.ClassOf(err); ok {
			classes[c] = true
		}
		for e := err; e != nil; e = errors.Unwrap(e) {
			fmt.Fprintf(&out, "%s\n%v\n%+v\n", e.Error(), e, e)
		}
	}
	out.WriteString(logs.String())
	spans := sr.Ended()
	clientSpans := 0
	for _, s := range spans {
		fmt.Fprintf(&out, "%s %v %v %v %v\n", s.Name(), s.Attributes(), s.Status(), s.Links(), s.Resource())
		for _, ev := range s.Events() {
			fmt.Fprintf(&out, "%s %v\n", ev.Name, ev.Attributes)
		}
		for _, a := range s.Attributes() {
			if a.Key == "url.full" {
				clientSpans++
			}
		}
	}

	// The test must have seen every outcome, or it proves little.
	for _, c := range []juhe.Class{juhe.ClassRecord, juhe.ClassTransient, juhe.ClassQuota, juhe.ClassFatal,
		juhe.ClassTransport, juhe.ClassUnknown, juhe.ClassUnavailable} {
		if !classes[c] {
			t.Errorf("no %s error was produced", c)
		}
	}
	if traced && (clientSpans == 0 || !strings.Contains(out.String(), "juhe.query")) || logs.Len() == 0 {
		t.Fatalf("nothing recorded: %d client spans, %d log bytes", clientSpans, logs.Len())
	}

	forbidden := []string{leakKey, leakOpenID, string(juhe.AESKey(leakOpenID)), leakMobile}
	forbidden = append(forbidden, encoded[1:]...) // the AES forms of the mobile
	var forms []string
	for _, s := range forbidden {
		forms = append(forms, s, url.QueryEscape(s), url.PathEscape(s))
	}
	text := out.String()
	for _, f := range forms {
		if i := strings.Index(text, f); i >= 0 {
			lo, hi := max(0, i-200), min(len(text), i+len(f)+100)
			t.Errorf("%q leaked:\n...%s...", f, text[lo:hi])
		}
	}
}
