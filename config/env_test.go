package config

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The environment is derived from the structs: every setting has its own
// variable, and each of them sets that setting and only it.
func TestEnvCoversEverySetting(t *testing.T) {
	t.Parallel()
	var c Config
	seen := map[string]string{EnvConfigFile: "the config file's path"}
	for _, s := range settings(&c) {
		name := s.env()
		if other, dup := seen[name]; dup {
			t.Errorf("%s and %s share the variable %s", s.key, other, name)
		}
		seen[name] = s.key
		if !strings.HasPrefix(name, EnvPrefix) || strings.ContainsAny(name, ".-") || name != strings.ToUpper(name) {
			t.Errorf("%s: malformed variable name %s", s.key, name)
		}
	}
	if n := len(seen) - 1; n < 40 {
		t.Errorf("only %d settings found; the walker is missing some", n)
	}

	for _, s := range settings(&c) {
		t.Run(s.env(), func(t *testing.T) {
			raw, want := sampleValue(s.value)
			got := Default()
			if err := applyEnv(&got, env{s.env(): raw}.lookup); err != nil {
				t.Fatal(err)
			}
			expect := Default()
			settingsByKey(&expect)[s.key].value.Set(reflect.ValueOf(want).Convert(s.value.Type()))
			if !reflect.DeepEqual(got, expect) {
				t.Errorf("%s=%q: got %+v\nwant %+v", s.env(), raw, got, expect)
			}
		})
	}
}

// sampleValue returns a variable's text for a setting of v's type and the
// value it must parse to, different from every default.
func sampleValue(v reflect.Value) (string, any) {
	switch kindName(v) {
	case "duration":
		return "1m7s", int64(67e9)
	case "bool":
		return "false", false // every bool defaults to true
	case "int":
		return "7", int64(7)
	case "number":
		return "2.5", 2.5
	case "list":
		return " a:1, b:2,, ", []string{"a:1", "b:2"}
	}
	return "sample-value", "sample-value"
}

func TestEnvNames(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"kafka.brokers":                   "TWOSELL_KAFKA_BROKERS",
		"juhe.key":                        "TWOSELL_JUHE_KEY",
		"juhe.key_file":                   "TWOSELL_JUHE_KEY_FILE",
		"juhe.openid_file":                "TWOSELL_JUHE_OPENID_FILE",
		"juhe.breaker.open_for":           "TWOSELL_JUHE_BREAKER_OPEN_FOR",
		"processing.max_buffered_records": "TWOSELL_PROCESSING_MAX_BUFFERED_RECORDS",
		"juhe.breaker.half_open_requests": "TWOSELL_JUHE_BREAKER_HALF_OPEN_REQUESTS",
		"telemetry.service_name":          "TWOSELL_TELEMETRY_SERVICE_NAME",
	} {
		var c Config
		s, ok := settingsByKey(&c)[key]
		if !ok {
			t.Errorf("no setting %s", key)
			continue
		}
		if s.env() != want {
			t.Errorf("%s: variable %s, want %s", key, s.env(), want)
		}
	}
}

func TestEnvMalformed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  env
		want [][]string // per problem: substrings
	}{
		{"duration", env{"TWOSELL_JUHE_TIMEOUT": "5"},
			[][]string{{"TWOSELL_JUHE_TIMEOUT", `"5"`, "duration", "juhe.timeout", "500ms"}}},
		{"nested duration", env{"TWOSELL_JUHE_BREAKER_OPEN_FOR": "half a minute"},
			[][]string{{"TWOSELL_JUHE_BREAKER_OPEN_FOR", "duration"}}},
		{"bool", env{"TWOSELL_KAFKA_CREATE_TOPICS": "maybe"},
			[][]string{{"TWOSELL_KAFKA_CREATE_TOPICS", `"maybe"`, "bool", "true or false"}}},
		{"int", env{"TWOSELL_JUHE_RETRIES": "two"},
			[][]string{{"TWOSELL_JUHE_RETRIES", "int"}}},
		{"all reported", env{"TWOSELL_JUHE_RETRIES": "1.5", "TWOSELL_PROCESSING_COMMIT_INTERVAL": "1"},
			[][]string{{"TWOSELL_JUHE_RETRIES", "int"}, {"TWOSELL_PROCESSING_COMMIT_INTERVAL", "duration"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			lines := errLines(applyEnv(&c, tt.env.lookup))
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d problems, want %d: %q", len(lines), len(tt.want), lines)
			}
			for _, want := range tt.want {
				found := false
				for _, line := range lines {
					if strings.Contains(line, want[0]) {
						found = true
						mustContain(t, line, want...)
					}
				}
				if !found {
					t.Errorf("no problem names %s: %q", want[0], lines)
				}
			}
		})
	}
}

