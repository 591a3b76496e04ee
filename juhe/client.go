package juhe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/twosell/twosell/juhe/internal/ascii"
)

// tracerName is the instrumentation scope of the juhe.query span.
const tracerName = "github.com/twosell/twosell/juhe"

// Client queries the two-sell API. It is safe for concurrent use; create one
// per account and share it, so that its connection pool and its breaker
// see all the traffic.
type Client struct {
	mode          Mode
	method        string
	endpoint      *url.URL // BaseURL + the mode's path
	op            string   // e.g. "POST /twoSellTel/query", for errors
	key           string
	aesKey        []byte
	timeout       time.Duration
	retries       int
	backoff       backoff
	badParamLimit int64
	badParams     atomic.Int64 // 232702 answers in a row, across queries
	// refusedFrom is when the earliest request the provider refused for
	// the account (a fatal code: the key, the openid, the IP, the API) was
	// sent, in unix nanoseconds; 0 if none was. See accountRefused.
	refusedFrom atomic.Int64

	rt       http.RoundTripper // otelhttp, then the secrets, then the pool
	direct   *directTransport  // the pool, when the fast path (wire.go) may use it
	pooled   *http.Transport   // net/http's pool, when a proxy applies
	wire     *wireRequest      // the fast path's requests; nil if it is not taken
	breaker  *breaker
	metrics  *clientMetrics
	redact   *Redactor
	tracer   trace.Tracer
	spanOpts []trace.SpanStartOption // the juhe.query span's, built once
	logger   *slog.Logger
}

// New returns a Client for cfg, after filling in defaults (see Config). It
// returns an error naming every invalid setting; the error never contains
// the key or the openid.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	base, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	secrets := []string{cfg.Key, cfg.OpenID}
	if cfg.OpenID != "" {
		secrets = append(secrets, string(AESKey(cfg.OpenID)))
	}
	c := &Client{
		mode:     cfg.Mode,
		method:   cfg.Method,
		endpoint: endpoint(base, cfg.Mode),
		key:      cfg.Key,
		timeout:  cfg.Timeout,
		retries:  cfg.Retries,
		backoff:  backoff{base: cfg.Backoff, max: cfg.MaxBackoff},
		redact:   NewRedactor(secrets...),
		tracer:   tp.Tracer(tracerName),
		logger:   cfg.Logger,
	}
	c.op = c.method + " " + c.endpoint.Path
	if cfg.BadParamFatalAfter > 0 {
		c.badParamLimit = int64(cfg.BadParamFatalAfter)
	}
	if cfg.Mode.UsesAES() {
		c.aesKey = AESKey(cfg.OpenID)
	}
	c.spanOpts = []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			attribute.String("juhe.mode", string(c.mode)),
			attribute.String("juhe.method", c.method),
		),
	}
	if cfg.Transport == nil {
		c.direct = newDirectTransport(base, cfg.MaxConns, cfg.RootCAs)
	}
	if c.direct != nil {
		c.wire = newWireRequest(c.method, c.endpoint, c.key)
	}
	c.rt, c.pooled = newRoundTripper(&cfg, c.direct, c.redact, tp)
	onChange := func(from, to string) {
		c.metrics.transition(to)
		if cfg.OnStateChange != nil {
			cfg.OnStateChange(from, to)
		}
	}
	c.breaker = newBreaker(cfg.Breaker, cfg.Logger, onChange)
	c.metrics = newClientMetrics(cfg.MeterProvider, c.BreakerState)
	return c, nil
}

// endpoint appends the mode's path to the base URL, which may have a path
// of its own (a gateway's prefix).
func endpoint(base *url.URL, m Mode) *url.URL {
	u := *base
	u.Path = strings.TrimRight(base.Path, "/") + m.Path()
	u.RawPath = ""
	return &u
}

// Mode returns how the client sends mobiles.
func (c *Client) Mode() Mode { return c.mode }

// BreakerState returns the circuit breaker's state: BreakerClosed,
// BreakerHalfOpen or BreakerOpen.
func (c *Client) BreakerState() string { return c.breaker.state() }

