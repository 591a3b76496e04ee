package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
)

// secrets holds every secret value this process has loaded: the provider's
// key and openid and the AES key derived from it, the Kafka SASL password,
// and each OAUTHBEARER token read. It is the one place that redacts what
// the process lets out: every log line (newLogger), the error main prints
// (Main), and the spans it exports (setupTracing). The juhe client masks its
// own errors with the same code before they get here.
//
// It is process-wide rather than per run: a secret, once loaded, must stay
// masked wherever it turns up for as long as the process lives. Secrets are
// added where they are revealed (registerSecrets, newJuheClient,
// saslMechanism, tokenFile), before anything could print them.
var secrets = juhe.NewRedactor()

// registerSecrets adds every secret of cfg to secrets.
func registerSecrets(cfg *config.Config) { secrets.Add(cfg.Secrets()...) }

// kafkaTLS builds the TLS configuration of kafka.tls: TLS 1.2 or later,
// the brokers verified against kafka.tls.ca_file (else the system's roots)
// under their own host names (else kafka.tls.server_name), and a client
// certificate for mutual TLS. Errors name the key and the file, never the
// file's content.
func kafkaTLS(t *config.KafkaTLS) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Empty: franz-go verifies each broker under the host of its
		// address.
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in, documented as for test clusters only
	}
	if t.CAFile != "" {
		pool, err := loadCAs("kafka.tls.ca_file", t.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.cert_file %q and kafka.tls.key_file %q: %w", t.CertFile, t.KeyFile, unwrapPath(err))
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// loadCAs reads a PEM file of certificate authorities for the setting key.
func loadCAs(key, path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read %q: %w", key, path, unwrapPath(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: %q holds no PEM certificate", key, path)
	}
	return pool, nil
}

// unwrapPath drops the path from an *fs.PathError, for messages that name
// the path already.
func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

// saslMechanism returns franz-go's mechanism for kafka.sasl, or nil for
// none. For oauthbearer it reads the token file once now, so that a missing
// or empty file is an error at start and not at the first connection.
func saslMechanism(s *config.KafkaSASL) (sasl.Mechanism, error) {
	switch s.Mechanism {
	case config.SASLPlain, config.SASLScramSHA256, config.SASLScramSHA512:
		user, pass := s.Username, s.Password.Reveal()
		secrets.Add(pass)
		switch s.Mechanism {
		case config.SASLPlain:
			return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
		case config.SASLScramSHA256:
			return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
		default:
			return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
		}
	case config.SASLOAuthBearer:
		tf := &tokenFile{path: s.TokenFile, onRead: func(tok string) { secrets.Add(tok) }}
		if _, err := tf.token(); err != nil {
			return nil, err
		}
		return oauth.Oauth(tf.auth), nil
	}
	return nil, nil
}

// tokenFile is the OAUTHBEARER token of kafka.sasl.token_file. franz-go asks
// for a token for every new connection and every re-authentication; the
// file is read again whenever its modification time, size or identity
// changed since the last read, so that an agent rewriting it in place, or a
// Kubernetes secret mount swapping its symlink, is picked up without a
// restart. It is safe for concurrent use.
type tokenFile struct {
	path   string
	onRead func(token string) // called with each new token read

	mu   sync.Mutex
	info os.FileInfo // the file as of the last read; nil before
	tok  string
}

// token returns the file's current token.
func (f *tokenFile) token() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := os.Stat(f.path)
	if err != nil {
		return "", fmt.Errorf("kafka.sasl.token_file: cannot read %q: %w", f.path, unwrapPath(err))
	}
	if f.info != nil && os.SameFile(f.info, st) && st.ModTime().Equal(f.info.ModTime()) && st.Size() == f.info.Size() {
		return f.tok, nil
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return "", fmt.Errorf("kafka.sasl.token_file: cannot read %q: %w", f.path, unwrapPath(err))
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("kafka.sasl.token_file: %q is empty", f.path)
	}
	if f.onRead != nil && tok != f.tok {
		f.onRead(tok)
	}
	f.info, f.tok = st, tok
	return tok, nil
}

// auth is the oauth.Oauth callback.
func (f *tokenFile) auth(context.Context) (oauth.Auth, error) {
	tok, err := f.token()
	return oauth.Auth{Token: tok}, err
}

// mechanismName is the mechanism as Kafka names it: SCRAM-SHA-512.
func mechanismName(m string) string { return strings.ToUpper(m) }

// describeKafka says how twosell reaches the cluster, for errors: the
// brokers, TLS, and the SASL mechanism and user. Never the password.
func describeKafka(cfg *config.Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "brokers %s", strings.Join(cfg.Kafka.Brokers, ","))
	if cfg.Kafka.TLS.Enabled {
		b.WriteString(" over TLS")
	} else {
		b.WriteString(" without TLS")
	}
	switch s := cfg.Kafka.SASL; s.Mechanism {
	case config.SASLNone, "":
		b.WriteString(", no SASL")
	case config.SASLOAuthBearer:
		fmt.Fprintf(&b, ", SASL %s with the token in %s", mechanismName(s.Mechanism), s.TokenFile)
	default:
		fmt.Fprintf(&b, ", SASL %s as user %q", mechanismName(s.Mechanism), s.Username)
	}
	return b.String()
}

