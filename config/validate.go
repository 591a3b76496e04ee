package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	// Embedded zone data, so that input.time_zone loads on hosts and
	// distroless images without /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/twosell/twosell/juhe"
)

// Commands that call the provider, and so need its key.
var callsProvider = []string{"run", "query", "replay"}

// The accepted values of the enumerated settings, in the order messages list
// them.
var (
	validDelivery      = []string{DeliveryAtLeastOnce, DeliveryExactlyOnce}
	validOrderings     = []string{OrderingKey, OrderingPartition, OrderingNone}
	validSASL          = []string{SASLNone, SASLPlain, SASLScramSHA256, SASLScramSHA512, SASLOAuthBearer}
	validMethods       = []string{"GET", "POST"}
	validDateSources   = []string{DateSourceField, DateSourceTimestamp, DateSourceFieldOrTimestamp}
	validOnUnavailable = []string{OnUnavailablePause, OnUnavailableEmit}
	validLogLevels     = []string{"debug", "info", "warn", "error"}
	validLogFormats    = []string{LogFormatAuto, LogFormatJSON, LogFormatText}
)

// choice is an enumerated setting's accepted values, and how a value is
// read before it is compared with them (case does not matter).
type choice struct {
	valid     []string
	normalize func(string) string
}

// choices are the enumerated settings. A flag that sets one refuses any
// other value as it is parsed: a usage error (exit 2), as a value of the
// wrong type is, not a configuration error found later (found by review:
// query --juhe-mode foo exited 1, query --juhe-timeout 5 exited 2).
// Validate checks them all the same, wherever they were set.
var choices = map[string]choice{
	"kafka.delivery":            {validDelivery, strings.ToLower},
	"kafka.sasl.mechanism":      {validSASL, strings.ToLower},
	"juhe.mode":                 {modeNames(), strings.ToLower},
	"juhe.method":               {validMethods, strings.ToUpper},
	"input.date_source":         {validDateSources, strings.ToLower},
	"processing.on_unavailable": {validOnUnavailable, strings.ToLower},
	"processing.on_budget":      {validOnBudget, strings.ToLower},
	"processing.ordering":       {validOrderings, strings.ToLower},
	"log.level":                 {validLogLevels, strings.ToLower},
	"log.format":                {validLogFormats, strings.ToLower},
}

// modeNames are juhe.Modes as written.
func modeNames() []string {
	names := make([]string, len(juhe.Modes))
	for i, m := range juhe.Modes {
		names[i] = string(m)
	}
	return names
}

// check returns why s is not one of ch's values, or nil.
func (ch choice) check(s string) error {
	if slices.Contains(ch.valid, ch.normalize(s)) {
		return nil
	}
	return fmt.Errorf("%q is not valid; valid: %s", s, strings.Join(ch.valid, ", "))
}

// Kafka's rules for topic names.
const (
	maxTopicNameLength  = 249
	topicNameCharacters = "a-z, A-Z, 0-9, '.', '_' and '-'"
)

// Validate checks c for cmd ("run", "query", …) and reports every problem at
// once, each naming its key, what would be valid, and where to set it. It
// normalizes the case of juhe.mode, juhe.method, and the other enumerated
// values, and loads input.time_zone for Input.Location. The key (and, for
// the AES modes, the openid) is required only by commands that call the
// provider: run, query and replay.
func (c *Config) Validate(cmd string) error {
	return c.validate(cmd, slices.Contains(callsProvider, cmd))
}

// ValidateNoCalls is Validate for a run of cmd that makes no provider call
// (replay --dry-run): the provider's key and openid are not required.
func (c *Config) ValidateNoCalls(cmd string) error { return c.validate(cmd, false) }

