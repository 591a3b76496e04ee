package config

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidateMessages(t *testing.T) {
	t.Parallel()
	const modes = "valid: plain, md5, sha256, aes, md5+aes, sha256+aes"
	tests := []struct {
		name   string
		cmd    string // "run" if empty
		mutate func(c *Config)
		want   []string // in the single problem reported
	}{
		{"brokers empty", "", func(c *Config) { c.Kafka.Brokers = nil },
			[]string{"kafka.brokers: must list at least one broker", "host:port", "TWOSELL_KAFKA_BROKERS or --brokers"}},
		{"broker without port", "", func(c *Config) { c.Kafka.Brokers = []string{"a:1", "kafka-1"} },
			[]string{`kafka.brokers: "kafka-1" is not valid; valid: host:port`, "--brokers"}},
		{"broker bad port", "", func(c *Config) { c.Kafka.Brokers = []string{"kafka-1:99999"} },
			[]string{`kafka.brokers: "kafka-1:99999" is not valid`}},
		{"broker without host", "", func(c *Config) { c.Kafka.Brokers = []string{":9092"} },
			[]string{`kafka.brokers: ":9092" is not valid`}},
		{"group", "", func(c *Config) { c.Kafka.Group = "" },
			[]string{"kafka.group: must not be empty", "TWOSELL_KAFKA_GROUP or --group"}},
		{"input topic chars", "", func(c *Config) { c.Kafka.InputTopic = "regs/2024" },
			[]string{`kafka.input_topic: "regs/2024" is not a valid topic name; valid: 1 to 249 of a-z, A-Z, 0-9, '.', '_' and '-'`, "--input-topic"}},
		{"output topic dot", "", func(c *Config) { c.Kafka.OutputTopic = ".." },
			[]string{`kafka.output_topic: ".." is not a valid topic name`, `other than "." and ".."`, "--output-topic"}},
		{"dlq topic long", "", func(c *Config) { c.Kafka.DLQTopic = strings.Repeat("d", 250) },
			[]string{"kafka.dlq_topic:", "is not a valid topic name", "TWOSELL_KAFKA_DLQ_TOPIC or --dlq-topic"}},
		{"dlq topic empty", "", func(c *Config) { c.Kafka.DLQTopic = "" },
			[]string{`kafka.dlq_topic: "" is not a valid topic name`}},
		{"output is input", "", func(c *Config) { c.Kafka.OutputTopic = c.Kafka.InputTopic },
			[]string{`kafka.output_topic: "registrations" is also kafka.input_topic; the input, output and dead-letter topics must differ`}},
		{"dlq is output", "", func(c *Config) { c.Kafka.DLQTopic = c.Kafka.OutputTopic },
			[]string{"kafka.dlq_topic:", "is also kafka.output_topic"}},
		{"session timeout", "", func(c *Config) { c.Kafka.SessionTimeout = 0 },
			[]string{"kafka.session_timeout: 0s is not valid; valid: a duration greater than 0, such as 45s", "TWOSELL_KAFKA_SESSION_TIMEOUT)"}},
		{"rebalance timeout", "", func(c *Config) { c.Kafka.RebalanceTimeout = -time.Second },
			[]string{"kafka.rebalance_timeout: -1s is not valid"}},
		{"url scheme", "", func(c *Config) { c.Juhe.URL = "ftp://apis.juhe.cn" },
			[]string{`juhe.url: "ftp://apis.juhe.cn" is not valid; valid: an http or https URL with a host`, "TWOSELL_JUHE_URL or --juhe-url"}},
		{"url host", "", func(c *Config) { c.Juhe.URL = "https://" },
			[]string{`juhe.url: "https://" is not valid`}},
		{"url unparsable", "", func(c *Config) { c.Juhe.URL = "http://[::1" },
			[]string{`juhe.url: "http://[::1" is not valid`}},
		{"url password redacted", "", func(c *Config) { c.Juhe.URL = "ftp://u:pw@host" },
			[]string{`juhe.url: "ftp://u:xxxxx@host"`}},
		{"key run", "", func(c *Config) { c.Juhe.Key = "" },
			[]string{"juhe.key: must be set, as run calls the provider", "TWOSELL_JUHE_KEY or TWOSELL_JUHE_KEY_FILE", "juhe.key_file in the config file"}},
		{"key query", "query", func(c *Config) { c.Juhe.Key = "" },
			[]string{"juhe.key: must be set, as query calls the provider"}},
		{"mode", "", func(c *Config) { c.Juhe.Mode = "aes2" },
			[]string{`juhe.mode: "aes2" is not valid; ` + modes + ` (set in the config file, TWOSELL_JUHE_MODE or --juhe-mode)`}},
		{"openid", "", func(c *Config) { c.Juhe.Mode = "sha256+aes" },
			[]string{"juhe.openid: must be set, as juhe.mode sha256+aes derives its AES key", "TWOSELL_JUHE_OPENID or TWOSELL_JUHE_OPENID_FILE"}},
		{"method", "", func(c *Config) { c.Juhe.Method = "put" },
			[]string{`juhe.method: "put" is not valid; valid: GET, POST (set in the config file, TWOSELL_JUHE_METHOD or --juhe-method)`}},
		{"timeout", "query", func(c *Config) { c.Juhe.Timeout = 0 },
			[]string{"juhe.timeout: 0s is not valid; valid: a duration greater than 0, such as 5s", "--juhe-timeout"}},
		{"retries", "", func(c *Config) { c.Juhe.Retries = -1 },
			[]string{"juhe.retries: -1 is not valid; valid: 0 or more (set in the config file or TWOSELL_JUHE_RETRIES)"}},
		{"backoff", "", func(c *Config) { c.Juhe.Backoff = 0 },
			[]string{"juhe.backoff: 0s is not valid", "such as 100ms", "TWOSELL_JUHE_BACKOFF"}},
		{"max backoff", "", func(c *Config) { c.Juhe.MaxBackoff = 0 },
			[]string{"juhe.max_backoff: 0s is not valid", "TWOSELL_JUHE_MAX_BACKOFF"}},
		{"max backoff below backoff", "", func(c *Config) { c.Juhe.MaxBackoff = 50 * time.Millisecond },
			[]string{"juhe.max_backoff: 50ms is less than juhe.backoff (100ms); valid: at least juhe.backoff"}},
		{"bad param fatal after", "", func(c *Config) { c.Juhe.BadParamFatalAfter = 0 },
			[]string{"juhe.bad_param_fatal_after: 0 is not valid; valid: 1 or more", "TWOSELL_JUHE_BAD_PARAM_FATAL_AFTER"}},
		{"max conns", "", func(c *Config) { c.Juhe.MaxConns = 0 },
			[]string{"juhe.max_conns: 0 is not valid; valid: 1 or more", "TWOSELL_JUHE_MAX_CONNS"}},
		{"breaker failures", "", func(c *Config) { c.Juhe.Breaker.Failures = 0 },
			[]string{"juhe.breaker.failures: 0 is not valid; valid: 1 or more", "TWOSELL_JUHE_BREAKER_FAILURES"}},
		{"breaker open for", "", func(c *Config) { c.Juhe.Breaker.OpenFor = 0 },
			[]string{"juhe.breaker.open_for: 0s is not valid", "such as 30s", "TWOSELL_JUHE_BREAKER_OPEN_FOR"}},
		{"breaker half open", "", func(c *Config) { c.Juhe.Breaker.HalfOpenRequests = 0 },
			[]string{"juhe.breaker.half_open_requests: 0 is not valid; valid: 1 or more"}},
		{"id field", "", func(c *Config) { c.Input.IDField = "" },
			[]string{"input.id_field: must not be empty", "TWOSELL_INPUT_ID_FIELD"}},
		{"mobile field", "", func(c *Config) { c.Input.MobileField = " " },
			[]string{"input.mobile_field: must not be empty"}},
		{"date field", "", func(c *Config) { c.Input.DateField = "" },
			[]string{"input.date_field: must not be empty"}},
		{"date source", "", func(c *Config) { c.Input.DateSource = "header" },
			[]string{`input.date_source: "header" is not valid; valid: field, timestamp, field_or_timestamp`, "TWOSELL_INPUT_DATE_SOURCE"}},
		{"time zone", "", func(c *Config) { c.Input.TimeZone = "Mars/Olympus" },
			[]string{`input.time_zone: "Mars/Olympus" is not valid; valid: an IANA time zone name`, "TWOSELL_INPUT_TIME_ZONE"}},
		{"time zone empty", "", func(c *Config) { c.Input.TimeZone = "" },
			[]string{"input.time_zone: must not be empty"}},
		{"output field", "", func(c *Config) { c.Output.Field = "" },
			[]string{"output.field: must not be empty", "TWOSELL_OUTPUT_FIELD"}},
		{"on unavailable", "", func(c *Config) { c.Processing.OnUnavailable = "drop" },
			[]string{`processing.on_unavailable: "drop" is not valid; valid: pause, emit (set in the config file, TWOSELL_PROCESSING_ON_UNAVAILABLE or --on-unavailable)`}},
		{"commit interval", "", func(c *Config) { c.Processing.CommitInterval = 0 },
			[]string{"processing.commit_interval: 0s is not valid", "such as 1s"}},
		{"shutdown timeout", "", func(c *Config) { c.Processing.ShutdownTimeout = 0 },
			[]string{"processing.shutdown_timeout: 0s is not valid"}},
		{"retry backoff", "", func(c *Config) { c.Processing.RetryBackoff = 0 },
			[]string{"processing.retry_backoff: 0s is not valid"}},
		{"max retry backoff", "", func(c *Config) { c.Processing.MaxRetryBackoff = 0 },
			[]string{"processing.max_retry_backoff: 0s is not valid"}},
		{"max retry below retry", "", func(c *Config) { c.Processing.MaxRetryBackoff = time.Millisecond },
			[]string{"processing.max_retry_backoff: 1ms is less than processing.retry_backoff (500ms)"}},
		{"max buffered", "", func(c *Config) { c.Processing.MaxBufferedRecords = 0 },
			[]string{"processing.max_buffered_records: 0 is not valid; valid: 1 or more"}},
		{"fetch wait below franz-go's least", "", func(c *Config) { c.Processing.FetchMaxWait = 5 * time.Millisecond },
			[]string{"processing.fetch_max_wait: 5ms is not valid; valid: 10ms to 1m", "TWOSELL_PROCESSING_FETCH_MAX_WAIT)"}},
		{"fetch wait long", "", func(c *Config) { c.Processing.FetchMaxWait = 2 * time.Minute },
			[]string{"processing.fetch_max_wait: 2m0s is not valid; valid: 10ms to 1m"}},
		{"service name", "", func(c *Config) { c.Telemetry.ServiceName = "" },
			[]string{"telemetry.service_name: must not be empty", "TWOSELL_TELEMETRY_SERVICE_NAME"}},
		{"metrics addr", "", func(c *Config) { c.Telemetry.MetricsAddr = "9464" },
			[]string{`telemetry.metrics_addr: "9464" is not valid; valid: host:port or :port`, "--metrics-addr"}},
		{"log level", "", func(c *Config) { c.Log.Level = "verbose" },
			[]string{`log.level: "verbose" is not valid; valid: debug, info, warn, error (set in the config file, TWOSELL_LOG_LEVEL or --log-level)`}},
		{"log format", "query", func(c *Config) { c.Log.Format = "xml" },
			[]string{`log.format: "xml" is not valid; valid: auto, json, text`, "--log-format"}},
		{"run-only flag not offered to query", "query", func(c *Config) { c.Log.Format = "xml"; c.Kafka.Group = "" },
			[]string{"kafka.group: must not be empty (set in the config file or TWOSELL_KAFKA_GROUP)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := tt.cmd
			if cmd == "" {
				cmd = "run"
			}
			c := Default()
			c.Juhe.Key = "k"
			tt.mutate(&c)
			problems := errLines(c.Validate(cmd))
			var hit []string
			for _, p := range problems {
				if strings.HasPrefix(p, strings.SplitN(tt.want[0], ":", 2)[0]+":") {
					hit = append(hit, p)
				}
			}
			if len(hit) != 1 {
				t.Fatalf("want one problem with %s, got %q", strings.SplitN(tt.want[0], ":", 2)[0], problems)
			}
			mustContain(t, hit[0], tt.want...)
		})
	}
}