// Query asks whether mobile (11 digits, normalized) was re-issued after date
// (yyyymmdd).
//
// It returns an Answer for a result and for "no record" (232703, NoRecord
// set). Otherwise it returns an *Error whose Class tells the caller what to
// do (see ClassOf and the IsX helpers), together with an Answer that carries
// Attempts and Mode. Transient faults are retried up to Config.Retries times
// with backoff first; request limits, rejected records and fatal faults are
// not. If ctx is done first, the error is ctx's own (errors.Is(err,
// context.Canceled) or context.DeadlineExceeded), never an *Error, and the
// breaker does not count it.
//
// A malformed mobile or date is a ClassRecord error, and no request is sent.
func (c *Client) Query(ctx context.Context, mobile, date string) (ans Answer, err error) {
	ctx, span := c.tracer.Start(ctx, "juhe.query", c.spanOpts...)
	ans = Answer{Mode: c.mode}
	defer func() { c.endSpan(span, ans, err) }()

	if err := ctx.Err(); err != nil {
		return ans, err
	}
	if e := checkInput(mobile, date); e != nil {
		return ans, e
	}
	encoded, err := EncodeMobile(c.mode, mobile, c.aesKey)
	if err != nil {
		// New validated the mode and derived a 16-byte key, so this is a
		// bug, not a record's fault.
		return ans, &Error{Class: ClassFatal, Reason: "juhe: cannot encode the mobile", Err: c.redact.Wrap(err, mobile)}
	}
	p := params{key: c.key, mobile: encoded, date: date}

	var retrying func() // records the retry about to be made, once the breaker admits it
	for retry := 1; ; retry++ {
		billed := false // the provider may have billed this attempt (none made when the breaker refuses it)
		a, err := c.breaker.execute(func() (Answer, error) {
			if retrying != nil {
				retrying()
				retrying = nil
			}
			ans.Attempts++
			start, asked := time.Now(), ctx.Err() == nil
			var sent attemptSent
			a, err := c.attempt(context.WithValue(ctx, sentKey{}, &sent), p, mobile)
			c.metrics.call(ctx, a, err, time.Since(start))
			c.noteAccountRefused(err)
			// A request written whole counts, even if the caller's context
			// ended before the attempt began (found by review: a retry
			// written as the context ended was read by the provider, and its
			// budget unit given back).
			if (asked || sent.wrote.Load()) && billable(err, &sent) && !c.accountRefused(err, start) {
				billed = true
				ans.Billable++
				if retry <= 64 {
					ans.BillableRequests |= 1 << (retry - 1)
				}
			}
			// Written before net/http sent it again: the provider may
			// have read it (found by review: counted once, a GET behind a
			// proxy was billed twice).
			ans.Resent += sent.resentRequests()
			return a, err
		})
		if err == nil {
			c.badParams.Store(0) // the provider read this number
			a.Attempts, a.Billable, a.BillableRequests, a.Resent, a.Mode = ans.Attempts, ans.Billable, ans.BillableRequests, ans.Resent, c.mode
			return a, nil
		}
		var e *Error
		if !errors.As(err, &e) {
			return ans, err // the caller's context
		}
		ans.Code = e.Code
		if e.Class == ClassUnavailable {
			c.metrics.refused(ctx)
		}
		if e.Class == ClassUnknown {
			c.logger.Warn("juhe: unknown error code from the provider", "code", e.Code, "op", c.op)
		}
		switch {
		case e.Class == ClassRecord && e.Code == CodeBadParam:
			return ans, c.badParam(e)
		case e.Class.retryable() && retry <= c.retries:
			d := c.backoff.delay(retry)
			if err := sleep(ctx, d); err != nil {
				return ans, err
			}
			if gate, ok := ctx.Value(retryGateKey{}).(RetryGate); ok {
				if err := gate(ctx, billed); err != nil {
					if ctx.Err() != nil {
						return ans, ctx.Err()
					}
					return ans, e // the last attempt's fault, not retried
				}
			}
			// Counted, traced and logged once it is sure to be made, when
			// the breaker admits it: a retry the gate refused was counted,
			// and so was one the breaker, opened by the fault, refused (both
			// found by review: in an outage, retries equalled the calls).
			attempt := ans.Attempts
			retrying = func() {
				c.metrics.retry(ctx, e.Class)
				if span.IsRecording() {
					span.AddEvent("juhe.retry", trace.WithAttributes(
						attribute.Int("juhe.attempt", attempt),
						attribute.String("juhe.error_class", e.Class.String()),
						attribute.Int("juhe.error_code", e.Code),
						attribute.Int64("juhe.backoff_ms", d.Milliseconds()),
					))
				}
				c.logger.Debug("juhe: retrying", "attempt", attempt, "class", e.Class.String(),
					"code", e.Code, "backoff", d, "err", e.Error())
			}
			continue
		}
		return ans, e
	}
}

