package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment variable twosell reads.
const EnvPrefix = "TWOSELL_"

// EnvConfigFile names the variable holding the config file's path, read when
// --config is not given.
const EnvConfigFile = EnvPrefix + "CONFIG"

// setting is one leaf of a Config: a scalar or a list, reached through the
// YAML tags of the structs above it.
type setting struct {
	key   string        // dotted YAML path, such as juhe.breaker.open_for
	value reflect.Value // the field itself, settable
}

// env is the setting's environment variable, such as
// TWOSELL_JUHE_BREAKER_OPEN_FOR.
func (s setting) env() string { return envName(s.key) }

// envName derives a variable's name from a dotted YAML key. Deriving it,
// rather than listing the names, keeps the environment complete as fields are
// added.
func envName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

var durationType = reflect.TypeFor[time.Duration]()

// settings walks c by reflection and returns its leaves in declaration
// order. Their values point into c, so setting one changes c.
func settings(c *Config) []setting {
	var out []setting
	walk(reflect.ValueOf(c).Elem(), "", func(key string, v reflect.Value) {
		if v.Kind() != reflect.Struct {
			out = append(out, setting{key, v})
		}
	})
	return out
}

// settingsByKey indexes settings(c) by key.
func settingsByKey(c *Config) map[string]setting {
	m := make(map[string]setting)
	for _, s := range settings(c) {
		m[s.key] = s
	}
	return m
}

// walk calls visit for every exported, YAML-tagged field below v: first for a
// section (a struct), then for what it holds. Fields without a yaml tag are
// not settings and are skipped.
func walk(v reflect.Value, prefix string, visit func(key string, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		name, ok := yamlKey(t.Field(i))
		if !ok {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		fv := v.Field(i)
		visit(key, fv)
		if fv.Kind() == reflect.Struct {
			walk(fv, key, visit)
		}
	}
}

// yamlKey returns f's YAML key, or false if f is not a setting.
func yamlKey(f reflect.StructField) (string, bool) {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name, f.IsExported() && name != "" && name != "-"
}

// kindName is how a setting's type is named to people: in flag usage and in
// the errors for malformed values.
func kindName(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return "duration"
	case v.Kind() == reflect.Bool:
		return "bool"
	case v.Kind() == reflect.Int:
		return "int"
	case v.Kind() == reflect.Float64:
		return "number"
	case v.Kind() == reflect.Slice:
		return "list"
	}
	return "string"
}

// errExpected says what a malformed value should have looked like, by type.
var errExpected = map[string]error{
	"duration": errors.New("expected a Go duration such as 500ms, 5s or 1m30s"),
	"bool":     errors.New("expected a bool: true or false (or yes/no, on/off, y/n, 1/0)"),
	"int":      errors.New("expected an integer"),
	"number":   errors.New("expected a number such as 0.4 or 10"),
}

// errExpectedBoolInFile is the config file's: YAML reads 1 and 0 as
// numbers, which the environment and the flags take for bools.
var errExpectedBoolInFile = errors.New("expected a bool: true or false (or yes/no, on/off, y/n)")

// setString parses s into v by v's type: strings as they are, lists
// comma-separated (spaces trimmed, empty items dropped), durations as Go
// durations and bools as the config file's YAML reads them (parseBool). The error says only
// what was expected; callers name the source. Numbers, durations, bools and
// secrets are read without surrounding white space, as *_file reads a
// secret: a Kubernetes Secret made from a file gives a variable its
// trailing newline, which made another key (and cache secret).
func setString(v reflect.Value, s string) error {
	switch kind := kindName(v); kind {
	case "duration":
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return errExpected[kind]
		}
		v.SetInt(int64(d))
	case "bool":
		b, ok := parseBool(strings.TrimSpace(s))
		if !ok {
			return errExpected[kind]
		}
		v.SetBool(b)
	case "int":
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return errExpected[kind]
		}
		v.SetInt(int64(n))
	case "number":
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || !finite(f) {
			return errExpected[kind]
		}
		v.SetFloat(f)
	case "list":
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		if v.Type() == reflect.TypeFor[Secret]() {
			s = strings.TrimSpace(s)
		}
		v.SetString(s)
	}
	return nil
}

// formatValue is the inverse of setString, for showing defaults. Strings go
// through fmt, so that a Secret shows as ***.
func formatValue(v reflect.Value) string {
	switch kindName(v) {
	case "duration":
		return time.Duration(v.Int()).String()
	case "number":
		return strconv.FormatFloat(v.Float(), 'f', -1, 64)
	case "list":
		return strings.Join(v.Interface().([]string), ",")
	}
	return fmt.Sprint(v.Interface())
}

// applyEnv sets every setting whose variable lookupEnv finds. An empty
// variable counts as unset, so that a compose file or manifest may list a
// variable without a value. All malformed variables are reported together.
func applyEnv(c *Config, lookupEnv func(string) (string, bool)) error {
	var errs []error
	for _, s := range settings(c) {
		val, ok := lookupEnv(s.env())
		if !ok || val == "" {
			continue
		}
		if err := setString(s.value, val); err != nil {
			// Only non-string settings can fail, so the value is never a secret.
			errs = append(errs, fmt.Errorf("%s=%q is not a valid %s for %s: %w", s.env(), val, kindName(s.value), s.key, err))
		}
	}
	return errors.Join(errs...)
}

// parseBool reads a bool in the environment and on the command line: as
// yaml.v3 reads one into a bool in the config file (true and false, and
// YAML 1.1's yes/no, on/off and y/n, each in lower case, capitalized or in
// upper case), and as strconv.ParseBool does (1, 0, t, f). "off" was false
// in the file and an error in the environment.
func parseBool(s string) (value, ok bool) {
	switch s {
	case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y":
		return true, true
	case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N":
		return false, true
	}
	b, err := strconv.ParseBool(s)
	return b, err == nil
}

// CheckEnv returns an error naming each variable of environ (as
// os.Environ gives it) that starts with EnvPrefix but is no setting's, with
// the name it most likely meant: a misspelled TWOSELL_JUHE_DAILY_BUDGET
// would leave the budget unset without a word, as an unknown key in the
// config file would, which is an error too.
func CheckEnv(environ []string) error {
	known := map[string]bool{EnvConfigFile: true}
	var names []string
	for _, s := range settings(new(Config)) {
		known[s.env()] = true
		names = append(names, s.env())
	}
	var errs []error
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || known[name] || serviceLink.MatchString(name) {
			continue
		}
		msg := "unknown environment variable " + name
		if near := nearest(name, names); near != "" {
			msg += " (did you mean " + near + "?)"
		}
		errs = append(errs, errors.New(msg+"; each setting is "+EnvPrefix+"<SECTION>_<KEY>, such as TWOSELL_JUHE_DAILY_BUDGET for juhe.daily_budget (README's Configuration lists every setting; \"twosell run --print-config\" prints them)"))
	}
	return errors.Join(errs...)
}

// serviceLink matches the variables Kubernetes gives a pod for each Service
// of its namespace (enableServiceLinks, on by default): for a Service named
// twosell or twosell-*, TWOSELL_SERVICE_HOST, TWOSELL_SIM_PORT_8088_TCP, …
// They are no setting's, and no typo either.
var serviceLink = regexp.MustCompile(`^TWOSELL(_[A-Z0-9_]+)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$`)

// nearest returns the name of names closest to s by edit distance, if it
// is close enough to be a misspelling of it (at most a third of s's
// length, and at most 4 edits), else "".
func nearest(s string, names []string) string {
	best, bestD := "", min(4, len(s)/3)+1
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
