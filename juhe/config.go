package juhe

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// DefaultBaseURL is the provider's API root.
const DefaultBaseURL = "https://apis.juhe.cn"

// Config configures a Client. It is a plain struct; New fills in the
// defaults and rejects what cannot work.
//
// BaseURL is the API root, without a query string; the endpoint paths are
// appended to it. If empty, DefaultBaseURL is used.
//
// Key is the account's API key (juhe.key). It is required.
//
// OpenID is the account's openid (juhe.openid). It is required by the AES
// modes, which derive their encryption key from it, and unused otherwise.
//
// Mode is how the mobile is sent. If empty, ModePlain is used.
//
// Method is "GET" or "POST" (any case). If empty, "POST" is used: the
// parameters then travel in a form-encoded body, out of URLs that proxies
// and access logs record.
//
// Timeout bounds each attempt, from sending the request to reading the whole
// reply. If zero, 5s is used.
//
// Retries is how many extra attempts a query makes after a transient fault
// (ClassTransient, ClassTransport, ClassUnknown). If zero, 2 is used; if
// negative, no retry is made.
//
// Backoff and MaxBackoff shape the wait before each retry: exponential from
// Backoff, capped at MaxBackoff, with full jitter. If zero, 100ms and 2s (or
// Backoff, if larger) are used.
//
// BadParamFatalAfter is how many 232702 (bad parameter) answers in a row
// turn into a ClassFatal error: a wrong mode or openid makes every record
// look bad. If zero, 20 is used; if negative, the run is never fatal.
//
// MaxConns is how many idle connections to the provider are kept for reuse.
// Size it to the caller's concurrency: Go's default keeps only 2, so every
// concurrent call beyond two would pay for a new TCP (and TLS) handshake.
// Calls beyond MaxConns still proceed, on connections closed after use.
// If zero, 64 is used. It is ignored when Transport is set.
//
// Breaker configures the circuit breaker; see BreakerConfig.
//
// RootCAs, if set, are the certificate authorities trusted for the
// provider's certificate instead of the system's (juhe.ca_file: a gateway
// or TLS-inspecting proxy with a private CA). It is ignored when Transport
// is set. The pooled transport always requires TLS 1.2 or later and takes
// its HTTP proxy from the standard environment variables (HTTPS_PROXY,
// HTTP_PROXY, NO_PROXY), through http.ProxyFromEnvironment.
//
// AllowInsecure lets BaseURL be plain http to a host that is not loopback.
// Without it New refuses such a URL, because every request carries the key
// (see InsecureURL). Plain http to localhost or a loopback address, such as
// a simulator or a sidecar, is always allowed.
//
// Transport, if set, is the base RoundTripper instead of the client's own
// pooled *http.Transport (tests, custom TLS). It receives requests that
// carry the key and the mobile, so it must not log them.
//
// TracerProvider, if nil, is the otel global provider.
//
// MeterProvider, if nil, is the otel global provider. The client records
// every request sent (by error code and class), its duration, retries,
// breaker refusals and transitions, and observes the breaker's state; see
// MetricProviderCalls and the names beside it.
//
// Logger, if nil, is slog.Default().
//
// OnStateChange, if set, is called with the breaker's old and new state
// ("closed", "half-open", "open") on every change, in order, one call at a
// time, outside the breaker's lock (so it may call Client.BreakerState). It
// runs on the goroutine of some query; keep it quick.
type Config struct {
	BaseURL            string
	Key                string
	OpenID             string
	Mode               Mode
	Method             string
	Timeout            time.Duration
	Retries            int
	Backoff            time.Duration
	MaxBackoff         time.Duration
	BadParamFatalAfter int
	MaxConns           int
	Breaker            BreakerConfig
	RootCAs            *x509.CertPool
	AllowInsecure      bool
	Transport          http.RoundTripper
	TracerProvider     trace.TracerProvider
	MeterProvider      metric.MeterProvider
	Logger             *slog.Logger
	OnStateChange      func(from, to string)
}

// BreakerConfig configures the circuit breaker that every attempt goes
// through. Only provider faults count as failures: ClassTransient,
// ClassTransport, ClassUnknown, ClassQuota and ClassFatal. Answers, 232703
// (no record) and 232702 (bad parameter) are successes; the caller's own
// cancellation counts as neither.
//
// Failures is how many provider faults in a row open the breaker. If zero,
// 5 is used.
//
// OpenFor is how long the breaker stays open before letting trial calls
// through (half-open). If zero, 30s is used.
//
// HalfOpenRequests is how many trial calls run while half-open; that many
// successes in a row close the breaker, one failure opens it again. If zero,
// 1 is used.
type BreakerConfig struct {
	Failures         uint32
	OpenFor          time.Duration
	HalfOpenRequests uint32
}

