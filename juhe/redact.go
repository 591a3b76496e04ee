package juhe

import (
	"cmp"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Redacted replaces a secret in any text a Redactor lets out.
const Redacted = "***"

// Redactor removes secrets from text: each secret raw and in the forms URL
// encoding gives it. It is twosell's one implementation of redaction: the
// Client masks its key, openid and AES key with one, and the command masks
// every secret of the process (these, the Kafka SASL password and OAUTHBEARER
// tokens) in its logs, printed errors and exported spans with another.
//
// A Redactor is safe for concurrent use; Add may be called while others
// redact. The zero value is not usable; call NewRedactor.
type Redactor struct {
	mu    sync.Mutex // serializes Add
	state atomic.Pointer[redactorState]
}

// redactorState is an immutable snapshot: redacting never takes a lock.
type redactorState struct {
	forms    []string // every form of every secret, longest first
	replacer *strings.Replacer
}

// NewRedactor returns a Redactor for secrets; empty strings are ignored.
func NewRedactor(secrets ...string) *Redactor {
	r := &Redactor{}
	forms := secretForms(secrets)
	r.state.Store(&redactorState{forms: forms, replacer: newReplacer(forms)})
	return r
}

// Add masks more secrets from now on, such as a token read after start.
func (r *Redactor) Add(secrets ...string) {
	add := secretForms(secrets)
	if len(add) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.state.Load()
	forms := slices.Clone(old.forms)
	for _, f := range add {
		if !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	if len(forms) == len(old.forms) {
		return
	}
	sortLongestFirst(forms)
	r.state.Store(&redactorState{forms: forms, replacer: newReplacer(forms)})
}

// secretForms expands each non-empty secret into its raw, query-escaped and
// path-escaped forms, longest first so that a longer form is replaced before
// a shorter one that it contains.
func secretForms(secrets []string) []string {
	var forms []string
	for _, s := range secrets {
		if s == "" {
			// Replacing "" would insert the mask between every character.
			continue
		}
		forms = append(forms, s, url.QueryEscape(s), url.PathEscape(s))
	}
	sortLongestFirst(forms)
	return slices.Compact(forms)
}

func sortLongestFirst(forms []string) {
	slices.SortFunc(forms, func(a, b string) int {
		if c := cmp.Compare(len(b), len(a)); c != 0 {
			return c
		}
		return strings.Compare(a, b) // equal forms adjacent, for Compact
	})
}

func newReplacer(forms []string) *strings.Replacer {
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, Redacted)
	}
	return strings.NewReplacer(pairs...)
}

// Redact returns s with every secret masked, and also every extra value
// (such as the mobile of one query, in its encoded forms).
func (r *Redactor) Redact(s string, extra ...string) string {
	s = r.state.Load().replacer.Replace(s)
	if forms := secretForms(extra); len(forms) > 0 {
		s = newReplacer(forms).Replace(s)
	}
	return s
}

// Wrap returns err with a redacted message, keeping the chain for
// errors.Is and errors.As. It returns nil for nil, and err itself when its
// message holds no secret.
func (r *Redactor) Wrap(err error, extra ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := r.Redact(msg, extra...)
	if red == msg {
		return err
	}
	return &redactedError{msg: red, err: err}
}

// redactedError is an error whose message has been through a Redactor.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