// WithRetryGate returns a context in which Query calls gate before each
// retry (not before the first attempt, which the caller gates itself): a
// caller that limits requests, by rate or by a budget, counts the retries
// too. An error from gate ends the query with the last attempt's fault.
func WithRetryGate(ctx context.Context, gate RetryGate) context.Context {
	return context.WithValue(ctx, retryGateKey{}, gate)
}

// RetryGate is asked before a retry, told whether the attempt before it
// may have been billed (as Answer.BillableRequests counts it): a budget
// that held a unit for that attempt can give it back at once when it
// cannot have been.
type RetryGate func(ctx context.Context, billed bool) error

type retryGateKey struct{}

// noteAccountRefused notes the provider's refusal of the account (a fatal
// code of its table): from when the account is known to be refused
// (accountRefused). A wrong key or openid (10001, 10004) is wrong for every
// request made with it, sent before this one or after (all of a Client's
// requests carry the same; the requests in flight when a key is deleted in
// the provider's console are the exception, which this takes for
// refused); the other refusals (an expired or banned key, an IP banned,
// the API stopped) may have come while requests were in flight, and count
// from now, when the refusal is read. (Counted from the refused request's
// sending, the requests sent just before it, whose replies came in the
// same moment and went unread, still counted: 1 to 11 of 13 in a test.)
func (c *Client) noteAccountRefused(err error) {
	var e *Error
	if !errors.As(err, &e) {
		return
	}
	if info, ok := codeTable[e.Code]; !ok || info.class != ClassFatal {
		return // not the provider's word on the account (a run of 232702 is fatal too)
	}
	at := time.Now().UnixNano()
	if e.Code == 10001 || e.Code == 10004 {
		at = 1 // every request
	}
	for {
		old := c.refusedFrom.Load()
		if old != 0 && old <= at || c.refusedFrom.CompareAndSwap(old, at) {
			return
		}
	}
}

// accountRefused reports whether an attempt sent at start whose outcome is
// unknown (the caller's context ended while it ran, or a transport fault)
// cannot have been billed: it was sent once the account was known to be
// refused (noteAccountRefused). The key, the openid and the machine's IP
// are the same for every request of a Client, and an account refused stays
// refused (a key expires, it does not come back), so the provider refused
// this request too. Found by
// a walkthrough: with a wrong key, the requests in flight when the first
// 10001 stopped the processor were written to the ledger as calls that may
// have been billed, and spent the daily budget (97 of 104 requests; a
// crash-looping deployment spent more at every start).
func (c *Client) accountRefused(err error, start time.Time) bool {
	var e *Error
	if err == nil || errors.As(err, &e) && e.Class != ClassTransport {
		return false // an answer, or the provider's own word on this request
	}
	from := c.refusedFrom.Load()
	return from != 0 && start.UnixNano() >= from
}

// billable reports whether an attempt that ended with err may have been
// billed (Answer.Billable): yes for an answer, for a fault whose outcome is
// unknown (the caller's cancellation while it ran included), for an
// unknown error code and for 10014 (the API document: check the order, to
// avoid a loss); no for another known error code (the provider refused)
// and for a request that was never written whole (sent says; a transport
// that does not say counts as having written it).
func billable(err error, sent *attemptSent) bool {
	if err == nil {
		return true
	}
	unsent := sent.told.Load() && !sent.wrote.Load()
	var e *Error
	if !errors.As(err, &e) {
		return !unsent // the caller's context ended while the attempt ran
	}
	switch {
	case e.Class == ClassUnknown || e.Code == 10014:
		return true
	case e.Class != ClassTransport:
		return false
	}
	return !unsent
}

