package config

import (
	"flag"
	"fmt"
	"reflect"
	"strings"
)

// flagSpec binds a command-line flag to a setting.
type flagSpec struct {
	name  string // without dashes
	key   string // the setting's dotted YAML key
	usage string // the env variable and the default are added when printed
}

// flagOnly are, per command, the flags whose settings the command takes from
// the flag alone, not from the file or the environment, with no default:
// their usage shows neither (found by review: replay -h showed --dlq-topic
// with kafka.dlq_topic's default and variable, which replay ignores).
var flagOnly = map[string]map[string]bool{
	"replay": {"output-topic": true, "dlq-topic": true},
}

// flagOnlyDefault is, per command, what a flagOnly flag's setting is when
// the flag is not given, for errors about it.
var flagOnlyDefault = map[string]map[string]string{
	"replay": {"dlq-topic": `the output topic + ".dlq"`},
}

// commandFlags are the flags each command accepts besides --config. Only the
// settings an operator changes per invocation have flags; the rest are set
// in the file or the environment. Secrets never have flags: command lines
// are visible to every user of the machine.
var commandFlags = map[string][]flagSpec{
	"run": {
		{"brokers", "kafka.brokers", "Kafka seed brokers, comma-separated host:port"},
		{"group", "kafka.group", "consumer group"},
		{"input-topic", "kafka.input_topic", "topic to read registration events from"},
		{"output-topic", "kafka.output_topic", "topic to write enriched events to"},
		{"dlq-topic", "kafka.dlq_topic", "topic to write dead letters to"},
		{"create-topics", "kafka.create_topics", "create missing output, dead-letter and ledger topics at start"},
		{"delivery", "kafka.delivery", "delivery guarantee: at-least-once or exactly-once (Kafka transactions)"},
		{"kafka-tls", "kafka.tls.enabled", "connect to the brokers over TLS"},
		{"kafka-ca-file", "kafka.tls.ca_file", "PEM file of the CAs that sign the brokers' certificates (default: the system's)"},
		{"sasl-mechanism", "kafka.sasl.mechanism", "SASL to the brokers: none, plain, scram-sha-256, scram-sha-512 or oauthbearer"},
		{"sasl-username", "kafka.sasl.username", "SASL user (the password: TWOSELL_KAFKA_SASL_PASSWORD or kafka.sasl.password_file)"},
		flagJuheURL, flagJuheMode, flagJuheMethod, flagJuheTimeout, flagJuheCAFile,
		{"max-in-flight", "processing.max_in_flight", "records processed at once across all partitions"},
		{"ordering", "processing.ordering", "order kept: key, partition or none"},
		{"on-unavailable", "processing.on_unavailable", "while the provider is unavailable: pause (hold records back) or emit (write status unavailable)"},
		{"on-budget", "processing.on_budget", "once juhe.daily_budget is spent: pause (hold records needing a paid call back) or emit (write status skipped)"},
		{"metrics-addr", "telemetry.metrics_addr", "listen address of /metrics (Prometheus), /healthz and /readyz; empty disables"},
		flagLogLevel, flagLogFormat,
	},
	"query": {
		flagJuheURL, flagJuheMode, flagJuheMethod, flagJuheTimeout, flagJuheCAFile,
		flagBrokers, flagKafkaTLS, flagKafkaCAFile, flagSASLMechanism, flagSASLUsername,
		flagLedgerTopic,
		flagLogLevel, flagLogFormat,
	},
	"replay": {
		flagBrokers,
		{"input-topic", "kafka.input_topic", "topic to replay"},
		{"output-topic", "kafka.output_topic", "topic to write the replay's enriched events to (required)"},
		{"dlq-topic", "kafka.dlq_topic", "topic to write the replay's dead letters to (default: the output topic + \".dlq\")"},
		{"create-topics", "kafka.create_topics", "create missing output, dead-letter and ledger topics at start"},
		flagKafkaTLS, flagKafkaCAFile, flagSASLMechanism, flagSASLUsername,
		flagJuheURL, flagJuheMode, flagJuheMethod, flagJuheTimeout, flagJuheCAFile,
		{"qps", "juhe.qps", "the replay's own request rate to the provider; 0: unlimited"},
		{"daily-budget", "juhe.daily_budget", "paid calls per day, counted in the ledger with every instance's; 0: unlimited"},
		{"on-budget", "processing.on_budget", "once the budget is spent: pause (wait for the next day) or emit (write status skipped)"},
		{"price", "juhe.price_per_call", "estimated price of one paid call in CNY, for the cost estimate"},
		{"max-in-flight", "processing.max_in_flight", "records processed at once"},
		flagLedgerTopic,
		flagLogLevel, flagLogFormat,
	},
	"ledger": {
		flagBrokers, flagKafkaTLS, flagKafkaCAFile, flagSASLMechanism, flagSASLUsername,
		flagLedgerTopic,
		flagLogLevel, flagLogFormat,
	},
	"gen": {
		flagBrokers,
		{"input-topic", "kafka.input_topic", "topic to write the events to (created if missing)"},
		flagKafkaTLS, flagKafkaCAFile, flagSASLMechanism, flagSASLUsername,
	},
}

