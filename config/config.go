// Package config holds twosell's settings as plain structs, their defaults,
// and the loading and validation of them.
//
// Settings come from four layers, each overriding the one before: the
// defaults of [Default], a YAML file (--config or TWOSELL_CONFIG), the
// environment (TWOSELL_<SECTION>_<KEY>, derived from the YAML keys, so
// juhe.breaker.open_for is TWOSELL_JUHE_BREAKER_OPEN_FOR) and the command
// line flags. [Load] applies them in that order and validates the result.
//
// The provider's key and openid are [Secret] values: printing, logging or
// marshaling a Config shows *** in their place.
package config

import (
	"log/slog"
	"os"
	"time"

	"github.com/twosell/twosell/juhe"
)

// Config is every setting of twosell. Its YAML keys are the reference the
// README documents; testdata/twosell.yaml is a complete, commented example.
type Config struct {
	// Kafka is the connection to the cluster and the topics.
	Kafka Kafka `yaml:"kafka" json:"kafka"`
	// Juhe is the provider's API and the client's resilience settings.
	Juhe Juhe `yaml:"juhe" json:"juhe"`
	// Input says where the fields of an input event are.
	Input Input `yaml:"input" json:"input"`
	// Output says how the enrichment is added to an event.
	Output Output `yaml:"output" json:"output"`
	// Processing tunes commits, shutdown and holding records back.
	Processing Processing `yaml:"processing" json:"processing"`
	// Cache is the knowledge cache: lookups answered from what earlier
	// paid answers prove, without a call.
	Cache Cache `yaml:"cache" json:"cache"`
	// Ledger is the compacted topic of every paid answer, shared by the
	// instances, restarts and replays.
	Ledger Ledger `yaml:"ledger" json:"ledger"`
	// Telemetry names the service in traces and metrics.
	Telemetry Telemetry `yaml:"telemetry" json:"telemetry"`
	// Log configures the structured log on stderr.
	Log Log `yaml:"log" json:"log"`
}

// Kafka is the connection to the cluster and the topics (YAML section kafka).
type Kafka struct {
	// Brokers are the seed brokers, each host:port. Default ["127.0.0.1:9092"].
	Brokers []string `yaml:"brokers" json:"brokers"`
	// Group is the consumer group. Default "twosell".
	Group string `yaml:"group" json:"group"`
	// ClientID is sent to the brokers to name this client in their logs and
	// quotas. Default "twosell".
	ClientID string `yaml:"client_id" json:"client_id"`
	// InputTopic is read. Default "registrations".
	InputTopic string `yaml:"input_topic" json:"input_topic"`
	// OutputTopic receives the enriched events. Default "registrations.enriched".
	OutputTopic string `yaml:"output_topic" json:"output_topic"`
	// DLQTopic receives the dead letters. Default "registrations.dlq".
	DLQTopic string `yaml:"dlq_topic" json:"dlq_topic"`
	// CreateTopics creates missing output, dead-letter and ledger topics at start.
	// Default true.
	CreateTopics bool `yaml:"create_topics" json:"create_topics"`
	// SessionTimeout is how long the group waits for a silent member before
	// it rebalances. Default 45s (Kafka's own default).
	SessionTimeout time.Duration `yaml:"session_timeout" json:"session_timeout"`
	// RebalanceTimeout is how long members have to finish in-flight work and
	// rejoin during a rebalance. Default 60s.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout" json:"rebalance_timeout"`
	// Delivery is the guarantee: at-least-once (outputs acknowledged, then
	// offsets committed; a crash re-delivers the records in flight) or
	// exactly-once (outputs, dead letters and offsets in one Kafka
	// transaction, read_committed; an aborted transaction re-runs its
	// lookups). Default "at-least-once".
	Delivery string `yaml:"delivery" json:"delivery"`
	// TransactionalID names this instance's transactions (exactly-once
	// only): unique per instance and stable across its restarts, so that a
	// restarted instance fences its predecessor's open transaction at once
	// instead of waiting for it to time out. When empty, the group and the
	// host name are used, "<group>-<hostname>" (a StatefulSet's pod names
	// fit). Default "".
	TransactionalID string `yaml:"transactional_id" json:"transactional_id"`
	// TransactionTimeout bounds one transaction (exactly-once only); a batch
	// still waiting for the provider after half of it is aborted and
	// fetched again in smaller batches. Default 60s.
	TransactionTimeout time.Duration `yaml:"transaction_timeout" json:"transaction_timeout"`
	// TLS encrypts the connections to the brokers and verifies them.
	TLS KafkaTLS `yaml:"tls" json:"tls"`
	// SASL authenticates twosell to the brokers.
	SASL KafkaSASL `yaml:"sasl" json:"sasl"`
}