// An empty variable is unset, so a manifest can list variables without
// values.
func TestEnvEmptyIsUnset(t *testing.T) {
	t.Parallel()
	c := Default()
	err := applyEnv(&c, env{"TWOSELL_KAFKA_GROUP": "", "TWOSELL_JUHE_TIMEOUT": ""}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.Group != "twosell" || c.Juhe.Timeout != Default().Juhe.Timeout {
		t.Errorf("empty variables changed settings: %+v", c)
	}
}

func ExampleLoad() {
	environ := map[string]string{
		"TWOSELL_JUHE_KEY":              "0123456789abcdef",
		"TWOSELL_JUHE_BREAKER_OPEN_FOR": "1m",
		"TWOSELL_KAFKA_GROUP":           "fraud",
	}
	lookupEnv := func(name string) (string, bool) {
		v, ok := environ[name]
		return v, ok
	}
	cfg, _, err := Load("run", []string{"--group", "fraud-canary", "--juhe-mode", "sha256"}, lookupEnv, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Kafka.Group, cfg.Juhe.Mode, cfg.Juhe.Breaker.OpenFor, cfg.Juhe.Key)
	// Output: fraud-canary sha256 1m0s ***
}

// A bool reads the same in the environment as in the config file: YAML's
// spellings (yes/no, on/off, y/n, in three cases), and 1/0/t/f besides.
func TestEnvBoolSpellings(t *testing.T) {
	t.Parallel()
	for spelling, want := range map[string]bool{
		"true": true, "False": false, "YES": true, "no": false, "on": true, "Off": false, "y": true, "N": false,
		"1": true, "0": false, "t": true, "F": false,
	} {
		c, _, err := Load("run", nil, withKey.with("TWOSELL_CACHE_ENABLED", spelling).lookup, io.Discard)
		if err != nil || c.Cache.Enabled != want {
			t.Errorf("TWOSELL_CACHE_ENABLED=%s: %v, %v; want %v", spelling, c, err, want)
		}
		path := writeFile(t, "c.yaml", "cache:\n  enabled: "+spelling+"\n")
		if c, _, err := Load("run", []string{"--config", path}, withKey.lookup, io.Discard); err == nil && c.Cache.Enabled != want {
			t.Errorf("cache.enabled: %s in the file reads %v, want %v", spelling, c.Cache.Enabled, want)
		}
	}
}

// A variable's surrounding white space is not part of a secret, a duration
// or a bool: a Kubernetes Secret made from a file gives TWOSELL_JUHE_KEY a
// trailing newline, which made another key, and another cache secret than
// an instance reading the key from a file. (Found by review.)
func TestEnvValuesTrimmed(t *testing.T) {
	env := map[string]string{
		"TWOSELL_JUHE_KEY":          "k-0123456789abcdef\n",
		"TWOSELL_KAFKA_TLS_ENABLED": "true ",
		"TWOSELL_JUHE_TIMEOUT":      " 3s",
	}
	c := Default()
	if err := applyEnv(&c, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.Juhe.Key.Reveal() != "k-0123456789abcdef" || !c.Kafka.TLS.Enabled || c.Juhe.Timeout != 3*time.Second {
		t.Errorf("key %q, tls %v, timeout %v", c.Juhe.Key.Reveal(), c.Kafka.TLS.Enabled, c.Juhe.Timeout)
	}
}

// A TWOSELL_ variable that is no setting's is an error that names what it
// most likely meant; other variables, and every setting's, are not.
func TestCheckEnv(t *testing.T) {
	ok := []string{"PATH=/bin", "TWOSELL_CONFIG=/etc/twosell.yaml", "TWOSELL_JUHE_DAILY_BUDGET=100", "TWOSELL_JUHE_KEY_FILE=/k", "TWOSELLTEST_MAIN=1", "twosell_juhe_key=x"}
	if err := CheckEnv(ok); err != nil {
		t.Errorf("CheckEnv(%q) = %v", ok, err)
	}
	tests := []struct{ env, want string }{
		{"TWOSELL_JUHE_DAILYBUDGET=100", "unknown environment variable TWOSELL_JUHE_DAILYBUDGET (did you mean TWOSELL_JUHE_DAILY_BUDGET?)"},
		{"TWOSELL_KAFKA_BROKER=a:9092", "(did you mean TWOSELL_KAFKA_BROKERS?)"},
		{"TWOSELL_JUHE_KYE=secret", "(did you mean TWOSELL_JUHE_KEY?)"},
		{"TWOSELL_SOMETHING_ELSE_ENTIRELY=1", "unknown environment variable TWOSELL_SOMETHING_ELSE_ENTIRELY; each setting is"},
	}
	for _, tt := range tests {
		err := CheckEnv([]string{"HOME=/root", tt.env})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.env, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the value is in the error: %v", tt.env, err)
		}
	}
	if err := CheckEnv([]string{"TWOSELL_A=1", "TWOSELL_B=2"}); err == nil || strings.Count(err.Error(), "unknown environment variable") != 2 {
		t.Errorf("two unknown variables: %v", err)
	}
}
