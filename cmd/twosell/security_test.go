package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.yaml.in/yaml/v3"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor/kafkatest"
)

// securedCluster is a kfake broker with SASL (and TLS, if pki is set) and
// one superuser, whose test clients authenticate as that user.
func securedCluster(t *testing.T, mechanism, user, pass string, pki *testPKI, mutual bool) *kafkatest.Cluster {
	t.Helper()
	var clientOpts []kgo.Opt
	fakeOpts := []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(strings.ToUpper(mechanism), user, pass)}
	switch mechanism {
	case config.SASLPlain:
		clientOpts = append(clientOpts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
	case config.SASLScramSHA256:
		clientOpts = append(clientOpts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
	case config.SASLScramSHA512:
		clientOpts = append(clientOpts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	}
	if pki != nil {
		fakeOpts = append(fakeOpts, kfake.TLS(pki.serverTLS(mutual)))
		tc := &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12}
		if mutual {
			cert, err := tls.LoadX509KeyPair(pki.clientCertFile, pki.clientKeyFile)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		clientOpts = append(clientOpts, kgo.DialTLSConfig(tc))
	}
	return kafkatest.NewFake(t, clientOpts, fakeOpts...)
}

// twosell enriches through a broker that requires SASL, with and without
// TLS, configured by configuration alone.
func TestSecuredCluster(t *testing.T) {
	tests := []struct {
		name       string
		mechanism  string
		tls        bool
		mutual     bool
		serverName string
	}{
		{"SASL_PLAINTEXT PLAIN", config.SASLPlain, false, false, ""},
		{"SASL_PLAINTEXT SCRAM-SHA-256", config.SASLScramSHA256, false, false, ""},
		{"SASL_SSL SCRAM-SHA-512", config.SASLScramSHA512, true, false, ""},
		{"SASL_SSL PLAIN with mutual TLS", config.SASLPlain, true, true, ""},
		// The broker is dialed at 127.0.0.1; its certificate is checked
		// for the name given instead.
		{"SASL_SSL SCRAM-SHA-256 with a server name", config.SASLScramSHA256, true, false, "localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const user, pass = "twosell", "Kafka-Pw-0c7e3b9a"
			var pki *testPKI
			if tt.tls {
				pki = newPKI(t, "kafka")
			}
			k := securedCluster(t, tt.mechanism, user, pass, pki, tt.mutual)
			_, url := newSim(t, juhesim.Faults{})
			cfg := testConfig(t, k, url, juhe.ModePlain)
			cfg.Kafka.SASL = config.KafkaSASL{Mechanism: tt.mechanism, Username: user, Password: pass}
			if tt.tls {
				cfg.Kafka.TLS = config.KafkaTLS{Enabled: true, CAFile: pki.caFile, ServerName: tt.serverName}
				if tt.mutual {
					cfg.Kafka.TLS.CertFile, cfg.Kafka.TLS.KeyFile = pki.clientCertFile, pki.clientKeyFile
				}
			}
			if err := cfg.Validate("run"); err != nil {
				t.Fatal(err)
			}
			const n = 40
			evs := pipelineEvents(cfg.Kafka.InputTopic, n)
			k.Produce(records(evs)...)
			logs := &syncBuffer{}
			_, _, stop := runInProcess(t, cfg, logs)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			k.Consume(ctx, func(r []*kgo.Record) bool { return len(r) >= n }, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			checkOutcomes(t, cfg, evs, k.ConsumeAll(ctx, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic), false)
			if strings.Contains(logs.String(), pass) {
				t.Error("the SASL password appears in the logs")
			}
		})
	}
}

// What a user gets wrong about a secured cluster fails at start, with a
// message that names the brokers, TLS and the mechanism and says what to
// check; never the password.
func TestSecuredClusterMisconfigured(t *testing.T) {
	const user, pass, wrong = "twosell", "Kafka-Pw-0c7e3b9a", "Wrong-Pw-5a8d2f61"
	pki := newPKI(t, "kafka")
	other := newPKI(t, "other")
	tests := []struct {
		name      string
		mechanism string // the broker's
		tls       bool   // the broker's
		mutate    func(*config.Config)
		want      []string
	}{
		{"wrong SCRAM-SHA-512 password", config.SASLScramSHA512, true,
			func(c *config.Config) { c.Kafka.SASL.Password = wrong },
			[]string{"SASL SCRAM-SHA-512 as user \"twosell\"", "over TLS", "refused the SASL SCRAM-SHA-512 authentication", "kafka.sasl.username and the password"}},
		{"wrong PLAIN password", config.SASLPlain, false,
			func(c *config.Config) { c.Kafka.SASL.Password = wrong },
			[]string{"SASL PLAIN as user \"twosell\"", "without TLS", "refused the SASL PLAIN authentication"}},
		{"wrong user", config.SASLScramSHA256, false,
			func(c *config.Config) { c.Kafka.SASL.Username = "nobody" },
			[]string{"SASL SCRAM-SHA-256 as user \"nobody\"", "refused the SASL SCRAM-SHA-256 authentication"}},
		{"SASL missing", config.SASLScramSHA512, false,
			func(c *config.Config) { c.Kafka.SASL = config.KafkaSASL{Mechanism: config.SASLNone} },
			[]string{"no SASL", "the brokers require SASL: set kafka.sasl.mechanism"}},
		{"another CA", config.SASLScramSHA512, true,
			func(c *config.Config) { c.Kafka.TLS.CAFile = other.caFile },
			[]string{"over TLS", "certificate", "check kafka.tls.ca_file"}},
		{"server name the certificate lacks", config.SASLScramSHA512, true,
			func(c *config.Config) { c.Kafka.TLS.ServerName = "kafka.example" },
			[]string{"certificate", "kafka.tls.server_name"}},
		{"TLS missing", config.SASLScramSHA512, true,
			func(c *config.Config) { c.Kafka.TLS = config.KafkaTLS{} },
			[]string{"without TLS", "the brokers require TLS: set kafka.tls.enabled: true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var brokerPKI *testPKI
			if tt.tls {
				brokerPKI = pki
			}
			k := securedCluster(t, tt.mechanism, user, pass, brokerPKI, false)
			_, url := newSim(t, juhesim.Faults{})
			cfg := testConfig(t, k, url, juhe.ModePlain)
			cfg.Kafka.SASL = config.KafkaSASL{Mechanism: tt.mechanism, Username: user, Password: pass}
			if tt.tls {
				cfg.Kafka.TLS = config.KafkaTLS{Enabled: true, CAFile: pki.caFile}
			}
			tt.mutate(cfg)
			if err := cfg.Validate("run"); err != nil {
				t.Fatal(err)
			}
			// Through Main, as a user runs it: the config file, the password
			// from its own variable, and what is printed.
			path := writeConfigFile(t, cfg)
			t.Setenv("TWOSELL_JUHE_KEY", testKey)
			t.Setenv("TWOSELL_KAFKA_SASL_PASSWORD", cfg.Kafka.SASL.Password.Reveal())
			t.Setenv("OTEL_TRACES_EXPORTER", "none")
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			var stdout, stderr syncBuffer
			if code := Main(ctx, []string{"run", "--config", path, "--log-format", "json"}, &stdout, &stderr); code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr.String())
			}
			if ctx.Err() != nil {
				t.Fatal("twosell run did not fail at start")
			}
			printed := stderr.String()
			lines := strings.Split(strings.TrimSpace(printed), "\n")
			last := lines[len(lines)-1] // the error; the lines before it are logs
			for _, w := range append(tt.want, "twosell run: kafka (brokers "+k.Brokers[0]) {
				if !strings.Contains(last, w) {
					t.Errorf("the error lacks %q:\n%s", w, last)
				}
			}
			for _, secret := range []string{pass, wrong, testKey} {
				if strings.Contains(printed, secret) {
					t.Errorf("a secret was printed:\n%s", printed)
				}
			}
		})
	}
}

