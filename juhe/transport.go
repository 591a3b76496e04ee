package juhe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The request stack, outermost first:
//
//	http.Client     no redirects (a redirect would carry the key elsewhere)
//	otelhttp        one client span per attempt; sees only the date
//	paramTransport  adds key and mobile to a clone of the request
//	base            the pooled *http.Transport, or Config.Transport
//
// otelhttp records the full URL on its span and http.Client quotes it in
// its errors, so the sensitive parameters are attached below both.
//
// When the base is the direct transport and the query is not traced, Query
// skips this stack and writes the request on a pooled connection itself
// (wire.go).

// params are a request's parameters. They travel in the request's context
// from Query to paramTransport, past the tracing layer.
type params struct {
	key, mobile, date string
}

type paramsKey struct{}

func withParams(ctx context.Context, p params) context.Context {
	return context.WithValue(ctx, paramsKey{}, p)
}

// paramTransport puts the parameters where the method wants them: the query
// string for GET, a form-encoded body for POST. It never modifies the
// request it is given, and it redacts the errors of the transport below it
// before they reach the tracing layer.
type paramTransport struct {
	base   http.RoundTripper
	redact *Redactor
}

// errNoParams guards against a request that did not come from Query.
var errNoParams = errors.New("juhe: request without parameters")

// RoundTrip implements http.RoundTripper.
func (t *paramTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	p, ok := r.Context().Value(paramsKey{}).(params)
	if !ok {
		if r.Body != nil {
			r.Body.Close() // a RoundTripper always closes the body
		}
		return nil, errNoParams
	}
	out := r.Clone(r.Context())
	form := url.Values{"key": {p.key}, "mobile": {p.mobile}, "date": {p.date}}
	switch r.Method {
	case http.MethodGet:
		out.URL.RawQuery = form.Encode()
	case http.MethodPost:
		body := form.Encode()
		out.URL.RawQuery = ""
		out.Body = io.NopCloser(strings.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
		out.ContentLength = int64(len(body))
		out.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		return nil, t.redact.Wrap(err, p.mobile)
	}
	// The response points at the request it answers; point it at the one
	// without secrets, which is what http.Client quotes in its errors.
	resp.Request = r
	return resp, nil
}

// newRoundTripper builds the request stack described above. Query calls it
// directly rather than through an http.Client: the API never redirects (a
// 3xx is a transport fault, and following one would send the key wherever it
// points), and http.Client would copy every request's headers for redirects
// that never come. otelhttp records spans only: the client's own metrics
// (metrics.go) count calls by code, so its HTTP metrics would be paid for
// twice.
//
// direct is the client's direct transport, nil when Config.Transport is set
// or a proxy applies.
func newRoundTripper(cfg *Config, direct *directTransport, redact *Redactor, tp trace.TracerProvider) (_ http.RoundTripper, pooled *http.Transport) {
	var base http.RoundTripper
	switch {
	case cfg.Transport != nil:
		base = cfg.Transport
	case direct != nil:
		base = direct
	default: // a proxy applies: net/http speaks CONNECT
		pooled = pooledTransport(cfg.MaxConns, cfg.RootCAs)
		base = pooled
	}
	return otelhttp.NewTransport(
		&paramTransport{base: base, redact: redact},
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		// Nothing of the trace goes to the provider, a third party: the
		// global propagator sent the input's baggage (which can carry a
		// user's data) and the trace context, on traced calls only.
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		// A child of a span that is not recorded would not be either: skip
		// the instrumentation's cost entirely then.
		otelhttp.WithFilter(func(r *http.Request) bool { return trace.SpanFromContext(r.Context()).IsRecording() }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return r.Method + " " + r.URL.Path
		}),
	), pooled
}

// pooledTransport clones http.DefaultTransport (proxy from the environment,
// dial and TLS timeouts, HTTP/2) and keeps maxConns idle connections to the
// provider instead of Go's default of 2. The number of connections in use
// is not capped: a call waiting for a free connection would spend its
// attempt timeout in our own queue and count as a provider fault. TLS is
// 1.2 or later, verified against rootCAs if set, else the system's roots.
func pooledTransport(maxConns int, rootCAs *x509.CertPool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment // as DefaultTransport's; said here, since it is a promise
	dial := t.DialContext
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c}, nil // see attemptSent.gotConn
	}
	t.MaxIdleConnsPerHost = maxConns
	t.MaxIdleConns = max(t.MaxIdleConns, maxConns)
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: rootCAs}
	return t
}

// countingConn counts the bytes written to it: whether a request reached
// the socket (attemptSent.gotConn).
type countingConn struct {
	net.Conn
	written atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}