func TestValidateCollectsAll(t *testing.T) {
	t.Parallel()
	c := Config{} // every setting missing
	problems := errLines(c.Validate("run"))
	for _, key := range []string{"kafka.brokers", "kafka.group", "juhe.url", "juhe.key", "juhe.mode", "juhe.method",
		"input.time_zone", "processing.on_unavailable", "log.level", "log.format", "juhe.breaker.failures"} {
		found := false
		for _, p := range problems {
			found = found || strings.HasPrefix(p, key+":")
		}
		if !found {
			t.Errorf("no problem reported for %s in %q", key, problems)
		}
	}
	if len(problems) < 25 {
		t.Errorf("only %d problems reported for an empty Config", len(problems))
	}
}

func TestValidateNormalizes(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Juhe.Key = "k"
	c.Juhe.OpenID = "o"
	c.Juhe.Mode = "MD5+AES"
	c.Juhe.Method = "get"
	c.Input.DateSource = "Field_Or_Timestamp"
	c.Input.TimeZone = "UTC"
	c.Processing.OnUnavailable = "EMIT"
	c.Log.Level = "Debug"
	c.Log.Format = "JSON"
	if err := c.Validate("run"); err != nil {
		t.Fatal(err)
	}
	got := []string{string(c.Juhe.Mode), c.Juhe.Method, c.Input.DateSource, c.Processing.OnUnavailable, c.Log.Level, c.Log.Format, c.Input.Location().String()}
	want := []string{"md5+aes", "GET", "field_or_timestamp", "emit", "debug", "json", "UTC"}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("got %q, want %q", got, want)
			break
		}
	}
}