// franz-go's words for two answers of a port that is not a Kafka listener
// (its errors have no type of their own): a reply that begins with "HTTP",
// and a TLS alert record.
const (
	franzHTTPReply = "'HTTP' in ascii"
	franzTLSAlert  = "appear to be a tls alert record"
)

// explainKafka wraps an error of the cluster's with how twosell tried to
// reach it and what to check. The franz-go errors it wraps name no secret;
// the result passes through secrets anyway when it is printed.
func explainKafka(cfg *config.Config, err error) error {
	sasl, tlsOn := cfg.Kafka.SASL.Mechanism, cfg.Kafka.TLS.Enabled
	saslOn := sasl != config.SASLNone && sasl != ""
	var hint string
	var (
		unknownCA  x509.UnknownAuthorityError
		hostname   x509.HostnameError
		invalid    x509.CertificateInvalidError
		verify     *tls.CertificateVerificationError
		recordHdr  tls.RecordHeaderError
		firstRead  *kgo.ErrFirstReadEOF // franz-go's guess at why a broker hung up at once
		dns        *net.DNSError
		saslFailed = errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState) ||
			errors.Is(err, kerr.UnsupportedSaslMechanism)
	)
	// Which guess franz-go made, by its message (its kind is unexported).
	hungUp := errors.As(err, &firstRead)
	hungUpTLS := hungUp && strings.Contains(firstRead.Error(), "TLS")
	hungUpSASL := hungUp && strings.Contains(firstRead.Error(), "SASL")
	switch {
	case errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify):
		hint = "the brokers' certificate was not accepted: check kafka.tls.ca_file (the CA that signs it) and kafka.tls.server_name"
	case strings.Contains(err.Error(), franzHTTPReply):
		hint = "a broker's port answered in HTTP: it is an HTTP server's (a web console, a REST proxy, a schema registry?), not a Kafka listener; check kafka.brokers (--brokers, TWOSELL_KAFKA_BROKERS)"
	case !tlsOn && strings.Contains(err.Error(), franzTLSAlert):
		hint = "a broker's port answered with a TLS alert: it is a TLS listener; set kafka.tls.enabled: true (and kafka.tls.ca_file if the brokers' CA is not a system one)"
	case errors.As(err, &recordHdr) || (tlsOn && hungUpTLS):
		hint = "the brokers did not answer in TLS: check kafka.tls.enabled and that the brokers' port is their TLS listener"
	case !tlsOn && hungUpTLS:
		hint = "the brokers require TLS: set kafka.tls.enabled: true (and kafka.tls.ca_file if their CA is not a system one)"
	case !saslOn && hungUpSASL:
		hint = "the brokers require SASL: set kafka.sasl.mechanism, kafka.sasl.username and the password"
	case saslOn && (saslFailed || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
		// A broker answers a failed authentication with an error, or (some
		// brokers, and kfake) by closing the connection.
		hint = fmt.Sprintf("the brokers refused the SASL %s authentication or closed the connection during it: check ", mechanismName(sasl))
		if sasl == config.SASLOAuthBearer {
			hint += "the token in kafka.sasl.token_file"
		} else {
			hint += "kafka.sasl.username and the password (TWOSELL_KAFKA_SASL_PASSWORD or kafka.sasl.password_file)"
		}
		hint += ", and that kafka.sasl.mechanism is one the brokers enable"
		if !tlsOn {
			hint += "; if the brokers' listener is SASL_SSL, set kafka.tls.enabled: true"
		}
	case tlsOn && errors.Is(err, context.DeadlineExceeded) && strings.Contains(err.Error(), "dial"):
		// A plaintext listener never answers a TLS handshake.
		hint = "no connection completed in time: check that the brokers are reachable and that the port is their TLS listener"
	case !tlsOn && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
		hint = "the brokers closed the connection: if their listener is SSL or SASL_SSL, set kafka.tls.enabled: true and kafka.sasl.*"
	case errors.Is(err, syscall.ECONNREFUSED):
		hint = "nothing accepts connections there: check kafka.brokers (--brokers, TWOSELL_KAFKA_BROKERS) and that the brokers are up"
	case errors.As(err, &dns):
		hint = "a broker's host name does not resolve: check kafka.brokers (--brokers, TWOSELL_KAFKA_BROKERS)"
	}
	if hint != "" {
		return fmt.Errorf("kafka (%s): %w; %s", describeKafka(cfg), err, hint)
	}
	return fmt.Errorf("kafka (%s): %w", describeKafka(cfg), err)
}

// warnInsecure logs what works but should not be left so, for a command
// that connects to Kafka and to the provider.
func warnInsecure(cfg *config.Config, log *slog.Logger) {
	warnInsecureKafka(cfg, log)
	warnInsecureJuhe(cfg, log)
	warnSecrets(cfg, log)
}

