package config

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const precedenceFile = `
kafka:
  brokers: [file-1:9092, file-2:9092]
  group: g-file
  create_topics: false
juhe:
  timeout: 3s
  breaker:
    open_for: 11s
log:
  level: warn
`

// Each layer overrides the one before: defaults < file < environment <
// flags, and a flag overrides only when it is given.
func TestPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file bool // pass precedenceFile with --config
		env  env
		args []string
		get  func(*Config) any
		want any
	}{
		{"group default", false, nil, nil,
			func(c *Config) any { return c.Kafka.Group }, "twosell"},
		{"group file", true, nil, nil,
			func(c *Config) any { return c.Kafka.Group }, "g-file"},
		{"group env over file", true, env{"TWOSELL_KAFKA_GROUP": "g-env"}, nil,
			func(c *Config) any { return c.Kafka.Group }, "g-env"},
		{"group flag over env", true, env{"TWOSELL_KAFKA_GROUP": "g-env"}, []string{"--group", "g-flag"},
			func(c *Config) any { return c.Kafka.Group }, "g-flag"},
		{"group flag equal to the default still overrides", true, env{"TWOSELL_KAFKA_GROUP": "g-env"}, []string{"--group=twosell"},
			func(c *Config) any { return c.Kafka.Group }, "twosell"},
		{"other flag leaves group from env", true, env{"TWOSELL_KAFKA_GROUP": "g-env"}, []string{"--juhe-mode", "md5"},
			func(c *Config) any { return c.Kafka.Group }, "g-env"},

		{"brokers list file", true, nil, nil,
			func(c *Config) any { return c.Kafka.Brokers }, []string{"file-1:9092", "file-2:9092"}},
		{"brokers list env", true, env{"TWOSELL_KAFKA_BROKERS": "env-1:9092, env-2:9093"}, nil,
			func(c *Config) any { return c.Kafka.Brokers }, []string{"env-1:9092", "env-2:9093"}},
		{"brokers list flag", true, env{"TWOSELL_KAFKA_BROKERS": "env-1:9092"}, []string{"--brokers", "flag-1:9092,flag-2:9092,flag-3:9092"},
			func(c *Config) any { return c.Kafka.Brokers }, []string{"flag-1:9092", "flag-2:9092", "flag-3:9092"}},

		{"nested default", false, nil, nil,
			func(c *Config) any { return c.Juhe.Breaker.OpenFor }, 30 * time.Second},
		{"nested file", true, nil, nil,
			func(c *Config) any { return c.Juhe.Breaker.OpenFor }, 11 * time.Second},
		{"nested env over file", true, env{"TWOSELL_JUHE_BREAKER_OPEN_FOR": "1m"}, nil,
			func(c *Config) any { return c.Juhe.Breaker.OpenFor }, time.Minute},
		{"nested sibling keeps default", true, nil, nil,
			func(c *Config) any { return c.Juhe.Breaker.Failures }, 5},

		{"duration env over file", true, env{"TWOSELL_JUHE_TIMEOUT": "4s"}, nil,
			func(c *Config) any { return c.Juhe.Timeout }, 4 * time.Second},
		{"duration flag over env", true, env{"TWOSELL_JUHE_TIMEOUT": "4s"}, []string{"--juhe-timeout=750ms"},
			func(c *Config) any { return c.Juhe.Timeout }, 750 * time.Millisecond},

		{"bool file", true, nil, nil,
			func(c *Config) any { return c.Kafka.CreateTopics }, false},
		{"bool env over file", true, env{"TWOSELL_KAFKA_CREATE_TOPICS": "true"}, nil,
			func(c *Config) any { return c.Kafka.CreateTopics }, true},
		{"bool flag without value", true, env{"TWOSELL_KAFKA_CREATE_TOPICS": "0"}, []string{"--create-topics"},
			func(c *Config) any { return c.Kafka.CreateTopics }, true},
		{"bool flag false", true, env{"TWOSELL_KAFKA_CREATE_TOPICS": "1"}, []string{"--create-topics=false"},
			func(c *Config) any { return c.Kafka.CreateTopics }, false},

		{"level flag over env over file", true, env{"TWOSELL_LOG_LEVEL": "error"}, []string{"--log-level", "DEBUG"},
			func(c *Config) any { return c.Log.Level }, "debug"},
		{"file named by TWOSELL_CONFIG", false, env{EnvConfigFile: "FILE"}, nil,
			func(c *Config) any { return c.Kafka.Group }, "g-file"},
		{"--config over TWOSELL_CONFIG", true, env{EnvConfigFile: "/does/not/exist.yaml"}, nil,
			func(c *Config) any { return c.Kafka.Group }, "g-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "twosell.yaml", precedenceFile)
			e := withKey.with()
			for k, v := range tt.env {
				if v == "FILE" {
					v = path
				}
				e[k] = v
			}
			args := tt.args
			if tt.file {
				args = append([]string{"--config", path}, args...)
			}
			c, _, err := Load("run", args, e.lookup, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, content string
		want          []string
	}{
		{"unknown key", "kafka:\n  group: g\n  brokerz: [a:1]\n",
			[]string{"line 3", "unknown key kafka.brokerz", "valid keys in kafka: brokers, group,"}},
		{"unknown nested key", "juhe:\n  breaker:\n    failurez: 3\n",
			[]string{"line 3", "unknown key juhe.breaker.failurez", "failures, open_for, half_open_requests"}},
		{"unknown section", "kafka:\n  group: g\nlogging:\n  level: debug\n",
			[]string{"line 3", "unknown key logging", "at the top level: kafka, juhe, input"}},
		{"wrong type", "juhe:\n  url: https://x\n  retries: lots\n",
			[]string{"line 3", "juhe.retries", "cannot unmarshal", "int"}},
		{"duration without unit", "kafka:\n  session_timeout: 45\n",
			[]string{"line 2", "kafka.session_timeout", "time.Duration"}},
		{"list item", "kafka:\n  group: g\n  brokers:\n    - a:1\n    - [b, 2]\n",
			[]string{"line 5", "kafka.brokers", "cannot unmarshal"}},
		{"value below its key", "juhe:\n  retries:\n    many\n",
			[]string{"line 3", "juhe.retries", "cannot unmarshal"}},
		{"syntax", "kafka:\n  group: [unclosed\n", []string{"yaml:"}},
		{"two documents", "kafka:\n  group: a\n---\nkafka:\n  group: b\n", []string{"more than one YAML document"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "bad.yaml", tt.content)
			_, _, err := Load("run", []string{"--config", path}, withKey.lookup, io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			mustContain(t, err.Error(), append([]string{path}, tt.want...)...)
		})
	}

	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "absent.yaml")
		_, _, err := Load("run", []string{"--config", path}, withKey.lookup, io.Discard)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("err = %v, want not exist", err)
		}
		mustContain(t, err.Error(), path)
	})
	t.Run("empty file", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, "empty.yaml", "# nothing yet\n")
		if _, _, err := Load("run", []string{"--config", path}, withKey.lookup, io.Discard); err != nil {
			t.Fatal(err)
		}
	})
}

