package juhe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// The breaker's states, as BreakerState and OnStateChange name them.
const (
	BreakerClosed   = "closed"
	BreakerHalfOpen = "half-open"
	BreakerOpen     = "open"
)

// breaker wraps gobreaker with the design's idea of a failure, and delivers
// state changes outside gobreaker's lock.
//
// gobreaker calls OnStateChange while holding its mutex, so a callback that
// asked for the state would deadlock. Changes are queued under that lock and
// delivered after the gobreaker call returns, by whichever goroutine finds
// the queue non-empty and nobody delivering; that goroutine delivers until
// the queue is empty, so changes arrive in order and one at a time.
type breaker struct {
	cb       *gobreaker.CircuitBreaker[Answer]
	cfg      BreakerConfig
	logger   *slog.Logger
	onChange func(from, to string)

	mu         sync.Mutex
	pending    []transition
	delivering bool
	openUntil  time.Time // when gobreaker lets trial calls through, once open
	// lastFault is the last provider fault, which the log of an opening
	// and the refusals while open name: at the default log level, a wrong
	// juhe.url showed only that the breaker opened, never why.
	lastFault error
}

// breakerTrialWait is the RetryIn of a call refused while the breaker is
// half-open: its trial calls answer within a round trip, and then it is
// closed (or open again, and says until when).
const breakerTrialWait = 100 * time.Millisecond

type transition struct {
	from, to gobreaker.State
	cause    error // to open: the last provider fault
}

func newBreaker(cfg BreakerConfig, logger *slog.Logger, onChange func(from, to string)) *breaker {
	b := &breaker{cfg: cfg, logger: logger, onChange: onChange}
	b.cb = gobreaker.NewCircuitBreaker[Answer](gobreaker.Settings{
		Name:        "juhe",
		MaxRequests: cfg.HalfOpenRequests,
		Timeout:     cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.Failures },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			b.mu.Lock()
			t := transition{from: from, to: to}
			if to == gobreaker.StateOpen {
				t.cause = b.lastFault
			}
			b.pending = append(b.pending, t)
			if to == gobreaker.StateOpen {
				b.openUntil = time.Now().Add(cfg.OpenFor) // gobreaker's expiry, set at this change
			}
			b.mu.Unlock()
		},
		IsSuccessful: breakerSuccess,
		IsExcluded:   breakerExcluded,
	})
	return b
}

// breakerSuccess: an answer, a "no record" (returned as an answer) and a
// rejected parameter all show a provider that works.
func breakerSuccess(err error) bool {
	if err == nil {
		return true
	}
	c, ok := ClassOf(err)
	return ok && !c.providerFault()
}

// breakerExcluded: the caller's own cancellation or deadline says nothing
// about the provider. An attempt's own timeout is an *Error of
// ClassTransport, so it is not excluded.
func breakerExcluded(err error) bool {
	if _, ok := ClassOf(err); ok {
		return false
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// execute runs one attempt through the breaker. When the breaker refuses,
// fn is not called and the error is ClassUnavailable.
func (b *breaker) execute(fn func() (Answer, error)) (Answer, error) {
	defer b.deliver()
	a, err := b.cb.Execute(func() (Answer, error) {
		a, err := fn()
		if err != nil && !breakerSuccess(err) && !breakerExcluded(err) {
			b.mu.Lock()
			b.lastFault = err
			b.mu.Unlock()
		}
		return a, err
	})
	switch {
	case errors.Is(err, gobreaker.ErrOpenState):
		b.mu.Lock()
		in, last := max(time.Until(b.openUntil), 0), b.lastFault
		b.mu.Unlock()
		why := ""
		if last != nil {
			why = " (the last: " + last.Error() + ")"
		}
		return a, &Error{
			Class: ClassUnavailable,
			Reason: fmt.Sprintf("juhe: the circuit breaker is open after provider faults%s; "+
				"no request is sent until juhe.breaker.open_for (%s) has passed", why, b.cfg.OpenFor),
			RetryIn: in,
		}
	case errors.Is(err, gobreaker.ErrTooManyRequests):
		return a, &Error{
			Class:   ClassUnavailable,
			Reason:  "juhe: the circuit breaker is half-open and its trial calls are already running",
			RetryIn: breakerTrialWait,
		}
	}
	return a, err
}

// state returns the current state's name. gobreaker moves from open to
// half-open lazily, when asked, so this may itself cause a change.
func (b *breaker) state() string {
	s := b.cb.State().String()
	b.deliver()
	return s
}

// deliver logs and reports the queued state changes, unless another
// goroutine is already doing so (it will see ours too).
func (b *breaker) deliver() {
	b.mu.Lock()
	if b.delivering {
		b.mu.Unlock()
		return
	}
	b.delivering = true
	finished := false
	defer func() {
		// A panicking OnStateChange must not stop every later delivery.
		if !finished {
			b.mu.Lock()
			b.delivering = false
			b.mu.Unlock()
		}
	}()
	for len(b.pending) > 0 {
		batch := b.pending
		b.pending = nil
		b.mu.Unlock()
		for _, t := range batch {
			b.report(t)
		}
		b.mu.Lock()
	}
	// Checking the queue and clearing the flag under one lock means no
	// change queued meanwhile is left behind.
	b.delivering = false
	finished = true
	b.mu.Unlock()
}

// noConnection reports whether err is a connection that could not be
// made: refused, unreachable, a name that does not resolve.
func noConnection(err error) bool {
	if _, ok := errors.AsType[*net.DNSError](err); ok {
		return true
	}
	op, ok := errors.AsType[*net.OpError](err)
	return ok && op.Op == "dial"
}

func (b *breaker) report(t transition) {
	level := slog.LevelInfo
	if t.to == gobreaker.StateOpen {
		level = slog.LevelWarn
	}
	attrs := []any{"from", t.from.String(), "to", t.to.String()}
	if t.cause != nil {
		attrs = append(attrs, "last_fault", t.cause.Error())
		if t.to == gobreaker.StateOpen && noConnection(t.cause) {
			// As query says it (a walkthrough: run with a wrong URL said
			// "connection refused" and nothing of the setting).
			attrs = append(attrs, "check", "juhe.url (--juhe-url, TWOSELL_JUHE_URL), and that the provider is reachable from here: no connection to it could be made")
		}
	}
	b.logger.Log(context.Background(), level, "juhe: circuit breaker state changed", attrs...)
	if b.onChange != nil {
		b.onChange(t.from.String(), t.to.String())
	}
}
