package config

import (
	"io"
	"strings"
	"testing"
)

// The rules of kafka.tls, kafka.sasl, the provider's transport and the
// input limits, each problem naming its key, what would be valid and where
// to set it.
func TestValidateSecurity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // in the single problem reported for the first one's key
	}{
		{"ca file without tls", func(c *Config) { c.Kafka.TLS.CAFile = "ca.pem" },
			[]string{"kafka.tls.ca_file: is set but kafka.tls.enabled is false", "TWOSELL_KAFKA_TLS_ENABLED=true", "--kafka-ca-file"}},
		{"server name without tls", func(c *Config) { c.Kafka.TLS.ServerName = "kafka.internal" },
			[]string{"kafka.tls.server_name: is set but kafka.tls.enabled is false"}},
		{"skip verify without tls", func(c *Config) { c.Kafka.TLS.InsecureSkipVerify = true },
			[]string{"kafka.tls.insecure_skip_verify: is set but kafka.tls.enabled is false"}},
		{"cert without key", func(c *Config) { c.Kafka.TLS = KafkaTLS{Enabled: true, CertFile: "c.pem"} },
			[]string{"kafka.tls.cert_file: and kafka.tls.key_file go together", "TWOSELL_KAFKA_TLS_CERT_FILE"}},
		{"key without cert", func(c *Config) { c.Kafka.TLS = KafkaTLS{Enabled: true, KeyFile: "k.pem"} },
			[]string{"kafka.tls.cert_file: and kafka.tls.key_file go together"}},
		{"unknown mechanism", func(c *Config) { c.Kafka.SASL.Mechanism = "GSSAPI" },
			[]string{`kafka.sasl.mechanism: "GSSAPI" is not valid; valid: none, plain, scram-sha-256, scram-sha-512, oauthbearer`, "--sasl-mechanism"}},
		{"scram without user", func(c *Config) { c.Kafka.SASL = KafkaSASL{Mechanism: "scram-sha-512", Password: "p"} },
			[]string{"kafka.sasl.username: must be set, as kafka.sasl.mechanism is scram-sha-512", "--sasl-username"}},
		{"plain without password", func(c *Config) { c.Kafka.SASL = KafkaSASL{Mechanism: "PLAIN", Username: "u"} },
			[]string{"kafka.sasl.password: must be set, as kafka.sasl.mechanism is plain", "TWOSELL_KAFKA_SASL_PASSWORD or TWOSELL_KAFKA_SASL_PASSWORD_FILE"}},
		{"scram with token", func(c *Config) {
			c.Kafka.SASL = KafkaSASL{Mechanism: "scram-sha-256", Username: "u", Password: "p", TokenFile: "t"}
		}, []string{"kafka.sasl.token_file: is set but kafka.sasl.mechanism scram-sha-256 does not use it"}},
		{"oauth without token", func(c *Config) { c.Kafka.SASL.Mechanism = "oauthbearer" },
			[]string{"kafka.sasl.token_file: must be set, as kafka.sasl.mechanism is oauthbearer", "TWOSELL_KAFKA_SASL_TOKEN_FILE"}},
		{"oauth with password", func(c *Config) {
			c.Kafka.SASL = KafkaSASL{Mechanism: "oauthbearer", Password: "p", TokenFile: "t"}
		}, []string{"kafka.sasl.password: is set but kafka.sasl.mechanism oauthbearer does not use it"}},
		{"password without mechanism", func(c *Config) { c.Kafka.SASL.Password = "p" },
			[]string{"kafka.sasl.password: is set but kafka.sasl.mechanism none does not use it", "valid mechanisms: plain, scram-sha-256, scram-sha-512, oauthbearer"}},
		{"user without mechanism", func(c *Config) { c.Kafka.SASL.Username = "u" },
			[]string{"kafka.sasl.username: is set but kafka.sasl.mechanism none does not use it"}},
		{"plain http to a remote host", func(c *Config) { c.Juhe.URL = "http://juhe-gateway.internal:8080" },
			[]string{"juhe.url: http://juhe-gateway.internal:8080 is plain http to juhe-gateway.internal, which is not a loopback address",
				"clear text", "juhe.allow_insecure: true (TWOSELL_JUHE_ALLOW_INSECURE=true)"}},
		{"ca file over http", func(c *Config) { c.Juhe.URL = "http://127.0.0.1:8088"; c.Juhe.CAFile = "ca.pem" },
			[]string{"juhe.ca_file: is set but juhe.url is plain http", "--juhe-ca-file"}},
		{"max record bytes", func(c *Config) { c.Input.MaxRecordBytes = 0 },
			[]string{"input.max_record_bytes: 0 is not valid; valid: 1 or more", "TWOSELL_INPUT_MAX_RECORD_BYTES"}},
		{"max headers", func(c *Config) { c.Input.MaxHeaders = -1 },
			[]string{"input.max_headers: -1 is not valid; valid: 1 or more"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			c.Juhe.Key = "k"
			tt.mutate(&c)
			key := strings.SplitN(tt.want[0], ":", 2)[0]
			var hit []string
			for _, p := range errLines(c.Validate("run")) {
				if strings.HasPrefix(p, key+":") {
					hit = append(hit, p)
				}
			}
			if len(hit) != 1 {
				t.Fatalf("want one problem with %s, got %q", key, errLines(c.Validate("run")))
			}
			mustContain(t, hit[0], tt.want...)
		})
	}
}