// A file's errors never quote a secret: yaml quotes what it could not
// read, and an unquoted password that starts with * is read as an alias.
func TestFileErrorsKeepSecrets(t *testing.T) {
	t.Parallel()
	const secret = "Hunter2Secret"
	for _, tt := range []struct {
		name, content, want string
	}{
		{"an alias", "kafka:\n  sasl:\n    mechanism: PLAIN\n    username: u\n    password: *" + secret + "\n", "quote it"},
		{"a section's value", "kafka:\n  sasl: " + secret + "\n", "kafka.sasl: cannot unmarshal"},
		{"a secret's value", "juhe:\n  key: [" + secret + "]\n", "juhe.key: cannot unmarshal"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "bad.yaml", tt.content)
			_, _, err := Load("run", []string{"--config", path}, withKey.lookup, io.Discard)
			if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v: want %q, and not the secret", err, tt.want)
			}
		})
	}
}

// A password in juhe.url (a gateway's) is a secret: never echoed by an
// error, nor printed, and masked wherever Secrets is used.
func TestURLPasswordIsSecret(t *testing.T) {
	t.Parallel()
	const secret = "Hunter2Secret"
	_, _, err := Load("run", []string{"--juhe-url", "https://u:" + secret + "@gw.example.com:badport/"}, withKey.lookup, io.Discard)
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "https://xxxxx@gw.example.com:badport/") {
		t.Errorf("a URL that does not parse: %v", err)
	}
	c, _, err := Load("run", []string{"--juhe-url", "https://u:" + secret + "@gw.example.com/"}, withKey.lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.Secrets(), secret) {
		t.Error("the URL's password is not among the secrets to mask")
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), secret) || !strings.Contains(string(out), "https://u:xxxxx@gw.example.com/") {
		t.Errorf("printed:\n%s", out)
	}

	// A user name without a password is a gateway's token: hidden too.
	c, _, err = Load("run", []string{"--juhe-url", "https://" + secret + "@gw.example.com/"}, withKey.lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.Secrets(), secret) {
		t.Error("the URL's user name, alone, is not among the secrets to mask")
	}
	if shown := ShownURL(c.Juhe.URL); shown != "https://xxxxx@gw.example.com/" {
		t.Errorf("shown as %q", shown)
	}
	if out, err = yaml.Marshal(c); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), secret) {
		t.Errorf("printed:\n%s", out)
	}
	_, _, err = Load("run", []string{"--juhe-url", "https://" + secret + "@gw.example.com:badport/"}, withKey.lookup, io.Discard)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("a URL with a user name that does not parse: %v", err)
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	openidFile := filepath.Join(dir, "openid")
	must(t, os.WriteFile(keyFile, []byte("  key-from-file\n"), 0o600))
	must(t, os.WriteFile(openidFile, []byte("openid-from-file\n"), 0o600))
	blank := filepath.Join(dir, "blank")
	must(t, os.WriteFile(blank, []byte(" \n"), 0o600))
	absent := filepath.Join(dir, "absent")
	aes := []string{"--juhe-mode", "aes"}

	tests := []struct {
		name       string
		file       string // YAML, if any
		env        env
		args       []string
		key, oid   string   // wanted, on success
		errs       []string // wanted in the error, else success
		notInError []string
	}{
		{name: "from env", env: env{"TWOSELL_JUHE_KEY": "key-env", "TWOSELL_JUHE_OPENID": "oid-env"}, args: aes,
			key: "key-env", oid: "oid-env"},
		{name: "from env files, trimmed", env: env{"TWOSELL_JUHE_KEY_FILE": keyFile, "TWOSELL_JUHE_OPENID_FILE": openidFile}, args: aes,
			key: "key-from-file", oid: "openid-from-file"},
		{name: "from config file's files", file: "juhe:\n  key_file: " + keyFile + "\n  openid_file: " + openidFile + "\n", args: aes,
			key: "key-from-file", oid: "openid-from-file"},
		{name: "from config file", file: "juhe:\n  key: key-yaml\n", key: "key-yaml"},
		{name: "env over config file", file: "juhe:\n  key: key-yaml\n", env: env{"TWOSELL_JUHE_KEY": "key-env"}, key: "key-env"},
		{name: "key and key_file", file: "juhe:\n  key: key-yaml\n", env: env{"TWOSELL_JUHE_KEY_FILE": keyFile},
			errs:       []string{"juhe.key and juhe.key_file are both set", "TWOSELL_JUHE_KEY", "TWOSELL_JUHE_KEY_FILE"},
			notInError: []string{"key-yaml", "key-from-file"}},
		{name: "openid and openid_file", env: env{"TWOSELL_JUHE_KEY": "k", "TWOSELL_JUHE_OPENID": "oid", "TWOSELL_JUHE_OPENID_FILE": openidFile},
			errs: []string{"juhe.openid and juhe.openid_file are both set"}, notInError: []string{"openid-from-file"}},
		{name: "unreadable", env: env{"TWOSELL_JUHE_KEY_FILE": absent},
			errs: []string{"juhe.key_file", absent, "no such file"}},
		{name: "directory", env: env{"TWOSELL_JUHE_KEY_FILE": dir},
			errs: []string{"juhe.key_file", dir}},
		{name: "blank file", env: env{"TWOSELL_JUHE_KEY_FILE": blank},
			errs: []string{"juhe.key_file", blank, "empty"}},
		{name: "key missing", errs: []string{"juhe.key: must be set, as run calls the provider", "TWOSELL_JUHE_KEY", "TWOSELL_JUHE_KEY_FILE"}},
		{name: "openid missing for aes", env: env{"TWOSELL_JUHE_KEY": "k"}, args: aes,
			errs: []string{"juhe.openid: must be set, as juhe.mode aes", "TWOSELL_JUHE_OPENID_FILE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if tt.file != "" {
				args = append([]string{"--config", writeFile(t, "twosell.yaml", tt.file)}, args...)
			}
			c, _, err := Load("run", args, tt.env.lookup, io.Discard)
			if tt.errs != nil {
				if err == nil {
					t.Fatal("no error")
				}
				mustContain(t, err.Error(), tt.errs...)
				for _, s := range tt.notInError {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error shows the secret %q: %v", s, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Juhe.Key.Reveal() != tt.key || c.Juhe.OpenID.Reveal() != tt.oid {
				t.Errorf("key %q openid %q, want %q %q", c.Juhe.Key.Reveal(), c.Juhe.OpenID.Reveal(), tt.key, tt.oid)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// The file's mistakes are errors that name the key and say what would be
// valid, as the environment's are: a fraction for a whole number (the YAML
// decoder cut 99.5 to 99 without a word), a wrong type (the message named
// Go types), a key set twice (the message hid the key). (Found by review.)
func TestFileMistakesSayWhatIsValid(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"juhe:\n  daily_budget: 99.5\n", "line 2: juhe.daily_budget: 99.5 is not a whole number; expected an integer"},
		{"processing:\n  max_in_flight: 0.5\n", "processing.max_in_flight: 0.5 is not a whole number"},
		{"juhe:\n  timeout: 5\n", "juhe.timeout: cannot unmarshal !!int `5` into time.Duration; expected a Go duration such as"},
		{"cache:\n  short_ttl: 7d\n", "expected a Go duration such as"},
		{"kafka:\n  create_topics: nope\n", "kafka.create_topics: cannot unmarshal !!str `nope` into bool; expected a bool: true or false"},
		// YAML reads 1 as a number: the file's message does not offer it,
		// as the environment's does (a walkthrough).
		{"cache:\n  enabled: 1\n", "cache.enabled: cannot unmarshal !!int `1` into bool; expected a bool: true or false (or yes/no, on/off, y/n)"},
		// Not a mapping at all: no Go type's name (a walkthrough).
		{"- a\n", "line 1: the file holds a list; it should hold the sections of the configuration, each a key at the start of a line (kafka:,"},
		{"hello\n", "line 1: the file holds a single value; it should hold the sections"},
		{"kafka:\n  brokers: 127.0.0.1:9092\n", "kafka.brokers: cannot unmarshal !!str `127.0.0...` into []string; expected a list"},
		{"juhe:\n  retries: 1\n  retries: 3\n", "line 3: juhe.retries is set twice (first at line 2); keep one"},
		// YAML's flow style, several keys on a line: the key is the value's,
		// not the section's (a walkthrough: "juhe: cannot unmarshal !!int
		// `…` into time.Duration", without a hint).
		{"juhe: {timeout: 5}\n", "line 1: juhe.timeout: cannot unmarshal !!int `5` into time.Duration; expected a Go duration such as"},
		{"juhe: {timeout: 5s, retries: abc}\n", "line 1: juhe.retries: cannot unmarshal !!str `abc` into int; expected an integer"},
		{"kafka: {brokers: 127.0.0.1:9092}\n", "line 1: kafka.brokers: cannot unmarshal !!str `127.0.0...` into []string; expected a list"},
		{"cache: {enabled: 1}\n", "line 1: cache.enabled: cannot unmarshal !!int `1` into bool; expected a bool"},
	} {
		path := writeFile(t, "twosell.yaml", tt.file)
		_, _, err := Load("run", []string{"--config", path}, withKey.lookup, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v; want it to say %q", tt.file, err, tt.want)
		}
	}
	// A whole number written as a float is one.
	path := writeFile(t, "twosell.yaml", "juhe:\n  daily_budget: 100.0\n")
	if c, _, err := Load("run", []string{"--config", path}, withKey.lookup, io.Discard); err != nil || c.Juhe.DailyBudget != 100 {
		t.Errorf("daily_budget: 100.0 = %v, %v; want 100", c, err)
	}
}

// A token given as the URL's user with an empty password ("https://TOKEN:@host",
// the curl -u "TOKEN:" convention) is a user name without a password too, but
// ShownURL shows it (only the empty password is replaced) and urlCredential
// returns the empty password, so it is not registered for masking either.
// net/http's errors (url.Error) then print it as "TOKEN:***@host", unmasked.
// (Found by review.)
func TestURLTokenUserWithEmptyPasswordIsHidden(t *testing.T) {
	const secret = "tok3nAsUserName"
	raw := "https://" + secret + ":@gw.example.com/"
	if shown := ShownURL(raw); strings.Contains(shown, secret) {
		t.Errorf("ShownURL(%q) = %q: the token is shown", raw, shown)
	}
	c, _, err := Load("run", []string{"--juhe-url", raw}, withKey.lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.Secrets(), secret) {
		t.Error("the URL's user name, with an empty password, is not among the secrets to mask")
	}
}

// A user name alone in juhe.url is now a secret (Secrets), so the logs mask
// every occurrence of it; a short one ("https://u@gw/", "https://api@gw/")
// garbles every log line: ShortSecrets, which the command warns with,
// reports it as it does short Secret settings. (Found by review.)
func TestShortURLUserNameIsReportedShort(t *testing.T) {
	c, _, err := Load("run", []string{"--juhe-url", "https://api@gw.example.com/"}, withKey.lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.Secrets(), "api") {
		t.Fatal("precondition: the user name is a secret")
	}
	if short := c.ShortSecrets(8); !slices.Contains(short, "juhe.url") {
		t.Errorf("ShortSecrets(8) = %v: the 3-character secret of juhe.url is not reported", short)
	}
}

// ShownURL hides a query and a fragment, where the provider's document
// writes the key (?key=...), whether the URL parses or not; a URL without
// user information, query or fragment is shown as written.
func TestShownURLHidesQueryAndFragment(t *testing.T) {
	for raw, want := range map[string]string{
		"https://apis.juhe.cn/q?key=SECRET1":             "https://apis.juhe.cn/q?xxxxx",
		"https://apis.juhe.cn/q#SECRET1":                 "https://apis.juhe.cn/q#xxxxx",
		"https://u:SECRET1@apis.juhe.cn/q?key=SECRET1":   "https://u:xxxxx@apis.juhe.cn/q?xxxxx",
		"https://apis.juhe.cn/q?key=SECRET1\n":           "https://apis.juhe.cn/q?xxxxx",
		"https://u:SECRET1@apis.juhe.cn:x/q?key=SECRET1": "https://xxxxx@apis.juhe.cn:x/q?xxxxx",
		"https://":             "https://",
		"https://apis.juhe.cn": "https://apis.juhe.cn",
	} {
		if got := ShownURL(raw); got != want {
			t.Errorf("ShownURL(%q) = %q, want %q", raw, got, want)
		}
	}
	if _, _, err := Load("run", []string{"--juhe-url", "https://apis.juhe.cn/q?key=SECRET1"}, withKey.lookup, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "query") || strings.Contains(err.Error(), "SECRET1") {
		t.Errorf("a juhe.url with a query: %v; want an error that says so without the query", err)
	}
}

// Exactly-once, kafka.transaction_timeout must be at least twice the
// longest lookup: a batch is abandoned at half of it, and a record whose
// lookup takes longer never commits (found by review).
func TestTransactionTimeoutCoversALookup(t *testing.T) {
	const txn, eos = "TWOSELL_KAFKA_TRANSACTION_TIMEOUT", "TWOSELL_KAFKA_DELIVERY"
	for _, tt := range []struct {
		env  env
		want string // "" for valid
	}{
		{withKey.with(eos, "exactly-once"), ""}, // 60s against 19s
		{withKey.with(eos, "exactly-once").with(txn, "30s"), "shorter than twice the longest lookup (19s"},
		{withKey.with(eos, "exactly-once").with(txn, "30s").with("TWOSELL_JUHE_TIMEOUT", "3s"), ""}, // 3×3 + 2×2 = 13s
		{withKey.with(txn, "30s"), ""}, // at least once
		// The bound it suggests is accepted (found by review: 38.3s was
		// suggested as 38s, which is refused).
		{withKey.with(eos, "exactly-once").with("TWOSELL_JUHE_TIMEOUT", "5050ms").with(txn, "38s"), "set it to at least 39s"},
		{withKey.with(eos, "exactly-once").with("TWOSELL_JUHE_TIMEOUT", "5050ms").with(txn, "39s"), ""},
	} {
		_, _, err := Load("run", nil, tt.env.lookup, io.Discard)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%v: %v; want %q", tt.env, err, tt.want)
		}
	}
}