// writeConfigFile writes cfg as twosell run --print-config would, minus the
// secrets (which come from the environment), and returns its path.
func writeConfigFile(t *testing.T, cfg *config.Config) string {
	t.Helper()
	c := *cfg
	c.Juhe.Key, c.Juhe.OpenID, c.Kafka.SASL.Password = "", "", ""
	var buf bytes.Buffer
	if err := writeConfig(&buf, &c); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "twosell.yaml")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The OAUTHBEARER token is read from its file at start and again at each
// authentication after the file changed, so that a rotated token is used
// without a restart; every token read is masked from then on.
func TestOAuthTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	write := func(tok string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	// initial returns the token of the mechanism's first message.
	mech := func() func() string {
		m, err := saslMechanism(&config.KafkaSASL{Mechanism: config.SASLOAuthBearer, TokenFile: path})
		if err != nil {
			t.Fatal(err)
		}
		return func() string {
			t.Helper()
			_, msg, err := m.Authenticate(t.Context(), "broker:9093")
			if err != nil {
				t.Fatal(err)
			}
			_, tok, ok := strings.Cut(string(msg), "auth=Bearer ")
			if !ok {
				t.Fatalf("no bearer token in %q", msg)
			}
			return strings.TrimRight(tok, "\x01")
		}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	write("token-AAAA-1f9e", t0)
	initial := mech()
	if got := initial(); got != "token-AAAA-1f9e" {
		t.Fatalf("token %q", got)
	}
	// Rewritten with the same size and modification time: not re-read
	// (the file is read only when it changed).
	write("token-XXXX-1f9e", t0)
	if got := initial(); got != "token-AAAA-1f9e" {
		t.Fatalf("token %q: the file was re-read although it had not changed", got)
	}
	// Rotated: the next authentication uses the new token.
	write("token-BBBB-77c2", t0.Add(time.Minute))
	if got := initial(); got != "token-BBBB-77c2" {
		t.Fatalf("token %q after the rotation", got)
	}
	for _, tok := range []string{"token-AAAA-1f9e", "token-BBBB-77c2"} {
		if got := secrets.Redact("auth " + tok); got != "auth ***" {
			t.Errorf("token %s is not masked: %q", tok, got)
		}
	}
	// A file that cannot be used is an error at start, naming the key.
	for name, prepare := range map[string]func() string{
		"missing": func() string { return filepath.Join(t.TempDir(), "none") },
		"empty": func() string {
			p := filepath.Join(t.TempDir(), "t")
			_ = os.WriteFile(p, []byte(" \n"), 0o600)
			return p
		},
	} {
		_, err := saslMechanism(&config.KafkaSASL{Mechanism: config.SASLOAuthBearer, TokenFile: prepare()})
		if err == nil || !strings.Contains(err.Error(), "kafka.sasl.token_file") {
			t.Errorf("%s token file: err = %v", name, err)
		}
	}
}

// TLS settings that cannot be loaded fail at start, naming the key and
// the file, never the file's content.
func TestKafkaTLSFiles(t *testing.T) {
	pki := newPKI(t, "kafka")
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tls  config.KafkaTLS
		want string
	}{
		{"ok", config.KafkaTLS{Enabled: true, CAFile: pki.caFile, CertFile: pki.clientCertFile, KeyFile: pki.clientKeyFile, ServerName: "kafka"}, ""},
		{"missing CA", config.KafkaTLS{Enabled: true, CAFile: "/nonexistent/ca.pem"}, `kafka.tls.ca_file: cannot read "/nonexistent/ca.pem"`},
		{"not PEM", config.KafkaTLS{Enabled: true, CAFile: garbage}, "kafka.tls.ca_file: " + fmt.Sprintf("%q", garbage) + " holds no PEM certificate"},
		{"key of another", config.KafkaTLS{Enabled: true, CertFile: pki.clientCertFile, KeyFile: garbage}, "kafka.tls.cert_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Kafka.TLS = tt.tls
			opts, err := kafkaOpts(&cfg)
			if tt.want == "" {
				if err != nil || len(opts) != 3 {
					t.Fatalf("kafkaOpts = %d options, %v", len(opts), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("the error quotes the file: %v", err)
			}
		})
	}
}

// --print-config prints the merged configuration as YAML, durations as Go
// durations and secrets as ***, and exits 0 without connecting anywhere.
func TestPrintConfig(t *testing.T) {
	const key, password = "Print-Key-6b1f0e", "Print-Pw-2d9c44"
	t.Setenv("TWOSELL_JUHE_KEY", key)
	t.Setenv("TWOSELL_KAFKA_SASL_MECHANISM", "scram-sha-512")
	t.Setenv("TWOSELL_KAFKA_SASL_USERNAME", "twosell")
	t.Setenv("TWOSELL_KAFKA_SASL_PASSWORD", password)
	t.Setenv("TWOSELL_KAFKA_TLS_ENABLED", "true")
	var stdout, stderr syncBuffer
	code := Main(t.Context(), []string{"run", "--print-config", "--brokers", "kafka-1:9093", "--juhe-timeout", "1500ms"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"timeout: 1.5s", "session_timeout: 45s", "mechanism: scram-sha-512", "password: '***'", "key: '***'", "enabled: true"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, key) || strings.Contains(out, password) {
		t.Errorf("a secret was printed:\n%s", out)
	}
	var back config.Config
	if err := yaml.Unmarshal([]byte(out), &back); err != nil {
		t.Fatalf("the printed configuration does not load: %v", err)
	}
	if back.Juhe.Timeout != 1500*time.Millisecond || back.Kafka.Brokers[0] != "kafka-1:9093" {
		t.Errorf("loaded back %+v", back)
	}
	// An invalid configuration is not printed: the errors are.
	stdout, stderr = syncBuffer{}, syncBuffer{}
	if code := Main(t.Context(), []string{"run", "--print-config", "--sasl-mechanism", "kerberos"}, &stdout, &stderr); code == 0 || stdout.String() != "" {
		t.Errorf("exit %d with output %q for an invalid configuration", code, stdout.String())
	}
}

// The log handler masks every secret the process knows, wherever in a
// record it is.
func TestRedactingLogs(t *testing.T) {
	const secret = "Log-Secret-83a1c0"
	secrets.Add(secret)
	var buf bytes.Buffer
	log := slog.New(redactingHandler{slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), secrets})
	log = log.With("with", "w "+secret).WithGroup("g")
	log.Info("message "+secret,
		"string", "s "+secret,
		"error", errors.New("e "+secret),
		"any", []string{"x", secret},
		slog.Group("group", "inner", secret),
		"secret", config.Secret(secret),
		"number", 42)
	out := buf.String()
	if strings.Contains(out, secret) {
		t.Errorf("a secret was logged:\n%s", out)
	}
	for _, want := range []string{`"with":"w ***"`, `"msg":"message ***"`, `"error":"e ***"`, `"inner":"***"`, `"number":42`} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s in:\n%s", want, out)
		}
	}
}