func TestValidateSecurityAccepts(t *testing.T) {
	t.Parallel()
	for name, mutate := range map[string]func(*Config){
		"sasl_ssl scram-sha-512": func(c *Config) {
			c.Kafka.TLS = KafkaTLS{Enabled: true, CAFile: "ca.pem", ServerName: "kafka"}
			c.Kafka.SASL = KafkaSASL{Mechanism: "SCRAM-SHA-512", Username: "twosell", Password: "p"}
		},
		"mtls":                    func(c *Config) { c.Kafka.TLS = KafkaTLS{Enabled: true, CertFile: "c", KeyFile: "k"} },
		"oauthbearer":             func(c *Config) { c.Kafka.SASL = KafkaSASL{Mechanism: "oauthbearer", TokenFile: "t"} },
		"plain http to loopback":  func(c *Config) { c.Juhe.URL = "http://127.0.0.1:8088" },
		"plain http to localhost": func(c *Config) { c.Juhe.URL = "http://localhost:8088" },
		"plain http allowed":      func(c *Config) { c.Juhe.URL = "http://juhe:8088"; c.Juhe.AllowInsecure = true },
		"https with a ca":         func(c *Config) { c.Juhe.CAFile = "ca.pem" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			c.Juhe.Key = "k"
			mutate(&c)
			if err := c.Validate("run"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A SASL_SSL cluster is configured by the file, the environment and flags
// like everything else; the password comes from its own variable or a file,
// and neither ever appears in an error.
func TestLoadSASLSSL(t *testing.T) {
	t.Parallel()
	const password = "sasl-Secret-5d1e" // distinctive: any appearance is a leak
	file := writeFile(t, "twosell.yaml", `
kafka:
  brokers: ["kafka-1:9093"]
  tls:
    enabled: true
    ca_file: /etc/twosell/kafka-ca.pem
  sasl:
    mechanism: scram-sha-512
    username: twosell
`)
	pwFile := writeFile(t, "password", "  "+password+"\n")

	c, _, err := Load("run", []string{"--config", file}, withKey.with("TWOSELL_KAFKA_SASL_PASSWORD_FILE", pwFile).lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.SASL.Password.Reveal() != password || c.Kafka.SASL.Mechanism != SASLScramSHA512 || !c.Kafka.TLS.Enabled {
		t.Errorf("loaded %+v", c.Kafka)
	}

	c, _, err = Load("run", []string{"--config", file, "--sasl-mechanism", "scram-sha-256", "--sasl-username", "other"},
		withKey.with("TWOSELL_KAFKA_SASL_PASSWORD", password).lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.SASL.Mechanism != SASLScramSHA256 || c.Kafka.SASL.Username != "other" || c.Kafka.SASL.Password.Reveal() != password {
		t.Errorf("flags over the file: %+v", c.Kafka.SASL)
	}

	// Both the password and its file: an error that names the keys only.
	_, _, err = Load("run", []string{"--config", file},
		withKey.with("TWOSELL_KAFKA_SASL_PASSWORD", password, "TWOSELL_KAFKA_SASL_PASSWORD_FILE", pwFile).lookup, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "kafka.sasl.password and kafka.sasl.password_file are both set") {
		t.Fatalf("err = %v", err)
	}
	// A mechanism the password does not fit: the error names the key, not the value.
	_, _, err = Load("run", nil, withKey.with("TWOSELL_KAFKA_SASL_PASSWORD", password).lookup, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "kafka.sasl.password: is set but kafka.sasl.mechanism none") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("the password appears in %v", err)
	}
	if _, _, err := Load("run", nil, withKey.with("TWOSELL_KAFKA_SASL_PASSWORD_FILE", "/nonexistent/pw").lookup, io.Discard); err == nil ||
		!strings.Contains(err.Error(), `kafka.sasl.password_file: cannot read "/nonexistent/pw"`) {
		t.Fatalf("missing password file: %v", err)
	}
}