// TransactionalIDOrDefault is TransactionalID, or "<group>-<hostname>":
// unique per host and stable across restarts, so that a restarted instance
// fences its predecessor's open transaction instead of waiting for its
// timeout.
func (k *Kafka) TransactionalIDOrDefault() string {
	if k.TransactionalID != "" {
		return k.TransactionalID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return k.Group + "-" + host
}

// KafkaTLS is TLS on every connection to the brokers (YAML section
// kafka.tls): Kafka's SSL and SASL_SSL security protocols. Every Kafka client
// twosell creates uses it.
type KafkaTLS struct {
	// Enabled turns TLS on. The other keys of the section take effect only
	// with it; setting one without it is an error. Default false.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// CAFile is a PEM file of the certificate authorities that sign the
	// brokers' certificates, trusted instead of the system's roots.
	// Default empty (the system's roots).
	CAFile string `yaml:"ca_file" json:"ca_file"`
	// CertFile is a PEM client certificate (with its chain) for brokers
	// that require mutual TLS; set it together with KeyFile. Default empty.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	// KeyFile is the PEM private key of CertFile. Default empty.
	KeyFile string `yaml:"key_file" json:"key_file"`
	// ServerName is the name the brokers' certificates must carry, instead
	// of the host of each broker's address (a cluster reached through
	// addresses its certificates do not name). Default empty.
	ServerName string `yaml:"server_name" json:"server_name"`
	// InsecureSkipVerify accepts any certificate the brokers present.
	// Discouraged: whoever sits between twosell and the brokers can then
	// read and change the traffic, SASL credentials and personal data
	// included. For a throw-away test cluster only; prefer CAFile.
	// Default false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify"`
}

// KafkaSASL authenticates twosell to the brokers (YAML section kafka.sasl),
// through franz-go's own SASL mechanisms. Every Kafka client twosell creates
// uses it.
type KafkaSASL struct {
	// Mechanism is none, plain, scram-sha-256, scram-sha-512 or oauthbearer;
	// Validate lower-cases it. Use plain only over TLS: it sends the
	// password as it is. Default "none".
	Mechanism string `yaml:"mechanism" json:"mechanism"`
	// Username is the SASL user of plain and the scram mechanisms.
	// Default empty.
	Username string `yaml:"username" json:"username"`
	// Password is Username's password (a secret): prefer
	// TWOSELL_KAFKA_SASL_PASSWORD or PasswordFile to writing it in the
	// config file. Default empty.
	Password Secret `yaml:"password" json:"password"`
	// PasswordFile is a file holding Password (surrounding whitespace
	// trimmed), such as a mounted Kubernetes secret; set Password or
	// PasswordFile, not both. Default empty.
	PasswordFile string `yaml:"password_file" json:"password_file"`
	// TokenFile is a file holding the oauthbearer token (a secret). It is
	// read at start and again whenever its modification time changes, at
	// each authentication, so that an agent can rotate the token in place.
	// Default empty.
	TokenFile string `yaml:"token_file" json:"token_file"`
}

// The values of KafkaSASL.Mechanism.
const (
	SASLNone        = "none"
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
	SASLOAuthBearer = "oauthbearer"
)

// Juhe is the provider's API and the client's resilience settings (YAML
// section juhe).
type Juhe struct {
	// URL is the API's base URL, http or https. Default "https://apis.juhe.cn".
	URL string `yaml:"url" json:"url"`
	// Key is the account's API key; required by run and query. Default empty.
	// Prefer TWOSELL_JUHE_KEY or KeyFile to writing it in the config file.
	Key Secret `yaml:"key" json:"key"`
	// KeyFile is a file holding Key (surrounding whitespace trimmed), such as
	// a mounted Kubernetes secret; set Key or KeyFile, not both. A relative
	// path is relative to the working directory. Default empty.
	KeyFile string `yaml:"key_file" json:"key_file"`
	// OpenID is the account's openid, from which the AES key is derived;
	// required by the AES modes. Default empty.
	OpenID Secret `yaml:"openid" json:"openid"`
	// OpenIDFile is a file holding OpenID (surrounding whitespace trimmed);
	// set OpenID or OpenIDFile, not both. Default empty.
	OpenIDFile string `yaml:"openid_file" json:"openid_file"`
	// Mode is how the mobile number is sent: plain, md5, sha256, aes, md5+aes
	// or sha256+aes (see juhe.Modes). Default "plain".
	Mode juhe.Mode `yaml:"mode" json:"mode"`
	// Method is the HTTP method, GET or POST; Validate upper-cases it.
	// Default "POST", which keeps the key out of proxies' access logs.
	Method string `yaml:"method" json:"method"`
	// Timeout bounds each attempt, not the whole call with its retries.
	// Default 5s.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// Retries is how many times a transient failure is retried after the
	// first attempt; 0 disables retries. Default 2.
	Retries int `yaml:"retries" json:"retries"`
	// Backoff is the first wait before a retry; it doubles up to MaxBackoff.
	// Default 100ms.
	Backoff time.Duration `yaml:"backoff" json:"backoff"`
	// MaxBackoff caps the wait between retries. Default 2s.
	MaxBackoff time.Duration `yaml:"max_backoff" json:"max_backoff"`
	// BadParamFatalAfter is how many "bad parameter" answers in a row, across
	// different records, are taken as a wrong mode or openid and stop the
	// processor instead of dead-lettering the whole topic. Default 20.
	BadParamFatalAfter int `yaml:"bad_param_fatal_after" json:"bad_param_fatal_after"`
	// MaxConns is the size of the HTTP connection pool to the provider
	// (Go's default keeps only 2 idle connections per host, and every call
	// beyond them would open a new one); twosell keeps at least
	// processing.max_in_flight. Default 256.
	MaxConns int `yaml:"max_conns" json:"max_conns"`
	// CAFile is a PEM file of the certificate authorities trusted for the
	// provider's certificate instead of the system's (a gateway or a
	// TLS-inspecting proxy with a private CA). Default empty (the system's
	// roots).
	CAFile string `yaml:"ca_file" json:"ca_file"`
	// AllowInsecure lets URL be plain http to a host that is not loopback.
	// Every request carries the key, so twosell refuses to start with such
	// a URL unless this says the network is trusted. Plain http to
	// localhost or 127.0.0.1 (a simulator, a sidecar) is always allowed.
	// Default false.
	AllowInsecure bool `yaml:"allow_insecure" json:"allow_insecure"`
	// QPS is the request rate to the provider allowed to the whole
	// consumer group; each instance takes its share, QPS divided by the
	// group's current members, re-divided on every rebalance. 0 means
	// unlimited. Default 0.
	QPS float64 `yaml:"qps" json:"qps"`
	// DailyBudget caps the paid calls per calendar day (in
	// BudgetTimeZone), counted in the ledger across every instance,
	// restart and replay. When it is spent, lookups that need a call wait
	// for the next day (processing.on_budget). 0 means unlimited.
	// Default 0.
	DailyBudget int `yaml:"daily_budget" json:"daily_budget"`
	// BudgetTimeZone is the IANA zone of the budget's day: when it
	// renews, and the day a call counts for in the ledger (and its
	// export). Every process that shares a ledger must use the same one,
	// apart from input.time_zone, which reads the events' dates (a replay
	// of a topic whose dates are UTC counts on the live group's day).
	// Default Asia/Shanghai, the provider's.
	BudgetTimeZone string `yaml:"budget_time_zone" json:"budget_time_zone"`
	// budgetLoc is BudgetTimeZone, loaded by Validate.
	budgetLoc *time.Location
	// PricePerCall is the estimated price of one paid call in CNY, for
	// the spend metric and replay's cost estimate (public price lists run
	// about 0.25–0.60). Default 0.4.
	PricePerCall float64 `yaml:"price_per_call" json:"price_per_call"`
	// Breaker is the circuit breaker around the provider.
	Breaker Breaker `yaml:"breaker" json:"breaker"`
}

// Breaker is the circuit breaker around the provider (YAML section
// juhe.breaker). Only provider faults count as failures.
type Breaker struct {
	// Failures is how many provider faults in a row open the breaker.
	// Default 5.
	Failures int `yaml:"failures" json:"failures"`
	// OpenFor is how long the breaker stays open before it lets trial
	// requests through. Default 30s.
	OpenFor time.Duration `yaml:"open_for" json:"open_for"`
	// HalfOpenRequests is how many trial requests a half-open breaker lets
	// through. Default 1.
	HalfOpenRequests int `yaml:"half_open_requests" json:"half_open_requests"`
}

// Input says where the fields of an input event are (YAML section input).
type Input struct {
	// IDField names the event's id, used in logs and dead letters.
	// Default "event_id".
	IDField string `yaml:"id_field" json:"id_field"`
	// MobileField names the mobile number. Default "mobile".
	MobileField string `yaml:"mobile_field" json:"mobile_field"`
	// DateField names the date the number is checked against (RFC 3339,
	// yyyy-mm-dd, yyyymmdd, unix seconds or milliseconds).
	// Default "registered_at".
	DateField string `yaml:"date_field" json:"date_field"`
	// DateSource is where the date comes from: field (DateField), timestamp
	// (the Kafka record's timestamp) or field_or_timestamp (the field, else
	// the timestamp). Default "field".
	DateSource string `yaml:"date_source" json:"date_source"`
	// TimeZone is the IANA zone in which a date becomes a calendar day.
	// Default "Asia/Shanghai", the provider's.
	TimeZone string `yaml:"time_zone" json:"time_zone"`
	// MaxRecordBytes bounds an input record: its key, value and headers
	// together. A larger record is not decoded; it is dead-lettered with
	// class too_large, so that one hostile record cannot exhaust memory.
	// Default 1048576 (1 MiB).
	MaxRecordBytes int `yaml:"max_record_bytes" json:"max_record_bytes"`
	// MaxHeaders bounds the headers of an input record (they are copied to
	// its output); a record with more is dead-lettered with class
	// too_many_headers. Default 64.
	MaxHeaders int `yaml:"max_headers" json:"max_headers"`

	// loc is TimeZone, loaded by Validate.
	loc *time.Location
}

// FetchMaxWaitRange is what processing.fetch_max_wait may be
// (ValidFetchMaxWait): franz-go takes no less than 10ms.
const FetchMaxWaitRange = "10ms to 1m"

// ValidFetchMaxWait reports whether d is in FetchMaxWaitRange.
func ValidFetchMaxWait(d time.Duration) bool { return d >= 10*time.Millisecond && d <= time.Minute }

// The values of Processing.Ordering.
const (
	OrderingKey       = "key"
	OrderingPartition = "partition"
	OrderingNone      = "none"
)

// The values of Kafka.Delivery.
const (
	DeliveryAtLeastOnce = "at-least-once"
	DeliveryExactlyOnce = "exactly-once"
)

// The values of Input.DateSource.
const (
	DateSourceField            = "field"
	DateSourceTimestamp        = "timestamp"
	DateSourceFieldOrTimestamp = "field_or_timestamp"
)

// Output says how the enrichment is added to an event (YAML section output).
type Output struct {
	// Field is the name of the object added to each event. Default "twosell".
	Field string `yaml:"field" json:"field"`
}

// Processing tunes commits, shutdown and holding records back (YAML section
// processing).
type Processing struct {
	// OnUnavailable is what happens to a record while the provider is
	// unavailable (breaker open, quota, fatal): pause holds it back and
	// pauses fetching; emit writes it with status unavailable so real-time
	// consumers are never blocked. Default "pause".
	OnUnavailable string `yaml:"on_unavailable" json:"on_unavailable"`
	// OnBudget is what happens to a record that needs a paid call once
	// juhe.daily_budget is spent: pause holds it back and pauses fetching
	// until the budget renews at midnight; emit writes it with status
	// skipped. Lookups the knowledge cache answers go on either way.
	// Default "pause".
	OnBudget string `yaml:"on_budget" json:"on_budget"`
	// SkipOlderThan is a real-time deadline: an event whose date (its
	// instant, or midnight of a date given as a day) is older than this,
	// and that would need a paid call, is written with status skipped
	// instead. 0 turns it off; replay ignores it. Default 0s.
	SkipOlderThan time.Duration `yaml:"skip_older_than" json:"skip_older_than"`
	// CommitInterval is how often finished offsets are committed.
	// Default 1s.
	CommitInterval time.Duration `yaml:"commit_interval" json:"commit_interval"`
	// ShutdownTimeout bounds finishing in-flight work, committing and
	// flushing at shutdown. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" json:"shutdown_timeout"`
	// RetryBackoff is the first wait before retrying a held-back record; it
	// doubles up to MaxRetryBackoff. Default 500ms.
	RetryBackoff time.Duration `yaml:"retry_backoff" json:"retry_backoff"`
	// MaxRetryBackoff caps the wait before retrying a held-back record.
	// Default 30s.
	MaxRetryBackoff time.Duration `yaml:"max_retry_backoff" json:"max_retry_backoff"`
	// MaxBufferedRecords is how many records a partition may hold before its
	// fetching pauses, so a slow provider becomes backpressure rather than
	// memory growth. Default 1000.
	MaxBufferedRecords int `yaml:"max_buffered_records" json:"max_buffered_records"`
	// MaxBufferedBytes is how many bytes of received records a partition may
	// hold before its fetching pauses. Default 8388608 (8 MiB).
	MaxBufferedBytes int `yaml:"max_buffered_bytes" json:"max_buffered_bytes"`
	// FetchMaxPartitionBytes is how much one fetch asks of a partition
	// (compressed). Kept near what a buffer takes between a pause and the
	// resume, since a paused partition's prefetched data is dropped and
	// fetched again; raise it when the brokers are far away (a partition
	// gets about this much per round trip). Default 32768 (32 KiB).
	FetchMaxPartitionBytes int `yaml:"fetch_max_partition_bytes" json:"fetch_max_partition_bytes"`
	// FetchMaxWait is how long a broker may hold a fetch that finds no new
	// records. A partition resumed after a pause is fetched only once the
	// fetch in flight to its broker returns: when every other partition
	// is caught up, it waits up to this long. A consumer with nothing to
	// read sends a fetch this often to each broker. At least 10ms (the
	// least franz-go takes), at most 1m. Default 50ms.
	FetchMaxWait time.Duration `yaml:"fetch_max_wait" json:"fetch_max_wait"`
	// MaxInFlight is how many records are processed at once across all
	// partitions: lookups overlap, since the provider's latency, not the
	// CPU, bounds throughput (about max_in_flight / latency). The pool of
	// connections to the provider keeps at least as many (juhe.max_conns).
	// Default 256.
	MaxInFlight int `yaml:"max_in_flight" json:"max_in_flight"`
	// MaxInFlightBytes caps the bytes of the records being processed.
	// Default 67108864 (64 MiB).
	MaxInFlightBytes int `yaml:"max_in_flight_bytes" json:"max_in_flight_bytes"`
	// Ordering is the order outputs keep: key (records with the same key are
	// processed and produced in input order; other keys overtake), partition
	// (outputs in input order per partition; lookups still overlap) or none.
	// Default "key".
	Ordering string `yaml:"ordering" json:"ordering"`
}

// Cache is the knowledge cache (YAML section cache): an answer for a mobile
// at one date answers other dates too (res 1 at D: every date up to D,
// forever; res 2 at D: every date from D on, for not_recycled_ttl; res 3 and
// no record: any date, for short_ttl), so such lookups need no paid call.
type Cache struct {
	// Enabled answers lookups from knowledge and lets concurrent lookups
	// of one mobile share a call; false makes every lookup a paid call.
	// Default true.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Secret keys the hash (HMAC-SHA256) by which the cache and the ledger
	// know mobile numbers, which they never hold (a secret). Every
	// instance and replay sharing a ledger needs the same one. When empty,
	// it is derived from juhe.key (an HMAC of a fixed label under the key),
	// which the instances share anyway; set it to keep the ledger's
	// knowledge across a change of key. Default empty.
	Secret Secret `yaml:"secret" json:"secret"`
	// SecretFile is a file holding Secret (surrounding whitespace
	// trimmed); set Secret or SecretFile, not both. Default empty.
	SecretFile string `yaml:"secret_file" json:"secret_file"`
	// MaxEntries bounds the mobiles kept in memory (least recently used
	// first out), about 400 bytes each. Default 1000000.
	MaxEntries int `yaml:"max_entries" json:"max_entries"`
	// NotRecycledTTL is how long a res 2 answer (not re-issued on or
	// before D) answers later dates: the number may be re-issued after it.
	// Default 168h (7 days).
	NotRecycledTTL time.Duration `yaml:"not_recycled_ttl" json:"not_recycled_ttl"`
	// ShortTTL is how long a res 3 (no activation date) or no-record
	// answer answers the same mobile. Default 1h.
	ShortTTL time.Duration `yaml:"short_ttl" json:"short_ttl"`
}

// Ledger is the compacted topic of paid answers (YAML section ledger).
type Ledger struct {
	// Enabled writes every paid answer to the ledger topic, loads it at
	// start (before consuming) and follows it while running, so that
	// restarts, other instances and replays do not pay again, and the
	// daily budget counts every instance. Default true.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Topic is the ledger topic, created compacted
	// (cleanup.policy=compact) when missing and kafka.create_topics allows
	// it. Default "twosell.ledger".
	Topic string `yaml:"topic" json:"topic"`
}

// The values of Processing.OnBudget.
const (
	OnBudgetPause = "pause"
	OnBudgetEmit  = "emit"
)

// The values of Processing.OnUnavailable.
const (
	OnUnavailablePause = "pause"
	OnUnavailableEmit  = "emit"
)

// Telemetry names the service in traces and metrics (YAML section
// telemetry). OTLP export itself is configured by the standard OTEL_*
// variables, which this package does not read.
type Telemetry struct {
	// ServiceName is the service.name resource attribute. Default "twosell".
	ServiceName string `yaml:"service_name" json:"service_name"`
	// MetricsAddr is the listen address, host:port or :port, of the HTTP
	// server for Prometheus metrics (/metrics), liveness (/healthz) and
	// readiness (/readyz); empty disables it. Default ":9464".
	MetricsAddr string `yaml:"metrics_addr" json:"metrics_addr"`
}

// Log configures the structured log on stderr (YAML section log).
type Log struct {
	// Level is the lowest level logged: debug, info, warn or error;
	// Validate lower-cases it. Default "info".
	Level string `yaml:"level" json:"level"`
	// Format is json, text, or auto (json unless stderr is a terminal);
	// Validate lower-cases it. Default "auto".
	Format string `yaml:"format" json:"format"`
}

// SlogLevel returns Level as a slog.Level; a level Validate would reject is
// slog.LevelInfo.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// The values of Log.Format.
const (
	LogFormatAuto = "auto"
	LogFormatJSON = "json"
	LogFormatText = "text"
)

// Default returns the built-in defaults. Its slices are fresh on each call,
// so a caller may change them.
func Default() Config {
	return Config{
		Kafka: Kafka{
			Brokers:            []string{"127.0.0.1:9092"},
			Group:              "twosell",
			ClientID:           "twosell",
			InputTopic:         "registrations",
			OutputTopic:        "registrations.enriched",
			DLQTopic:           "registrations.dlq",
			CreateTopics:       true,
			SessionTimeout:     45 * time.Second,
			RebalanceTimeout:   60 * time.Second,
			Delivery:           DeliveryAtLeastOnce,
			TransactionTimeout: 60 * time.Second,
			SASL:               KafkaSASL{Mechanism: SASLNone},
		},
		Juhe: Juhe{
			URL:                "https://apis.juhe.cn",
			Mode:               juhe.ModePlain,
			Method:             "POST",
			Timeout:            5 * time.Second,
			Retries:            2,
			Backoff:            100 * time.Millisecond,
			MaxBackoff:         2 * time.Second,
			BadParamFatalAfter: 20,
			BudgetTimeZone:     "Asia/Shanghai",
			MaxConns:           256,
			PricePerCall:       0.4,
			Breaker: Breaker{
				Failures:         5,
				OpenFor:          30 * time.Second,
				HalfOpenRequests: 1,
			},
		},
		Input: Input{
			IDField:        "event_id",
			MobileField:    "mobile",
			DateField:      "registered_at",
			DateSource:     DateSourceField,
			TimeZone:       "Asia/Shanghai",
			MaxRecordBytes: 1 << 20,
			MaxHeaders:     64,
		},
		Output: Output{Field: "twosell"},
		Processing: Processing{
			OnUnavailable:          OnUnavailablePause,
			OnBudget:               OnBudgetPause,
			CommitInterval:         time.Second,
			ShutdownTimeout:        30 * time.Second,
			RetryBackoff:           500 * time.Millisecond,
			MaxRetryBackoff:        30 * time.Second,
			MaxBufferedRecords:     1000,
			MaxBufferedBytes:       8 << 20,
			FetchMaxPartitionBytes: 32 << 10,
			FetchMaxWait:           50 * time.Millisecond,
			MaxInFlight:            256,
			MaxInFlightBytes:       64 << 20,
			Ordering:               OrderingKey,
		},
		Cache: Cache{
			Enabled:        true,
			MaxEntries:     1_000_000,
			NotRecycledTTL: 168 * time.Hour,
			ShortTTL:       time.Hour,
		},
		Ledger:    Ledger{Enabled: true, Topic: "twosell.ledger"},
		Telemetry: Telemetry{ServiceName: "twosell", MetricsAddr: ":9464"},
		Log:       Log{Level: "info", Format: LogFormatAuto},
	}
}

// BudgetLocation returns BudgetTimeZone as loaded by Validate. Before a
// successful Validate it loads BudgetTimeZone itself, and returns nil if
// that fails.
func (j *Juhe) BudgetLocation() *time.Location {
	if j.budgetLoc != nil {
		return j.budgetLoc
	}
	loc, err := time.LoadLocation(j.BudgetTimeZone)
	if err != nil {
		return nil
	}
	return loc
}

// Location returns TimeZone as loaded by Validate. Before a successful
// Validate it loads TimeZone itself, and returns nil if that fails.
func (in *Input) Location() *time.Location {
	if in.loc != nil {
		return in.loc
	}
	loc, err := time.LoadLocation(in.TimeZone)
	if err != nil {
		return nil
	}
	return loc
}