// Commands that do not call the provider do not need its key, and a date
// field is not needed when the date comes from the record's timestamp.
func TestValidateOptional(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cmd    string
		mutate func(*Config)
	}{
		{"sim needs no key", "sim", func(c *Config) { c.Juhe.Key = ""; c.Juhe.Mode = "aes" }},
		{"timestamp needs no date field", "run", func(c *Config) { c.Input.DateSource = "timestamp"; c.Input.DateField = "" }},
		{"no retries", "run", func(c *Config) { c.Juhe.Retries = 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			c.Juhe.Key = "k"
			tt.mutate(&c)
			if err := c.Validate(tt.cmd); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLocationBeforeValidate(t *testing.T) {
	t.Parallel()
	in := Input{TimeZone: "Asia/Shanghai"}
	if loc := in.Location(); loc == nil || loc.String() != "Asia/Shanghai" {
		t.Errorf("Location = %v", loc)
	}
	if loc := (&Input{TimeZone: "Nowhere/Land"}).Location(); loc != nil {
		t.Errorf("Location of a bad zone = %v, want nil", loc)
	}
}

func TestValidateCostControls(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"max entries", func(c *Config) { c.Cache.MaxEntries = 0 }, []string{"cache.max_entries: 0 is not valid; valid: 1 or more"}},
		{"ttl", func(c *Config) { c.Cache.ShortTTL = 0 }, []string{"cache.short_ttl: 0s is not valid", "TWOSELL_CACHE_SHORT_TTL"}},
		{"ledger topic name", func(c *Config) { c.Ledger.Topic = "a b" }, []string{`ledger.topic: "a b" is not a valid topic name`}},
		{"ledger topic is the output", func(c *Config) { c.Ledger.Topic = c.Kafka.OutputTopic },
			[]string{`ledger.topic: "registrations.enriched" is also kafka.output_topic`}},
		{"qps", func(c *Config) { c.Juhe.QPS = -1 }, []string{"juhe.qps: -1 is not valid"}},
		{"budget", func(c *Config) { c.Juhe.DailyBudget = -5 }, []string{"juhe.daily_budget: -5 is not valid; valid: 0 or more"}},
		{"price", func(c *Config) { c.Juhe.PricePerCall = -0.1 }, []string{"juhe.price_per_call: -0.1 is not valid"}},
		{"qps not a number", func(c *Config) { c.Juhe.QPS = math.NaN() }, []string{"juhe.qps: NaN is not valid"}},
		{"qps infinite", func(c *Config) { c.Juhe.QPS = math.Inf(1) }, []string{"juhe.qps: +Inf is not valid"}},
		{"price not a number", func(c *Config) { c.Juhe.PricePerCall = math.NaN() }, []string{"juhe.price_per_call: NaN is not valid"}},
		{"budget without the ledger", func(c *Config) { c.Juhe.DailyBudget, c.Ledger.Enabled = 100, false },
			[]string{"juhe.daily_budget: 100 needs the ledger (ledger.enabled: true)"}},
		{"on budget", func(c *Config) { c.Processing.OnBudget = "drop" },
			[]string{`processing.on_budget: "drop" is not valid; valid: pause, emit`, "--on-budget"}},
		{"skip older than", func(c *Config) { c.Processing.SkipOlderThan = -time.Second }, []string{"processing.skip_older_than: -1s is not valid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Juhe.Key = "k"
			tt.change(&c)
			err := c.Validate("run")
			if err == nil {
				t.Fatal("no error")
			}
			mustContain(t, err.Error(), tt.want...)
		})
	}
	t.Run("a disabled ledger's topic is not checked", func(t *testing.T) {
		c := Default()
		c.Juhe.Key = "k"
		c.Ledger.Enabled, c.Ledger.Topic = false, ""
		if err := c.Validate("run"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("on_budget is normalized", func(t *testing.T) {
		c := Default()
		c.Juhe.Key = "k"
		c.Processing.OnBudget = "EMIT"
		if err := c.Validate("run"); err != nil || c.Processing.OnBudget != OnBudgetEmit {
			t.Fatalf("on_budget %q, err %v", c.Processing.OnBudget, err)
		}
	})
}

// The cache secret is cache.secret, or derived from the key: stable, the
// same for every instance with the key, and not the key.
func TestCacheSecret(t *testing.T) {
	t.Parallel()
	c := Default()
	if got := c.CacheSecret(); got != "" {
		t.Fatalf("no key, no secret: got %q", got)
	}
	c.Juhe.Key = "key-1"
	a := c.CacheSecret()
	if a == "" || strings.Contains(a, "key-1") || a != c.CacheSecret() {
		t.Fatalf("derived secret %q", a)
	}
	c.Juhe.Key = "key-2"
	if c.CacheSecret() == a {
		t.Fatal("another key derives the same secret")
	}
	c.Cache.Secret = "mine"
	if got := c.CacheSecret(); got != "mine" {
		t.Fatalf("cache.secret set: got %q", got)
	}
}

func TestNumberSettings(t *testing.T) {
	t.Parallel()
	c := Default()
	if err := applyEnv(&c, env{"TWOSELL_JUHE_QPS": "12.5", "TWOSELL_JUHE_PRICE_PER_CALL": " 0.25 "}.lookup); err != nil {
		t.Fatal(err)
	}
	if c.Juhe.QPS != 12.5 || c.Juhe.PricePerCall != 0.25 {
		t.Fatalf("qps %v price %v", c.Juhe.QPS, c.Juhe.PricePerCall)
	}
	for _, bad := range []string{"fast", "NaN", "Inf"} {
		err := applyEnv(&c, env{"TWOSELL_JUHE_QPS": bad}.lookup)
		if err == nil || !strings.Contains(err.Error(), "expected a number") {
			t.Errorf("TWOSELL_JUHE_QPS=%s: %v", bad, err)
		}
	}
}

// --print-config's output, used as a config file, carries "***" for each
// secret: refused, naming where to set the secret, rather than sent to the
// provider as the key. (Suggested by review.)
func TestMaskedSecretRefused(t *testing.T) {
	c := Default()
	c.Juhe.Key = "***"
	c.Kafka.SASL.Mechanism, c.Kafka.SASL.Username, c.Kafka.SASL.Password = SASLScramSHA512, "twosell", "***"
	err := c.Validate("run")
	for _, want := range []string{`juhe.key: is "***", the mask --print-config prints`, `kafka.sasl.password: is "***"`, "TWOSELL_JUHE_KEY"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v; want it to say %q", err, want)
		}
	}
}
