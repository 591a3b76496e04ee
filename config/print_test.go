package config

import (
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/twosell/twosell/juhe"
)

// The printed configuration is the merged one, readable as a config file:
// durations as Go durations, secrets as ***, and everything else loads
// back to the same values.
func TestMarshalYAML(t *testing.T) {
	t.Parallel()
	passwordFile := writeFile(t, "password", "sasl-Pw-7c1d9e\n")
	e := withKey.with(
		"TWOSELL_JUHE_OPENID", "openid-3f8a2b",
		"TWOSELL_JUHE_MODE", "sha256+aes",
		"TWOSELL_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512",
		"TWOSELL_KAFKA_SASL_USERNAME", "twosell",
		"TWOSELL_KAFKA_SASL_PASSWORD_FILE", passwordFile,
		"TWOSELL_KAFKA_TLS_ENABLED", "true",
		"TWOSELL_JUHE_BREAKER_OPEN_FOR", "1m30s",
	)
	c, _, err := Load("run", []string{"--brokers", "k1:9093,k2:9093", "--juhe-timeout", "750ms"}, e.lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	mustContain(t, text, "timeout: 750ms", "open_for: 1m30s", "session_timeout: 45s", "brokers: ['k1:9093', 'k2:9093']",
		"mechanism: scram-sha-512", "password: \"\"", "key: '***'", "openid: '***'", "password_file: "+passwordFile,
		"enabled: true", "max_record_bytes: 1048576", "create_topics: true")
	for _, secret := range c.Secrets() {
		if strings.Contains(text, secret) {
			t.Errorf("a secret was printed:\n%s", text)
		}
	}

	// Loaded back over the defaults, it is c, but for the secrets: those
	// set read as ***, the one from a file is empty (its file reads it).
	var back Config = Default()
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatalf("the printed configuration does not load: %v\n%s", err, text)
	}
	want := *c
	want.Juhe.Key, want.Juhe.OpenID, want.Kafka.SASL.Password = "***", "***", ""
	back.Input.loc, want.Input.loc = nil, nil
	back.Juhe.budgetLoc, want.Juhe.budgetLoc = nil, nil
	if !reflect.DeepEqual(back, want) {
		t.Errorf("loaded back:\n%+v\nwant\n%+v", back, want)
	}
}

// Strings that YAML would read as something else stay strings.
func TestMarshalYAMLQuotes(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Kafka.Group = "true"
	c.Kafka.ClientID = "0123"
	c.Output.Field = "*alias"
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back := Default()
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if back.Kafka.Group != "true" || back.Kafka.ClientID != "0123" || back.Output.Field != "*alias" {
		t.Errorf("round trip changed strings: %q %q %q\n%s", back.Kafka.Group, back.Kafka.ClientID, back.Output.Field, out)
	}
}

func TestConfigSecrets(t *testing.T) {
	t.Parallel()
	c := Default()
	if got := c.Secrets(); len(got) != 0 {
		t.Errorf("Default has secrets %q", got)
	}
	c.Juhe.Key, c.Juhe.OpenID, c.Kafka.SASL.Password = "k", "o", "p"
	got := c.Secrets()
	want := []string{"k", "o", "p", string(juhe.AESKey("o")), c.CacheSecret()}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Secrets = %q, want %q", got, want)
	}

	// A cache secret of its own replaces the one derived from the key.
	derived := c.CacheSecret()
	c.Cache.Secret = "s"
	got = c.Secrets()
	if !slices.Contains(got, "s") || slices.Contains(got, derived) || len(got) != 5 {
		t.Errorf("Secrets with cache.secret = %q, want the key, openid, password, AES key and \"s\"", got)
	}
}

// The printed configuration says which transactional id an exactly-once run
// would use when it is not set (found by a walkthrough: it printed "" only,
// where README gives the default as <group>-<hostname>), without setting it:
// the file may be deployed on other hosts.
func TestMarshalYAMLSaysTheDefaultTransactionalID(t *testing.T) {
	c := Default()
	c.Kafka.Group = "fraud"
	host, _ := os.Hostname()
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `transactional_id: "" # empty: <group>-<hostname>, here fraud-` + host + "\n"; !strings.Contains(string(out), want) {
		t.Errorf("want %q in:\n%s", want, out)
	}
	c.Kafka.TransactionalID = "fraud-1"
	if out, _ = yaml.Marshal(c); !strings.Contains(string(out), "transactional_id: fraud-1\n") {
		t.Errorf("a set id: want it alone in:\n%s", out)
	}
}