// attemptSent is what the transport tells of one attempt's request
// (noteSent): whether it said anything, and whether the request was
// written whole, so that the provider may have read it. Set from the
// goroutines of net/http's Transport (httptrace), hence atomic.
type attemptSent struct {
	told, wrote atomic.Bool

	// Behind a proxy (pooledTransport, whose connections count what they
	// write): the requests net/http's Transport sent again itself after
	// the one before had reached the socket (resent). Its WroteRequest
	// comes when the request is in the connection's buffer, before it is
	// sent (found by review: a request that never left, sent again, was
	// counted), so a try is known to have been sent when the next one gets
	// its connection (GotConn): by what its connection wrote meanwhile.
	mu     sync.Mutex
	conn   *countingConn // the current try's connection, if it counts
	base   int64         // what conn had written when the try got it
	resent int
}

// gotConn notes that a try of the attempt got c: if an earlier try's
// connection wrote since it got it, that try's request was sent, and this
// one sends it again.
func (s *attemptSent) gotConn(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	cc, _ := c.(*countingConn)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && s.conn.written.Load() > s.base {
		s.resent++
	}
	s.conn = cc
	if cc != nil {
		s.base = cc.written.Load()
	}
}

// resentRequests is how many requests net/http sent again (gotConn).
func (s *attemptSent) resentRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resent
}

type sentKey struct{}

// noteSent tells the attempt of ctx, if any, that its request was written
// whole (wrote), or that it was not (a connection that could not be made, a
// write that failed).
func noteSent(ctx context.Context, wrote bool) {
	if s, ok := ctx.Value(sentKey{}).(*attemptSent); ok {
		if wrote {
			s.wrote.Store(true)
		}
		s.told.Store(true)
	}
}

// traceSent is a ClientTrace that tells the attempt of ctx what net/http's
// Transport did (a Transport of Config.Transport, on the traced path).
func traceSent(ctx context.Context) *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GetConn: func(string) { noteSent(ctx, false) },
		GotConn: func(i httptrace.GotConnInfo) {
			if s, ok := ctx.Value(sentKey{}).(*attemptSent); ok {
				s.gotConn(i.Conn)
			}
		},
		WroteRequest: func(i httptrace.WroteRequestInfo) { noteSent(ctx, i.Err == nil) },
	}
}

// badParam counts a 232702 answer. A run of them across different records
// means the provider cannot read any number: a wrong mode or openid, which
// would otherwise dead-letter the whole topic one record at a time.
// BadParamCheck names the settings to check when the provider cannot read
// the numbers as sent (232702 to a valid number): juhe.mode, and juhe.openid
// in the AES modes.
func (c *Client) BadParamCheck() string {
	if c.mode.UsesAES() {
		return fmt.Sprintf("juhe.mode (%s) and juhe.openid", c.mode)
	}
	return fmt.Sprintf("juhe.mode (%s)", c.mode)
}

func (c *Client) badParam(e *Error) error {
	n := c.badParams.Add(1)
	if c.badParamLimit == 0 || n < c.badParamLimit {
		return e
	}
	fatal := &Error{
		Class:      ClassFatal,
		Code:       e.Code,
		HTTPStatus: e.HTTPStatus,
		Op:         e.Op,
		Reason: fmt.Sprintf("juhe: %d bad-parameter answers in a row: the provider cannot read the numbers; check %s",
			n, c.BadParamCheck()),
	}
	if n == c.badParamLimit {
		c.logger.Error(fatal.Reason)
	}
	return fatal
}

