package juhe

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestRedact(t *testing.T) {
	const key, openid = "k+y/=1 2", "OPENID-9b2d"
	aesKey := string(AESKey(openid))
	r := NewRedactor(key, openid, aesKey, "")
	for _, s := range []string{key, url.QueryEscape(key), url.PathEscape(key), openid, aesKey} {
		in := "before " + s + " after"
		if got := r.Redact(in); got != "before *** after" {
			t.Errorf("redact(%q) = %q", in, got)
		}
	}
	if got := r.Redact("nothing secret"); got != "nothing secret" {
		t.Errorf("an empty secret changed the text: %q", got)
	}
	if got := r.Redact("mobile=17312345678", "17312345678"); got != "mobile=***" {
		t.Errorf("extra: %q", got)
	}

	inner := errors.New("dial " + key)
	err := r.Wrap(inner)
	if strings.Contains(err.Error(), key) || !errors.Is(err, inner) {
		t.Errorf("wrap: %q, Is %v", err, errors.Is(err, inner))
	}
	if r.Wrap(nil) != nil {
		t.Error("wrap(nil) != nil")
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{base: 100 * time.Millisecond, max: 2 * time.Second}
	for n, ceiling := range map[int]time.Duration{
		1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond,
		5: 1600 * time.Millisecond, 6: 2 * time.Second, 62: 2 * time.Second, 1000: 2 * time.Second,
	} {
		for range 200 {
			if d := b.delay(n); d < 0 || d > ceiling {
				t.Fatalf("delay(%d) = %s, outside [0, %s]", n, d, ceiling)
			}
		}
	}
	// Full jitter: the draws spread over the range rather than sit at the top.
	low := 0
	for range 1000 {
		if b.delay(6) < time.Second {
			low++
		}
	}
	if low < 100 {
		t.Errorf("only %d of 1000 draws below half the cap: not jittered", low)
	}
	if d := (backoff{}).delay(1); d != 0 {
		t.Errorf("zero backoff = %s", d)
	}
}

func TestBreakerClassification(t *testing.T) {
	for class, fault := range map[Class]bool{
		ClassRecord: false, ClassTransient: true, ClassQuota: true, ClassFatal: true,
		ClassTransport: true, ClassUnknown: true,
	} {
		err := &Error{Class: class}
		if breakerSuccess(err) == fault {
			t.Errorf("%s: success = %v", class, breakerSuccess(err))
		}
		if breakerExcluded(err) {
			t.Errorf("%s: excluded", class)
		}
	}
}

// calendarDay accepts exactly the yyyymmdd strings time.Parse accepts.
func TestCalendarDay(t *testing.T) {
	check := func(d string) {
		_, err := time.Parse("20060102", d)
		if got := calendarDay(d); got != (err == nil) {
			t.Fatalf("calendarDay(%q) = %v; time.Parse: %v", d, got, err)
		}
	}
	for _, y := range []int{0, 1, 1900, 1999, 2000, 2023, 2024, 2100, 9999} {
		for m := 0; m <= 13; m++ {
			for d := 0; d <= 32; d++ {
				check(fmt.Sprintf("%04d%02d%02d", y, m, d))
			}
		}
	}
	for _, d := range []string{"2024010a", "+2024010", "2024 101", "20240230", "2024-1-1", "２０２４0101"[:8]} {
		check(d)
	}
}

// The breaker's refusals say when it lets a call through again: the rest of
// open_for while open, a moment while its trial call runs. (Fake time:
// synctest, which gobreaker's clock follows.)
func TestBreakerRefusalsSayWhenToRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(BreakerConfig{Failures: 2, OpenFor: 30 * time.Second, HalfOpenRequests: 1}, slog.New(slog.DiscardHandler), nil)
		fault := func() (Answer, error) { return Answer{}, &Error{Class: ClassTransient} }
		retryIn := func() time.Duration {
			t.Helper()
			_, err := b.execute(func() (Answer, error) {
				t.Error("the breaker let a call through")
				return Answer{}, nil
			})
			e, ok := errors.AsType[*Error](err)
			if !ok || e.Class != ClassUnavailable {
				t.Fatalf("refusal: %v, want ClassUnavailable", err)
			}
			return e.RetryIn
		}
		for range 2 {
			if _, err := b.execute(fault); !IsTransient(err) {
				t.Fatalf("a fault: %v", err)
			}
		}
		if d := retryIn(); d != 30*time.Second {
			t.Errorf("just opened: RetryIn %v, want open_for (30s)", d)
		}
		time.Sleep(20 * time.Second)
		if d := retryIn(); d != 10*time.Second {
			t.Errorf("20s later: RetryIn %v, want 10s", d)
		}
		time.Sleep(10*time.Second + time.Millisecond) // open_for has passed
		trial, release := make(chan struct{}), make(chan struct{})
		go b.execute(func() (Answer, error) { // the half-open breaker's trial call
			close(trial)
			<-release
			return Answer{}, nil
		})
		<-trial
		if d := retryIn(); d != breakerTrialWait {
			t.Errorf("half-open, its trial call running: RetryIn %v, want %v", d, breakerTrialWait)
		}
		close(release)
		synctest.Wait()
		if _, err := b.execute(func() (Answer, error) { return Answer{}, nil }); err != nil {
			t.Errorf("after a trial call's answer: %v, want the breaker closed", err)
		}
	})
}