func (c *Config) validate(cmd string, calls bool) error {
	v := &validator{cmd: cmd, calls: calls}
	c.validateKafka(v)
	c.validateJuhe(v)
	c.validateInput(v)
	v.nonEmpty("output.field", c.Output.Field)
	c.validateFieldNames(v)
	c.validateProcessing(v)
	c.validateCost(v) // cost.go
	c.validateLookupInTransaction(v)
	v.nonEmpty("telemetry.service_name", c.Telemetry.ServiceName)
	if a := c.Telemetry.MetricsAddr; a != "" && !ValidListenAddr(a) {
		v.addf("telemetry.metrics_addr", "%q is not valid; valid: host:port or :port, such as :9464 or 127.0.0.1:9464, or empty to disable", a)
	}
	c.Log.Level = v.choose("log.level", c.Log.Level)
	c.Log.Format = v.choose("log.format", c.Log.Format)
	c.validateMasks(v)
	return errors.Join(v.errs...)
}

// LookupTime is the longest one lookup can take with the provider: each
// attempt's juhe.timeout, and the waits between them (each at most
// juhe.max_backoff).
func (c *Config) LookupTime() time.Duration {
	j := &c.Juhe
	retries := max(j.Retries, 0)
	return time.Duration(retries+1)*j.Timeout + time.Duration(retries)*j.MaxBackoff
}

// validateLookupInTransaction refuses, exactly-once, a transaction timeout
// shorter than twice the longest lookup: a batch still waiting for the
// provider at half the timeout is abandoned (its calls canceled) and fetched
// again in smaller batches, and a record whose one lookup takes longer never
// commits (found by review: its lookup was made again and canceled, for
// ever).
func (c *Config) validateLookupInTransaction(v *validator) {
	if !v.calls || c.Kafka.Delivery != DeliveryExactlyOnce || c.Kafka.TransactionTimeout <= 0 || c.Juhe.Timeout <= 0 {
		return
	}
	if lookup := c.LookupTime(); c.Kafka.TransactionTimeout < 2*lookup {
		v.addf("kafka.transaction_timeout", "%s is shorter than twice the longest lookup (%s: juhe.timeout %s × %d attempts, and up to juhe.max_backoff %s between them): "+
			"exactly-once, a batch still waiting for the provider at half the transaction timeout is aborted, and a record whose lookup takes longer never commits; "+
			"set it to at least %s, or lower juhe.timeout or juhe.retries",
			c.Kafka.TransactionTimeout, lookup, c.Juhe.Timeout, max(c.Juhe.Retries, 0)+1, c.Juhe.MaxBackoff, ceilSecond(2*lookup))
	}
}

// ceilSecond is d rounded up to a whole second: a bound suggested as d
// rounded to the nearest second could be refused again.
func ceilSecond(d time.Duration) time.Duration {
	return (d + time.Second - 1).Truncate(time.Second)
}

// validateMasks refuses a secret set to the mask --print-config prints in
// its place: its output, used as a config file, loaded "***" as the key
// itself, which the provider refused (10001) only once running.
func (c *Config) validateMasks(v *validator) {
	for _, s := range secretSettings(c) {
		if s.value.String() == "***" {
			v.addSecret(s.key, "is \"***\", the mask --print-config prints instead of a secret; set the secret itself")
		}
	}
	// And juhe.url's credential, which it prints as xxxxx (ShownURL).
	if urlCredential(c.Juhe.URL) == "xxxxx" {
		v.addf("juhe.url", "holds \"xxxxx\" as its credential, the mask --print-config prints instead of the gateway's; set the credential itself")
	}
}

func (c *Config) validateKafka(v *validator) {
	k := &c.Kafka
	if len(k.Brokers) == 0 {
		v.addf("kafka.brokers", "must list at least one broker as host:port, such as 127.0.0.1:9092")
	}
	for _, b := range k.Brokers {
		if !validHostPort(b) {
			v.addf("kafka.brokers", "%q is not valid; valid: host:port, such as 127.0.0.1:9092", b)
		}
	}
	v.nonEmpty("kafka.group", k.Group)
	topics := []struct{ key, name string }{
		{"kafka.input_topic", k.InputTopic},
		{"kafka.output_topic", k.OutputTopic},
		{"kafka.dlq_topic", k.DLQTopic},
	}
	for i, t := range topics {
		if !validTopicName(t.name) {
			v.addf(t.key, "%q is not a valid topic name; valid: 1 to %d of %s, other than \".\" and \"..\"",
				t.name, maxTopicNameLength, topicNameCharacters)
			continue
		}
		for _, earlier := range topics[:i] {
			if t.name == earlier.name {
				v.addf(t.key, "%q is also %s; the input, output and dead-letter topics must differ", t.name, earlier.key)
			}
		}
	}
	v.positive("kafka.session_timeout", k.SessionTimeout)
	v.positive("kafka.rebalance_timeout", k.RebalanceTimeout)
	k.Delivery = v.choose("kafka.delivery", k.Delivery)
	v.positive("kafka.transaction_timeout", k.TransactionTimeout)
	c.validateKafkaTLS(v)
	c.validateKafkaSASL(v)
}