// Exported spans are masked too: the last line of defence behind the code
// that keeps secrets out of spans.
func TestRedactingExporter(t *testing.T) {
	const secret = "Span-Secret-4e0d7b"
	secrets.Add(secret)
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(redactingExporter{mem, secrets}))
	_, span := tp.Tracer("test").Start(t.Context(), "op "+secret)
	span.SetAttributes(attribute.String("a", secret), attribute.StringSlice("s", []string{secret}), attribute.Int("n", 1))
	span.AddEvent("e "+secret, trace.WithAttributes(attribute.String("b", "x"+secret)))
	span.RecordError(errors.New("failed: " + secret))
	span.SetStatus(codes.Error, "status "+secret)
	span.End() // exported now: a syncer
	got := mem.GetSpans()
	if len(got) != 1 {
		t.Fatalf("%d spans", len(got))
	}
	dump := fmt.Sprintf("%+v", got[0])
	if strings.Contains(dump, secret) || strings.Contains(dump, base64.StdEncoding.EncodeToString([]byte(secret))) {
		t.Errorf("a secret was exported:\n%s", dump)
	}
	if !strings.Contains(dump, "op ***") || !strings.Contains(dump, "failed: ***") {
		t.Errorf("the span lost its content:\n%s", dump)
	}
}