// attempt makes one HTTP call, bounded by the attempt timeout. Its errors
// are *Error, except the caller's own context error.
//
// It takes the fast path (wire.go) when the client speaks HTTP itself and
// nothing is traced; otherwise net/http and otelhttp, for the per-attempt
// HTTP span.
func (c *Client) attempt(ctx context.Context, p params, mobile string) (Answer, error) {
	if c.wire != nil && !trace.SpanFromContext(ctx).IsRecording() {
		return c.wireAttempt(ctx, p, mobile)
	}
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	// Only the date goes into the request built here: otelhttp records its
	// URL, and http.Client quotes it in errors. paramTransport adds the rest.
	target := *c.endpoint
	if c.method == http.MethodGet {
		target.RawQuery = "date=" + url.QueryEscape(p.date)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(withParams(actx, p), traceSent(ctx)), c.method, target.String(), nil)
	if err != nil {
		return Answer{}, c.transportError(ctx, actx, 0, "cannot build the request", err, p.mobile, mobile)
	}
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		return Answer{}, c.transportError(ctx, actx, 0, "request failed", err, p.mobile, mobile)
	}
	defer resp.Body.Close()
	// Reading to EOF (within the cap) lets the connection go back to the pool.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes+1))
	if err != nil {
		return Answer{}, c.transportError(ctx, actx, resp.StatusCode, "reading the reply failed", err, p.mobile, mobile)
	}
	return c.answer(resp.StatusCode, body, p, mobile)
}

// wireAttempt is attempt's fast path. The attempt's deadline is set on the
// connection rather than on a context of its own, and classified as
// transportError does for the other path.
func (c *Client) wireAttempt(ctx context.Context, p params, mobile string) (Answer, error) {
	deadline := time.Now().Add(c.timeout)
	callerFirst := false // the caller's deadline comes before the attempt's
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, callerFirst = d, true
	}
	buf := replyBufs.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= 16<<10 { // a rare large reply's buffer is not kept
			replyBufs.Put(buf)
		}
	}()
	r, err := c.direct.query(ctx, deadline, c.wire, p, (*buf)[:0])
	if cap(r.body) > cap(*buf) {
		*buf = r.body[:0] // keep the buffer that grew
	}
	if err != nil {
		timedOut := !time.Now().Before(deadline)
		if timedOut && callerFirst {
			<-ctx.Done() // due now: the caller's deadline is the caller's error
		}
		if ctx.Err() != nil {
			return Answer{}, ctx.Err()
		}
		if timedOut {
			return Answer{}, c.timeoutError(r.status)
		}
		what := "request failed"
		if r.status != 0 {
			what = "reading the reply failed"
		}
		return Answer{}, &Error{
			Class:      ClassTransport,
			HTTPStatus: r.status,
			Op:         c.op,
			Reason:     fmt.Sprintf("juhe: %s: %s", c.op, what),
			Err:        c.redact.Wrap(err, p.mobile, mobile),
		}
	}
	return c.answer(r.status, r.body, p, mobile)
}

// answer reads a reply that arrived whole (or cut at maxReplyBytes+1).
func (c *Client) answer(status int, body []byte, p params, mobile string) (Answer, error) {
	if status < 200 || status > 299 {
		reason := fmt.Sprintf("juhe: %s: HTTP %d %s", c.op, status, http.StatusText(status))
		switch status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusGone:
			// The API document gives the provider's errors as a reply's
			// error_code: these likely come from something else.
			reason += " (the provider gives its errors as a reply's error_code: is juhe.url its API's address, and does no proxy or firewall refuse the request?)"
		}
		return Answer{}, &Error{
			Class:      ClassTransport,
			HTTPStatus: status,
			Op:         c.op,
			Reason:     reason,
			whole:      true,
		}
	}
	if len(body) > maxReplyBytes {
		return Answer{}, &Error{
			Class:      ClassTransport,
			HTTPStatus: status,
			Op:         c.op,
			Reason:     fmt.Sprintf("juhe: %s: undecodable reply: larger than %d KiB", c.op, maxReplyBytes>>10),
			whole:      true,
		}
	}
	a, err := parseReply(body, func(s string) string { return c.redact.Redact(s, p.mobile, mobile) })
	if err != nil {
		e := err.(*Error)
		e.Op, e.HTTPStatus, e.whole = c.op, status, true
		if e.Class == ClassTransport {
			e.Reason = strings.Replace(e.Reason, "juhe: ", "juhe: "+c.op+": ", 1)
		}
		// An unknown code's reason is the provider's text: it could echo
		// anything, the key included.
		e.Reason = c.redact.Redact(e.Reason, p.mobile, mobile)
		e.Err = c.redact.Wrap(e.Err, p.mobile, mobile)
		return Answer{}, e
	}
	// The order id is the provider's text too, and goes into the output,
	// the ledger and its export, which no redactor sees (found by review:
	// a gateway that echoed the request put the key there, and the mobile).
	a.OrderID = c.redact.Redact(a.OrderID, p.mobile, mobile)
	return a, nil
}

