package juhe

import (
	"cmp"
	"net/url"
	"slices"
	"strings"
)

// redacted replaces a secret in any text the client lets out.
const redacted = "***"

// redactor removes the account's secrets from text: the key, the openid and
// the AES key derived from it, each raw and in the forms URL encoding gives
// it. Every error string the client builds passes through it, so that a
// cause quoting a URL or a body cannot leak them.
type redactor struct {
	secrets  []string // every form of every secret, longest first
	replacer *strings.Replacer
}

func newRedactor(secrets ...string) *redactor {
	r := &redactor{secrets: secretForms(secrets)}
	r.replacer = newReplacer(r.secrets)
	return r
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
	slices.SortFunc(forms, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return slices.Compact(forms)
}

func newReplacer(forms []string) *strings.Replacer {
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, redacted)
	}
	return strings.NewReplacer(pairs...)
}

// redact returns s with every secret masked, and also every extra value
// (the mobile of one query, in its encoded forms).
func (r *redactor) redact(s string, extra ...string) string {
	s = r.replacer.Replace(s)
	if forms := secretForms(extra); len(forms) > 0 {
		s = newReplacer(forms).Replace(s)
	}
	return s
}

// wrap returns err with a redacted message, keeping the chain for
// errors.Is and errors.As. It returns nil for nil.
func (r *redactor) wrap(err error, extra ...string) error {
	if err == nil {
		return nil
	}
	if re, ok := err.(*redactedError); ok && len(extra) == 0 {
		return re
	}
	return &redactedError{msg: r.redact(err.Error(), extra...), err: err}
}

// redactedError is an error whose message has been through the redactor.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