// A short secret is masked wherever its text appears: the logs say which
// settings hold one, never the secret.
func TestWarnShortSecrets(t *testing.T) {
	cfg := config.Default()
	cfg.Juhe.Key = "k-0123456789abcdef"
	cfg.Kafka.SASL.Password = "pw"
	cfg.Juhe.OpenID = "1234567"
	var logs strings.Builder
	warnInsecure(&cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	out := logs.String()
	if !strings.Contains(out, "secrets shorter than 8 characters") || !strings.Contains(out, "settings=\"[kafka.sasl.password juhe.openid]\"") &&
		!strings.Contains(out, "settings=\"[juhe.openid kafka.sasl.password]\"") {
		t.Errorf("no warning naming the two short secrets: %s", out)
	}
	if strings.Contains(out, "juhe.key") || strings.Contains(out, "1234567") || strings.Contains(out, "=pw") {
		t.Errorf("the warning names the long key, or shows a secret: %s", out)
	}
	cfg.Kafka.SASL.Password, cfg.Juhe.OpenID = "long enough", ""
	logs.Reset()
	if warnInsecure(&cfg, slog.New(slog.NewTextHandler(&logs, nil))); strings.Contains(logs.String(), "shorter than") {
		t.Errorf("a warning without a short secret: %s", logs.String())
	}
}

// A secret's file readable by other users (Kubernetes' default 0644) is
// warned of, naming the setting, the path and the bits, never the secret;
// at 0600 nothing is said.
func TestWarnExposedSecretFiles(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no permission bits")
	}
	const secret = "k-0123456789abcdef"
	path := filepath.Join(t.TempDir(), "juhe-key")
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Juhe.Key, cfg.Juhe.KeyFile = secret, path
	var logs strings.Builder
	warnInsecure(&cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	out := logs.String()
	if !strings.Contains(out, "chmod 600") || !strings.Contains(out, "juhe.key_file "+path+" (-rw-r--r--)") {
		t.Errorf("no warning naming the file and its bits: %s", out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("the warning shows the secret: %s", out)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	if warnInsecure(&cfg, slog.New(slog.NewTextHandler(&logs, nil))); strings.Contains(logs.String(), "chmod") {
		t.Errorf("a warning for a file only its owner can read: %s", logs.String())
	}
}

// A broker address where nothing listens, or a name that does not resolve,
// says what to check (found by review: the brokers were named, with no
// hint).
func TestExplainKafkaUnreachable(t *testing.T) {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{"kafka-1:9092"}
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "nothing accepts connections there: check kafka.brokers"},
		{"no such host", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "kafka-1", IsNotFound: true}}, "does not resolve: check kafka.brokers"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := explainKafka(&cfg, fmt.Errorf("listing topic %q: unable to dial: %w", "t", tt.err)).Error()
			if !strings.Contains(got, tt.want) || !strings.Contains(got, "kafka-1:9092") {
				t.Errorf("%s; want the brokers named and %q", got, tt.want)
			}
		})
	}
}