// The flags shared by several commands.
var (
	flagJuheURL       = flagSpec{"juhe-url", "juhe.url", "base URL of the juhe API"}
	flagJuheMode      = flagSpec{"juhe-mode", "juhe.mode", "how the mobile is sent: plain, md5, sha256, aes, md5+aes or sha256+aes"}
	flagJuheMethod    = flagSpec{"juhe-method", "juhe.method", "HTTP method: GET or POST"}
	flagJuheTimeout   = flagSpec{"juhe-timeout", "juhe.timeout", "timeout of each attempt to call the API"}
	flagJuheCAFile    = flagSpec{"juhe-ca-file", "juhe.ca_file", "PEM file of the CAs trusted for the API's certificate (default: the system's)"}
	flagBrokers       = flagSpec{"brokers", "kafka.brokers", "Kafka seed brokers, comma-separated host:port"}
	flagKafkaTLS      = flagSpec{"kafka-tls", "kafka.tls.enabled", "connect to the brokers over TLS"}
	flagKafkaCAFile   = flagSpec{"kafka-ca-file", "kafka.tls.ca_file", "PEM file of the CAs that sign the brokers' certificates (default: the system's)"}
	flagSASLMechanism = flagSpec{"sasl-mechanism", "kafka.sasl.mechanism", "SASL to the brokers: none, plain, scram-sha-256, scram-sha-512 or oauthbearer"}
	flagSASLUsername  = flagSpec{"sasl-username", "kafka.sasl.username", "SASL user (the password: TWOSELL_KAFKA_SASL_PASSWORD or kafka.sasl.password_file)"}
	flagLedgerTopic   = flagSpec{"ledger-topic", "ledger.topic", "the ledger: compacted topic of every paid answer"}
	flagLogLevel      = flagSpec{"log-level", "log.level", "lowest level logged: debug, info, warn or error"}
	flagLogFormat     = flagSpec{"log-format", "log.format", "log format: auto (json unless stderr is a terminal), json or text"}
)

// synopsis is the first line of each command's usage.
var synopsis = map[string]string{
	"run":    "twosell run [flags]",
	"query":  "twosell query [flags] MOBILE",
	"replay": "twosell replay --output-topic TOPIC [--from TIME] [--to TIME] [flags]\n       twosell replay --dry-run [--from TIME] [--to TIME] [flags]",
	"ledger": "twosell ledger export [flags]",
	"gen":    "twosell gen [--events N] [--rate R] [flags]",
}

// flagFor returns the flag that sets key in cmd, if there is one.
func flagFor(cmd, key string) (string, bool) {
	for _, f := range commandFlags[cmd] {
		if f.key == key {
			return f.name, true
		}
	}
	return "", false
}

// settingFlag is a flag.Value that parses into a setting by the setting's
// type, the same way the environment does.
type settingFlag struct {
	key      string
	value    reflect.Value
	flagOnly bool // the command takes it from the flag alone (flagOnly)
}