func (c *Config) validateKafkaTLS(v *validator) {
	t := &c.Kafka.TLS
	if !t.Enabled {
		// A CA file without TLS is a cluster the user believes is
		// encrypted: say so rather than connect in clear text.
		for _, f := range []struct {
			key string
			set bool
		}{
			{"kafka.tls.ca_file", t.CAFile != ""},
			{"kafka.tls.cert_file", t.CertFile != ""},
			{"kafka.tls.key_file", t.KeyFile != ""},
			{"kafka.tls.server_name", t.ServerName != ""},
			{"kafka.tls.insecure_skip_verify", t.InsecureSkipVerify},
		} {
			if f.set {
				v.addf(f.key, "is set but kafka.tls.enabled is false; set kafka.tls.enabled: true (%s=true) to connect over TLS, or remove it",
					envName("kafka.tls.enabled"))
			}
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.addf("kafka.tls.cert_file", "and kafka.tls.key_file go together: set both for mutual TLS, or neither")
	}
}

func (c *Config) validateKafkaSASL(v *validator) {
	s := &c.Kafka.SASL
	s.Mechanism = v.choose("kafka.sasl.mechanism", s.Mechanism)
	// The keys set that the mechanism does not use.
	var unused []string
	switch s.Mechanism {
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if strings.TrimSpace(s.Username) == "" {
			v.addf("kafka.sasl.username", "must be set, as kafka.sasl.mechanism is %s", s.Mechanism)
		}
		if s.Password == "" {
			v.addSecret("kafka.sasl.password", "must be set, as kafka.sasl.mechanism is %s", s.Mechanism)
		}
		if s.TokenFile != "" {
			unused = append(unused, "kafka.sasl.token_file")
		}
	case SASLOAuthBearer:
		if s.TokenFile == "" {
			v.addf("kafka.sasl.token_file", "must be set, as kafka.sasl.mechanism is oauthbearer: a file holding the token, re-read when it changes")
		}
		if s.Username != "" {
			unused = append(unused, "kafka.sasl.username")
		}
		if s.Password != "" {
			unused = append(unused, "kafka.sasl.password")
		}
	case SASLNone:
		for _, f := range []struct {
			key string
			set bool
		}{
			{"kafka.sasl.username", s.Username != ""},
			{"kafka.sasl.password", s.Password != ""},
			{"kafka.sasl.token_file", s.TokenFile != ""},
		} {
			if f.set {
				unused = append(unused, f.key)
			}
		}
	}
	for _, key := range unused {
		v.addf(key, "is set but kafka.sasl.mechanism %s does not use it; valid mechanisms: %s",
			s.Mechanism, strings.Join(validSASL[1:], ", "))
	}
}

func (c *Config) validateJuhe(v *validator) {
	j := &c.Juhe
	if u, err := url.Parse(j.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.addf("juhe.url", "%q is not valid; valid: an http or https URL with a host, such as https://apis.juhe.cn", ShownURL(j.URL))
	} else {
		if u.RawQuery != "" || u.Fragment != "" {
			v.addf("juhe.url", "%s carries a query or a fragment; the key belongs in juhe.key (%s), and the URL is the API's root, such as https://apis.juhe.cn",
				ShownURL(j.URL), envName("juhe.key"))
		}
		if juhe.InsecureURL(u) && !j.AllowInsecure {
			v.addf("juhe.url", "%s is plain http to %s, which is not a loopback address: every request would carry the key "+
				"across the network in clear text; use https, or set juhe.allow_insecure: true (%s=true) if the network is trusted",
				u.Scheme+"://"+u.Host, u.Hostname(), envName("juhe.allow_insecure"))
		}
		if u.Scheme == "http" && j.CAFile != "" {
			v.addf("juhe.ca_file", "is set but juhe.url is plain http, which uses no certificate; use an https URL, or remove it")
		}
	}

	needsKey := v.calls
	if needsKey && j.Key == "" {
		v.addSecret("juhe.key", "must be set, as %s calls the provider", v.cmd)
	}

	mode, err := juhe.ParseMode(strings.ToLower(string(j.Mode)))
	if err != nil {
		v.addf("juhe.mode", "%q is not valid; valid: %s", string(j.Mode), strings.Join(modeNames(), ", "))
	} else {
		j.Mode = mode
		if needsKey && mode.UsesAES() && j.OpenID == "" {
			v.addSecret("juhe.openid", "must be set, as juhe.mode %s derives its AES key from the account's openid", mode)
		}
	}

	j.Method = v.choose("juhe.method", j.Method)
	v.positive("juhe.timeout", j.Timeout)
	v.atLeast("juhe.retries", j.Retries, 0)
	v.positive("juhe.backoff", j.Backoff)
	if v.positive("juhe.max_backoff", j.MaxBackoff) && j.Backoff > 0 && j.MaxBackoff < j.Backoff {
		v.addf("juhe.max_backoff", "%s is less than juhe.backoff (%s); valid: at least juhe.backoff", j.MaxBackoff, j.Backoff)
	}
	v.atLeast("juhe.bad_param_fatal_after", j.BadParamFatalAfter, 1)
	v.atLeast("juhe.max_conns", j.MaxConns, 1)
	v.atLeast("juhe.breaker.failures", j.Breaker.Failures, 1)
	v.positive("juhe.breaker.open_for", j.Breaker.OpenFor)
	v.atLeast("juhe.breaker.half_open_requests", j.Breaker.HalfOpenRequests, 1)
}

func (c *Config) validateInput(v *validator) {
	in := &c.Input
	v.nonEmpty("input.id_field", in.IDField)
	v.nonEmpty("input.mobile_field", in.MobileField)
	in.DateSource = v.choose("input.date_source", in.DateSource)
	if in.DateSource != DateSourceTimestamp { // the field is not read then
		v.nonEmpty("input.date_field", in.DateField)
	}
	v.atLeast("input.max_record_bytes", in.MaxRecordBytes, 1)
	v.atLeast("input.max_headers", in.MaxHeaders, 1)
	in.loc = nil
	if in.TimeZone == "" {
		// time.LoadLocation("") is UTC, which would silently shift every
		// date near midnight; make the choice explicit.
		v.addf("input.time_zone", "must not be empty; valid: an IANA time zone name such as Asia/Shanghai or UTC")
	} else if loc, err := time.LoadLocation(in.TimeZone); err != nil {
		v.addf("input.time_zone", "%q is not valid; valid: an IANA time zone name such as Asia/Shanghai or UTC", in.TimeZone)
	} else {
		in.loc = loc
	}
}

// validateFieldNames refuses two field settings of one name, as the
// processor's codec does (it could not tell the fields apart, nor write the
// output member without overwriting one): here, so that the error names
// the settings and --print-config does not show such a configuration as
// valid.
func (c *Config) validateFieldNames(v *validator) {
	fields := []struct{ key, name string }{
		{"input.mobile_field", c.Input.MobileField},
		{"input.date_field", c.Input.DateField},
		{"input.id_field", c.Input.IDField},
		{"output.field", c.Output.Field},
	}
	for i, b := range fields {
		for _, a := range fields[:i] {
			if a.name != "" && strings.EqualFold(a.name, b.name) {
				v.addf(b.key, "%q is also %s (%q), in case at least; valid: a name that no other of input.mobile_field, input.date_field, input.id_field and output.field has in any case (JSON decoders such as Go's match names in any case)",
					b.name, a.key, a.name)
			}
		}
	}
}

func (c *Config) validateProcessing(v *validator) {
	p := &c.Processing
	p.OnUnavailable = v.choose("processing.on_unavailable", p.OnUnavailable)
	v.positive("processing.commit_interval", p.CommitInterval)
	v.positive("processing.shutdown_timeout", p.ShutdownTimeout)
	v.positive("processing.retry_backoff", p.RetryBackoff)
	if v.positive("processing.max_retry_backoff", p.MaxRetryBackoff) && p.RetryBackoff > 0 && p.MaxRetryBackoff < p.RetryBackoff {
		v.addf("processing.max_retry_backoff", "%s is less than processing.retry_backoff (%s); valid: at least processing.retry_backoff",
			p.MaxRetryBackoff, p.RetryBackoff)
	}
	v.atLeast("processing.max_buffered_records", p.MaxBufferedRecords, 1)
	v.atLeast("processing.max_buffered_bytes", p.MaxBufferedBytes, 1)
	v.atLeast("processing.fetch_max_partition_bytes", p.FetchMaxPartitionBytes, 1024)
	if !ValidFetchMaxWait(p.FetchMaxWait) {
		v.addf("processing.fetch_max_wait", "%s is not valid; valid: %s", p.FetchMaxWait, FetchMaxWaitRange)
	}
	v.atLeast("processing.max_in_flight", p.MaxInFlight, 1)
	v.atLeast("processing.max_in_flight_bytes", p.MaxInFlightBytes, 1)
	p.Ordering = v.choose("processing.ordering", p.Ordering)
}

// validator collects problems, each ending with where the key can be set.
type validator struct {
	cmd   string
	calls bool // the run calls the provider: its key (and openid) are required
	errs  []error
}

// addf records a problem with key and says where key is set.
func (v *validator) addf(key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	v.errs = append(v.errs, &settingError{key, fmt.Sprintf("%s: %s (set %s)", key, msg, v.where(key))})
}

// addSecret records a problem with a secret, which is set by its value or
// by a file holding it.
func (v *validator) addSecret(key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	v.errs = append(v.errs, &settingError{key, fmt.Sprintf("%s: %s (set %s or %s, or %s or %s_file in the config file)",
		key, msg, envName(key), envName(key+"_file"), key, key)})
}

// settingError is a problem with one setting's value.
type settingError struct{ key, msg string }

func (e *settingError) Error() string { return e.msg }

// InvalidFlagError is a configuration that is not valid because of a
// value given on the command line (--max-in-flight 0): a usage error, as
// a value of the wrong kind is (FlagError), which the command prints.
type InvalidFlagError struct{ Err error }

func (e *InvalidFlagError) Error() string { return e.Err.Error() }
func (e *InvalidFlagError) Unwrap() error { return e.Err }

// FlagsBlamed returns err, from Validate(cmd), as an InvalidFlagError when
// a setting it finds not valid was given by a flag set on fs; else err.
func FlagsBlamed(cmd string, fs *flag.FlagSet, err error) error {
	if err == nil {
		return nil
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var se *settingError
		if !errors.As(e, &se) {
			continue
		}
		if name, ok := flagFor(cmd, se.key); ok && given[name] {
			return &InvalidFlagError{err}
		}
	}
	return err
}

// where lists the places key can be set: the file, the environment, and
// the command's flag if it has one; or the flag alone, for a setting the
// command takes from its flag alone (flagOnly). Found by review: replay's
// errors about its output topic said "set in the config file,
// TWOSELL_KAFKA_OUTPUT_TOPIC or --output-topic", of which only the flag
// counts.
func (v *validator) where(key string) string {
	name, ok := flagFor(v.cmd, key)
	switch {
	case ok && flagOnly[v.cmd][name]:
		def := ""
		if d := flagOnlyDefault[v.cmd][name]; d != "" {
			def = ", by default " + d
		}
		return fmt.Sprintf("with --%s%s; %s takes it from the command line alone, not from the config file or %s", name, def, v.cmd, envName(key))
	case ok:
		return fmt.Sprintf("in the config file, %s or --%s", envName(key), name)
	}
	return fmt.Sprintf("in the config file or %s", envName(key))
}

// choose checks that value is one of key's values (choices), reporting it
// if not, and returns the value to keep: normalized when valid, else value.
// CheckChoice checks value against the enumerated setting key's values
// and returns it normalized, for a command's own flag that takes a
// setting's value (bench's --ordering).
func CheckChoice(key, value string) (string, error) {
	ch, ok := choices[key]
	if !ok {
		return "", fmt.Errorf("config: %s is not an enumerated setting", key)
	}
	if err := ch.check(value); err != nil {
		return "", err
	}
	return ch.normalize(value), nil
}

func (v *validator) choose(key, value string) string {
	ch := choices[key]
	if err := ch.check(value); err != nil {
		v.addf(key, "%v", err)
		return value
	}
	return ch.normalize(value)
}

func (v *validator) nonEmpty(key, value string) {
	if strings.TrimSpace(value) == "" {
		v.addf(key, "must not be empty")
	}
}

// positive checks that d > 0 and reports whether it is.
func (v *validator) positive(key string, d time.Duration) bool {
	if d <= 0 {
		v.addf(key, "%s is not valid; valid: a duration greater than 0, such as %s", d, exampleDuration(key))
		return false
	}
	return true
}

func (v *validator) atLeast(key string, n, least int) {
	if n < least {
		v.addf(key, "%d is not valid; valid: %d or more", n, least)
	}
}

// exampleDuration is key's default, the most useful example of a valid value.
func exampleDuration(key string) string {
	def := Default()
	if s, ok := settingsByKey(&def)[key]; ok {
		return formatValue(s.value)
	}
	return "1s"
}

// validHostPort reports whether s is host:port with a non-empty host and a
// port from 1 to 65535.
func validHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

// ValidListenAddr accepts a listen address: host:port or :port, port 0
// (any free port) included.
func ValidListenAddr(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// validTopicName applies Kafka's rules for topic names.
func validTopicName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > maxTopicNameLength {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}

// ShownURL is raw as it may be shown: a password in its user information
// replaced, or a user name that comes without one (a gateway that takes a
// token as the URL's user), and its query and fragment (a key pasted in as
// the provider's document writes it, ?key=...), also when raw does not
// parse as a URL.
func ShownURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if u.User == nil && u.RawQuery == "" && u.Fragment == "" {
			return raw // as written (String would make "https://" "https:")
		}
		switch p, _ := u.User.Password(); {
		case p != "":
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		case u.User != nil: // a user name alone, or with an empty password (curl -u "TOKEN:")
			u.User = url.User("xxxxx")
		}
		if u.RawQuery != "" {
			u.RawQuery = "xxxxx"
		}
		if u.Fragment != "" {
			u.Fragment, u.RawFragment = "xxxxx", ""
		}
		return u.String()
	}
	// The user information first: a password may hold a '#' or a '?'.
	prefix, rest := "", raw
	if scheme, _, r, ok := cutUserinfo(raw); ok {
		prefix, rest = scheme+"xxxxx@", r
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i+1] + "xxxxx"
	}
	return prefix + rest
}

// urlCredential is the password in raw's user information, or the user
// name when it comes alone or with an empty password (as ShownURL hides
// them), if any, also when raw does not parse as a URL.
func urlCredential(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if p, _ := u.User.Password(); p != "" {
			return p
		}
		return u.User.Username()
	}
	if _, userinfo, _, ok := cutUserinfo(raw); ok {
		user, p, _ := strings.Cut(userinfo, ":")
		if p != "" {
			return p
		}
		return user
	}
	return ""
}

// cutUserinfo splits a URL that url.Parse refused around its user
// information: "https://" + "u:p" + "@" + "host...".
func cutUserinfo(raw string) (scheme, userinfo, rest string, ok bool) {
	i := strings.Index(raw, "://")
	at := strings.LastIndex(raw, "@")
	if i < 0 || at <= i {
		return "", "", "", false
	}
	return raw[:i+3], raw[i+3 : at], raw[at+1:], true
}