// The defaults that setDefaults applies; see Config.
const (
	defaultMethod             = http.MethodPost
	defaultTimeout            = 5 * time.Second
	defaultRetries            = 2
	defaultBackoff            = 100 * time.Millisecond
	defaultMaxBackoff         = 2 * time.Second
	defaultBadParamFatalAfter = 20
	defaultMaxConns           = 64
	defaultBreakerFailures    = 5
	defaultBreakerOpenFor     = 30 * time.Second
	defaultHalfOpenRequests   = 1
)

// setDefaults replaces zero values with the documented defaults.
func (c *Config) setDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.Mode == "" {
		c.Mode = ModePlain
	}
	c.Method = strings.ToUpper(c.Method)
	if c.Method == "" {
		c.Method = defaultMethod
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	if c.Retries == 0 {
		c.Retries = defaultRetries
	} else if c.Retries < 0 {
		c.Retries = 0
	}
	if c.Backoff == 0 {
		c.Backoff = defaultBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(defaultMaxBackoff, c.Backoff)
	}
	if c.BadParamFatalAfter == 0 {
		c.BadParamFatalAfter = defaultBadParamFatalAfter
	}
	if c.MaxConns == 0 {
		c.MaxConns = defaultMaxConns
	}
	if c.Breaker.Failures == 0 {
		c.Breaker.Failures = defaultBreakerFailures
	}
	if c.Breaker.OpenFor == 0 {
		c.Breaker.OpenFor = defaultBreakerOpenFor
	}
	if c.Breaker.HalfOpenRequests == 0 {
		c.Breaker.HalfOpenRequests = defaultHalfOpenRequests
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// validate reports every problem of a defaulted Config at once, naming the
// configuration keys and never the secret values.
func (c *Config) validate() (*url.URL, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	base, err := url.Parse(c.BaseURL)
	switch {
	case err != nil:
		// url.Parse quotes the input; a key pasted into the URL must not
		// be echoed, so only say that it does not parse.
		bad("juhe.url does not parse as a URL")
	case base.Scheme != "http" && base.Scheme != "https":
		bad("juhe.url must start with http:// or https://")
	case base.Host == "":
		bad("juhe.url has no host")
	case base.RawQuery != "" || base.Fragment != "" || base.User != nil:
		bad("juhe.url must not carry a query, a fragment or credentials; the key belongs in juhe.key")
	case InsecureURL(base) && !c.AllowInsecure:
		bad("juhe.url %s is plain http to %s, which is not a loopback address: every request would carry the key "+
			"across the network in clear text; use https, or set juhe.allow_insecure: true if the network is trusted",
			base.Scheme+"://"+base.Host, base.Hostname())
	}
	if c.Key == "" {
		bad("juhe.key is empty: set the account's API key")
	}
	if _, err := ParseMode(string(c.Mode)); err != nil {
		bad("juhe.mode: %v", err)
	}
	if c.Mode.UsesAES() && c.OpenID == "" {
		bad("juhe.openid is empty: mode %s encrypts the mobile with a key derived from it", c.Mode)
	}
	if c.Method != http.MethodGet && c.Method != http.MethodPost {
		bad("juhe.method must be GET or POST")
	}
	if c.Timeout < 0 {
		bad("juhe.timeout must not be negative")
	}
	if c.Backoff < 0 || c.MaxBackoff < 0 {
		bad("juhe.backoff and juhe.max_backoff must not be negative")
	} else if c.MaxBackoff < c.Backoff {
		bad("juhe.max_backoff (%s) is less than juhe.backoff (%s)", c.MaxBackoff, c.Backoff)
	}
	if c.MaxConns < 0 {
		bad("juhe.max_conns must not be negative")
	}
	if c.Breaker.OpenFor < 0 {
		bad("juhe.breaker.open_for must not be negative")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("juhe: invalid configuration: %w", errors.Join(errs...))
	}
	return base, nil
}

// InsecureURL reports whether requests to u would carry the key across a
// network in clear text: u is plain http to a host other than localhost or
// a loopback address.
func InsecureURL(u *url.URL) bool {
	if !strings.EqualFold(u.Scheme, "http") {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}