// String shows the value; the flag package also calls it on a zero
// settingFlag.
func (f *settingFlag) String() string {
	if f == nil || !f.value.IsValid() {
		return ""
	}
	return formatValue(f.value)
}

// Set parses s into the setting; an enumerated setting's value must be one
// of its values (choices).
func (f *settingFlag) Set(s string) error {
	if ch, ok := choices[f.key]; ok {
		if err := ch.check(s); err != nil {
			return err
		}
	}
	return setString(f.value, s)
}

// IsBoolFlag lets a bool setting be given as --create-topics, without a value.
func (f *settingFlag) IsBoolFlag() bool {
	return f != nil && f.value.IsValid() && f.value.Kind() == reflect.Bool
}

// commandLine holds what the flags were parsed into until they are applied
// over the file and the environment.
type commandLine struct {
	fs         *flag.FlagSet
	configFile string
	parsed     Config // Default, then whatever flags were given
	specs      map[string]flagSpec
}

// addFlags registers cmd's flags on fs and installs the usage.
func addFlags(cmd string, fs *flag.FlagSet) (*commandLine, error) {
	specs, ok := commandFlags[cmd]
	if !ok {
		return nil, fmt.Errorf("config: command %q has no configuration flags; known: run, query, replay, ledger", cmd)
	}
	cl := &commandLine{fs: fs, parsed: Default(), specs: map[string]flagSpec{}}
	fs.StringVar(&cl.configFile, "config", "", "`path` of the YAML config file (env "+EnvConfigFile+")")
	byKey := settingsByKey(&cl.parsed)
	for _, spec := range specs {
		s, ok := byKey[spec.key]
		if !ok {
			panic("config: flag --" + spec.name + " names no setting " + spec.key)
		}
		fs.Var(&settingFlag{spec.key, s.value, flagOnly[cmd][spec.name]}, spec.name, spec.usage)
		cl.specs[spec.name] = spec
	}
	fs.Usage = func() { printUsage(fs, synopsis[cmd], true) }
	return cl, nil
}

// apply copies the flags given on the command line over c. Flags not given
// are not applied, so their defaults do not undo the file or the
// environment; fs.Visit sees only the flags that were set.
func (cl *commandLine) apply(c *Config) {
	byKey := settingsByKey(c)
	cl.fs.Visit(func(f *flag.Flag) {
		sf, ok := f.Value.(*settingFlag)
		if _, ours := cl.specs[f.Name]; !ok || !ours {
			return
		}
		byKey[sf.key].value.Set(sf.value)
	})
}

// printUsage writes the usage of every flag on fs, the caller's included,
// with its default, and, for a command that reads the settings, says where
// else they come from.
func printUsage(fs *flag.FlagSet, synopsis string, settings bool) {
	w := fs.Output()
	if synopsis == "" {
		synopsis = fs.Name() + " [flags]"
	}
	fmt.Fprintf(w, "Usage: %s\n\nFlags:\n", synopsis)
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		var notes []string
		if ev, ok := f.Value.(explainedValue); ok && ev.kind != "bool" {
			typ = ev.kind
		} else if ok {
			typ = ""
		}
		sf, setting := f.Value.(*settingFlag)
		zero := !settings && (f.DefValue == "0" || f.DefValue == "0s" || f.DefValue == "false") // as Go's usage: a zero default goes without saying
		if f.DefValue != "" && !zero && (!setting || !sf.flagOnly) {
			notes = append(notes, "default "+f.DefValue)
		}
		if setting {
			typ = kindName(sf.value)
			if sf.IsBoolFlag() {
				typ = ""
			}
			if !sf.flagOnly {
				notes = append(notes, "env "+envName(sf.key))
			}
		}
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		if len(notes) > 0 {
			usage += " (" + strings.Join(notes, "; ") + ")"
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, usage)
	})
	if !settings {
		return
	}
	fmt.Fprintf(w, "\nSettings are also read from the config file (--config or %s) and from\n"+
		"environment variables %s<SECTION>_<KEY>, such as TWOSELL_JUHE_BREAKER_OPEN_FOR.\n"+
		"Flags override the environment, which overrides the file.\n", EnvConfigFile, EnvPrefix)
}