// warnInsecureKafka is warnInsecure's part for the brokers' connection.
func warnInsecureKafka(cfg *config.Config, log *slog.Logger) {
	if cfg.Kafka.TLS.InsecureSkipVerify {
		log.Warn("kafka.tls.insecure_skip_verify is on: the brokers' certificates are not verified, so SASL credentials " +
			"and personal data are open to anyone on the path; use kafka.tls.ca_file instead")
	}
	switch {
	case cfg.Kafka.TLS.Enabled:
	case cfg.Kafka.SASL.Mechanism == config.SASLPlain:
		log.Warn("SASL PLAIN without TLS sends the password to the brokers as it is; set kafka.tls.enabled: true")
	case cfg.Kafka.SASL.Mechanism == config.SASLOAuthBearer:
		// Found by a security review: the token, replayable until it
		// expires, went out as it is without a word.
		log.Warn("SASL OAUTHBEARER without TLS sends the token to the brokers as it is, which anyone on the path can use until it expires; set kafka.tls.enabled: true")
	}
}

// warnInsecureJuhe is warnInsecure's part for the provider's connection.
func warnInsecureJuhe(cfg *config.Config, log *slog.Logger) {
	if cfg.Juhe.AllowInsecure && juheInsecure(cfg.Juhe.URL) {
		log.Warn("juhe.allow_insecure: the key is sent to the provider over plain http", "juhe_url", config.ShownURL(cfg.Juhe.URL))
	}
}

// warnSecrets warns of secrets too short to be masked in the logs without
// garbling them, and of secret files that other users may read or change.
func warnSecrets(cfg *config.Config, log *slog.Logger) {
	if short := cfg.ShortSecrets(minSecretLen); len(short) > 0 {
		log.Warn(shortSecretsWarning, "settings", settingNames(short))
	}
	if exposed := cfg.ExposedSecretFiles(); len(exposed) > 0 {
		files := make([]string, len(exposed))
		for i, f := range exposed {
			files[i] = fmt.Sprintf("%s %s (%s)", f.Key, f.Path, f.Mode)
		}
		log.Warn("secret files that other users of this machine can read, or others than their owner can change: "+
			"chmod 600 them (in Kubernetes, give the secret's volume defaultMode: 0400)", "files", files)
	}
}

// settingNames are the keys of settings, for a log line that names them
// (warnSecrets). The redacting handler shows them as they are when every
// one is the key of a secret setting (config.IsSecretKey): text of the
// program's own, the same whatever the secrets, so showing it tells nothing
// of them. Masked as any value, a short secret garbled the very line meant
// to name it ("juhe.***enid" for an openid "op"), and where the mask landed
// showed the secret. Anything else in the list, and every other value of
// the record, is masked as usual.
type settingNames []string

// known reports whether every name is a secret setting's key.
func (n settingNames) known() bool {
	for _, k := range n {
		if !config.IsSecretKey(k) {
			return false
		}
	}
	return true
}

// minSecretLen is the length under which warnSecrets warns of a secret.
const minSecretLen = 8

// shortSecretsWarning is warnSecrets' warning of short secrets. The
// redacting handler shows it as it is, as it shows settingNames: text of
// the program's own, whatever the secrets. Masked, a secret "short" made it
// "secrets ***er than 8 characters" (found by a walkthrough).
var shortSecretsWarning = fmt.Sprintf("secrets shorter than %d characters: the logs mask every occurrence of each, which garbles them "+
	"and shows where the secret's text appears; use longer ones", minSecretLen)

// juheInsecure reports whether raw is plain http to a host other than
// loopback (see juhe.InsecureURL).
func juheInsecure(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && juhe.InsecureURL(u)
}

// redactingHandler masks secrets in every log record before its handler
// sees it: the message, every string attribute, and errors and other values
// whose text holds a secret.
type redactingHandler struct {
	next slog.Handler
	r    *juhe.Redactor
}

var _ slog.Handler = redactingHandler{}

func (h redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h redactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	msg := rec.Message
	if msg != shortSecretsWarning {
		msg = h.r.Redact(msg)
	}
	out := slog.NewRecord(rec.Time, rec.Level, msg, rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.attr(a)
	}
	return redactingHandler{h.next.WithAttrs(red), h.r}
}

func (h redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{h.next.WithGroup(name), h.r}
}

func (h redactingHandler) attr(a slog.Attr) slog.Attr {
	a.Key = h.r.Redact(a.Key)
	v := a.Value.Resolve() // a LogValuer (config.Secret) shows what it chose to
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.Redact(v.String()))
	case slog.KindGroup:
		group := v.Group()
		red := make([]any, len(group))
		for i, g := range group {
			red[i] = h.attr(g)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		if n, ok := v.Any().(settingNames); ok && n.known() {
			return slog.Any(a.Key, []string(n))
		}
		var text string
		if err, ok := v.Any().(error); ok {
			text = err.Error()
		} else {
			text = fmt.Sprint(v.Any())
		}
		if red := h.r.Redact(text); red != text {
			return slog.String(a.Key, red)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