// transportError classifies a failed HTTP exchange. The caller's own
// cancellation wins; then the attempt's timeout; then the cause itself,
// without the URL that http.Client wraps around it.
func (c *Client) transportError(ctx, actx context.Context, status int, what string, err error, secrets ...string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(actx.Err(), context.DeadlineExceeded) {
		return c.timeoutError(status)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &Error{
		Class:      ClassTransport,
		HTTPStatus: status,
		Op:         c.op,
		Reason:     fmt.Sprintf("juhe: %s: %s", c.op, what),
		Err:        c.redact.Wrap(err, secrets...),
	}
}

// timeoutError is the error of an attempt that timed out.
func (c *Client) timeoutError(status int) *Error {
	return &Error{
		Class:      ClassTransport,
		HTTPStatus: status,
		Op:         c.op,
		Reason:     fmt.Sprintf("juhe: %s: no complete reply within %s (juhe.timeout)", c.op, c.timeout),
	}
}

// endSpan records the query's outcome on its span, with messages that have
// been through the redactor, and ends it.
func (c *Client) endSpan(span trace.Span, a Answer, err error) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(
		attribute.Int("juhe.attempts", a.Attempts),
		attribute.String("juhe.breaker_state", c.breaker.state()),
	)
	if err == nil {
		span.SetAttributes(
			attribute.Int("juhe.error_code", a.Code),
			attribute.String("juhe.status", a.Status()),
		)
		return
	}
	if e, ok := errors.AsType[*Error](err); ok {
		span.SetAttributes(attribute.String("juhe.error_class", e.Class.String()))
		if e.Code != 0 {
			span.SetAttributes(attribute.Int("juhe.error_code", e.Code))
		}
		if e.HTTPStatus != 0 {
			span.SetAttributes(attribute.Int("juhe.http_status", e.HTTPStatus))
		}
	}
	msg := c.redact.Redact(err.Error())
	span.AddEvent("exception", trace.WithAttributes(
		attribute.String("exception.type", fmt.Sprintf("%T", err)),
		attribute.String("exception.message", msg),
	))
	span.SetStatus(codes.Error, msg)
}

// checkInput rejects what the provider would answer 232702 to, without
// paying for the call. The values are not quoted: a mobile is personal data.
func checkInput(mobile, date string) *Error {
	if !ValidMobile(mobile) {
		return &Error{Class: ClassRecord, Reason: `juhe: the mobile is not 11 digits matching ^1[3-9]\d{9}$`}
	}
	if len(date) != 8 {
		return &Error{Class: ClassRecord, Reason: "juhe: the date is not yyyymmdd"}
	}
	if !calendarDay(date) {
		return &Error{Class: ClassRecord, Reason: "juhe: the date is not a yyyymmdd calendar day"}
	}
	return nil
}

// calendarDay reports whether d (8 bytes) is a yyyymmdd day, as
// time.Parse("20060102", d) accepts it, without its cost on every request.
func calendarDay(d string) bool {
	v, ok := ascii.ParseDigits([]byte(d), 8) // no allocation: the bytes do not escape
	if !ok || len(d) != 8 {
		return false
	}
	n := int(v)
	year, month, day := n/10000, n/100%100, n%100
	if month < 1 || month > 12 || day < 1 {
		return false
	}
	// The last day of the month: day 0 of the next one.
	return day <= time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// Close closes the client's connections to the provider: the idle ones at
// once, one in use when its call ends. A command closes its client when it
// is done (found by review: the provider held every connection a run had
// opened after it returned, which matters in-process: tests, embedders).
// Queries after Close still work, each on a connection of its own.
func (c *Client) Close() {
	if c.direct != nil {
		c.direct.close()
	}
	if c.pooled != nil {
		c.pooled.CloseIdleConnections()
	}
}
