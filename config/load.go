package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Load reads cmd's configuration, validates it, and returns it with the
// positional arguments. It parses args with a new flag.FlagSet named cmd,
// whose errors and usage go to stderr; use LoadWith to add flags of the
// command's own.
//
// Each layer overrides the one before: Default, the YAML file (--config, else
// TWOSELL_CONFIG), the environment through lookupEnv (os.LookupEnv in
// production; nil reads none), and the flags given on the command line. Then
// juhe.key_file, juhe.openid_file and kafka.sasl.password_file are read and
// the result is validated with Validate(cmd).
//
// -h or --help prints the usage and returns flag.ErrHelp. A flag error has
// already been printed with the usage when it is returned.
func Load(cmd string, args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (*Config, []string, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return LoadWith(cmd, fs, args, lookupEnv)
}

// LoadWith is Load on a FlagSet of the caller's, which may already hold the
// command's own flags (such as query's --date): LoadWith registers cmd's
// configuration flags on it, replaces fs.Usage with one that lists every flag
// on fs, and parses args. Read the caller's flags after it returns. Flags and
// positional arguments may be interleaved; "--" ends the flags. When the
// configuration is not valid, the positional arguments come back (non-nil)
// with the error, for the command to check its usage first.
//
// cmd must be one with configuration flags: "run", "query", "replay",
// "ledger" or "gen". The caller's flags must not reuse their names (the flag
// package panics), nor --config.
func LoadWith(cmd string, fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) (*Config, []string, error) {
	cfg, positional, err := LoadUnvalidated(cmd, fs, args, lookupEnv)
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.Validate(cmd); err != nil {
		// The positional arguments, never nil here: a command may check
		// them first.
		return nil, append([]string{}, positional...), FlagsBlamed(cmd, fs, err)
	}
	return cfg, positional, nil
}

// LoadUnvalidated is LoadWith without the validation, for a command that
// adjusts the configuration by its own flags first (replay's dead-letter
// topic) and then validates it (Validate, ValidateNoCalls).
func LoadUnvalidated(cmd string, fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) (*Config, []string, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	cl, err := addFlags(cmd, fs)
	if err != nil {
		return nil, nil, err
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, nil, err
	}

	cfg := Default()
	path := cl.configFile
	if path == "" {
		path, _ = lookupEnv(EnvConfigFile)
	}
	if path != "" {
		if err := loadFile(&cfg, path); err != nil {
			return nil, nil, err
		}
	}
	if err := applyEnv(&cfg, lookupEnv); err != nil {
		return nil, nil, err
	}
	cl.apply(&cfg)
	if err := readSecretFiles(&cfg); err != nil {
		return nil, nil, err
	}
	return &cfg, positional, nil
}

// loadFile decodes the YAML file at path over c: keys it sets replace c's,
// keys it leaves out keep theirs. An unknown key is an error, so that a typo
// does not silently leave a default in force.
func loadFile(c *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	// Checked on the file's YAML tree before it is decoded; a tree that
	// does not parse is the decoder's to explain.
	var root yaml.Node
	if yaml.Unmarshal(data, &root) == nil && len(root.Content) > 0 {
		if err := checkTopLevel(path, root.Content[0]); err != nil {
			return err
		}
		if err := checkWholeNumbers(path, root.Content[0]); err != nil {
			return err
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file sets nothing
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return explainTypeError(path, data, te)
		}
		// yaml quotes what it could not read, which may be a secret: an
		// unquoted password that starts with * is read as an alias
		// ("unknown anchor 'Hunter2' referenced").
		msg := scrubQuoted(err.Error())
		if strings.Contains(msg, "anchor") || strings.Contains(msg, "alias") {
			msg += " (a value that starts with * or & is read as a YAML alias or anchor: quote it)"
		}
		return fmt.Errorf("config file %s: %s", path, msg)
	}
	// A second document would be ignored; say so instead.
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: holds more than one YAML document; twosell reads one", path)
	}
	return nil
}

// checkTopLevel refuses a file that is not a mapping of sections: a list
// or a lone value was "cannot unmarshal !!seq into config.Config", a Go
// type's name and no word of what the file should hold (a walkthrough).
func checkTopLevel(path string, top *yaml.Node) error {
	var what string
	switch {
	case top.Kind == yaml.MappingNode, top.Tag == "!!null":
		return nil
	case top.Kind == yaml.SequenceNode:
		what = "a list"
	default:
		what = "a single value"
	}
	var sections []string
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if name, ok := yamlKey(t.Field(i)); ok {
			sections = append(sections, name+":")
		}
	}
	return fmt.Errorf("config file %s: line %d: the file holds %s; it should hold the sections of the configuration, "+
		"each a key at the start of a line (%s) with its settings indented below it",
		path, top.Line, what, strings.Join(sections, ", "))
}

// checkWholeNumbers refuses a fraction where a whole number is wanted: the
// YAML decoder cuts 99.5 to 99 (juhe.daily_budget, say) without a word,
// which the environment and the flags refuse.
func checkWholeNumbers(path string, top *yaml.Node) error {
	ints := map[string]bool{}
	for _, st := range settings(new(Config)) {
		ints[st.key] = kindName(st.value) == "int"
	}
	var errs []error
	var visit func(n *yaml.Node, prefix string)
	visit = func(n *yaml.Node, prefix string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := joinKey(prefix, k.Value)
			if ints[key] && v.Kind == yaml.ScalarNode && v.Tag == "!!float" {
				if f, err := strconv.ParseFloat(v.Value, 64); err != nil || f != math.Trunc(f) {
					errs = append(errs, fmt.Errorf("config file %s: line %d: %s: %s is not a whole number; %w", path, v.Line, key, v.Value, errExpected["int"]))
				}
			}
			visit(v, key)
		}
	}
	visit(top, "")
	return errors.Join(errs...)
}

var (
	unknownFieldRE = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)
	typeMismatchRE = regexp.MustCompile(`^line (\d+): (cannot unmarshal .*)$`)
	duplicateKeyRE = regexp.MustCompile(`^line (\d+): mapping key .* already defined at line (\d+)$`)
	quotedRE       = regexp.MustCompile("`[^`]*`|'[^']*'|\"[^\"]*\"")
)

// scrubQuoted leaves the quoted parts of a yaml message out: the values it
// could not read.
func scrubQuoted(msg string) string { return quotedRE.ReplaceAllString(msg, "`…`") }

// holdsSecret reports whether key is a secret setting, or a section with
// one inside: a type error there may quote the secret's value.
func holdsSecret(key string) bool {
	found := false
	walk(reflect.ValueOf(Default()), "", func(k string, v reflect.Value) {
		if v.Type() == reflect.TypeFor[Secret]() && (k == key || key == "" || strings.HasPrefix(k, key+".")) {
			found = true
		}
	})
	return found
}

// explainTypeError rewrites yaml's messages, which name Go types, in terms of
// the file's keys: "line 5: unknown key kafka.brokerz; valid keys in kafka:
// …" and "line 9: juhe.retries: cannot unmarshal !!str `x` into int".
func explainTypeError(path string, data []byte, te *yaml.TypeError) error {
	// Go type name, as yaml prints it, → the section's key and type.
	type section struct {
		key string
		typ reflect.Type
	}
	rt := reflect.TypeFor[Config]()
	sections := map[string]section{rt.String(): {"", rt}}
	walk(reflect.New(rt).Elem(), "", func(key string, v reflect.Value) {
		if v.Kind() == reflect.Struct {
			sections[v.Type().String()] = section{key, v.Type()}
		}
	})
	keyAtLine, valuesAtLine := linesToKeys(data)

	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
			if sec, ok := sections[m[3]]; ok {
				errs = append(errs, fmt.Errorf("config file %s: line %s: unknown key %s; valid keys%s: %s",
					path, m[1], joinKey(sec.key, m[2]), inSection(sec.key), strings.Join(childKeys(sec.typ), ", ")))
				continue
			}
		}
		if m := duplicateKeyRE.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			if key := keyAtLine[line]; key != "" { // a key is no secret; its value is not quoted
				errs = append(errs, fmt.Errorf("config file %s: line %s: %s is set twice (first at line %s); keep one", path, m[1], key, m[2]))
				continue
			}
		}
		if m := typeMismatchRE.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			// One of several keys on the value's line ({timeout: 5}), or,
			// as a value may sit below its key, as list items do, the
			// nearest key at or above the value.
			key := mismatchedKey(valuesAtLine[line], m[2])
			for ; line > 0; line-- {
				if key == "" {
					key = keyAtLine[line]
				}
				if key != "" {
					what := m[2]
					if holdsSecret(key) {
						what = scrubQuoted(what)
					}
					if v, ok := settingsByKey(new(Config))[key]; ok { // say what would be valid, as the environment's errors do
						if kindName(v.value) == "bool" { // YAML's: 1 and 0 are numbers there (a walkthrough)
							what += "; " + errExpectedBoolInFile.Error()
						} else if e := errExpected[kindName(v.value)]; e != nil {
							what += "; " + e.Error()
						} else if kindName(v.value) == "list" {
							what += "; expected a list, such as [a, b] or one item per line under the key"
						}
					}
					errs = append(errs, fmt.Errorf("config file %s: line %s: %s: %s", path, m[1], key, what))
					break
				}
			}
			if line > 0 {
				continue
			}
		}
		errs = append(errs, fmt.Errorf("config file %s: %s", path, scrubQuoted(msg)))
	}
	return errors.Join(errs...)
}

func joinKey(section, name string) string {
	if section == "" {
		return name
	}
	return section + "." + name
}

func inSection(section string) string {
	if section == "" {
		return " at the top level"
	}
	return " in " + section
}

// childKeys lists the YAML keys directly inside the section of type t.
func childKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if name, ok := yamlKey(t.Field(i)); ok {
			keys = append(keys, name)
		}
	}
	return keys
}

// linesToKeys maps each line of a YAML document to the dotted key written
// on it, so that a type error, which yaml reports by the value's line, can
// name its key. The first key on a line wins: in "breaker: {failures: x}"
// that is juhe.breaker, close enough to find the mistake.
//
// values maps each line to the settings whose values start on it, in order,
// with their value's node: a line in YAML's flow style, such as
// "juhe: {timeout: 5, retries: x}", holds several (mismatchedKey).
func linesToKeys(data []byte) (keys map[int]string, values map[int][]keyedValue) {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return nil, nil
	}
	keys, values = map[int]string{}, map[int][]keyedValue{}
	var visit func(n *yaml.Node, key string)
	visit = func(n *yaml.Node, key string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				visit(c, key)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				child := joinKey(key, k.Value)
				if _, seen := keys[k.Line]; !seen {
					keys[k.Line] = child
				}
				v := n.Content[i+1]
				values[v.Line] = append(values[v.Line], keyedValue{child, v})
				visit(v, child)
			}
		}
	}
	visit(&doc, "")
	return keys, values
}

// keyedValue is a setting's key and its value's node.
type keyedValue struct {
	key  string
	node *yaml.Node
}

// mismatchRE splits yaml's "cannot unmarshal !!int `5` into time.Duration".
var mismatchRE = regexp.MustCompile("^cannot unmarshal (!!\\w+) `(.*)` into (.+)$")

// mismatchedKey picks, of the settings whose values start on one line, the
// one a type mismatch (what, yaml's text) is about: the value of that YAML
// tag and text, whose setting has that Go type. "" when none, or when more
// than one fits.
func mismatchedKey(values []keyedValue, what string) string {
	m := mismatchRE.FindStringSubmatch(what)
	if m == nil || len(values) < 2 {
		return ""
	}
	settings := settingsByKey(new(Config))
	found := ""
	for _, kv := range values {
		st, ok := settings[kv.key]
		if !ok || kv.node.ShortTag() != m[1] || !shownAs(kv.node, m[2]) || st.value.Type().String() != m[3] {
			continue
		}
		if found != "" {
			return ""
		}
		found = kv.key
	}
	return found
}

// shownAs reports whether yaml's error would show n's value as shown: a
// scalar's text, cut to "..." when long; any text for a list or a mapping.
func shownAs(n *yaml.Node, shown string) bool {
	if n.Kind != yaml.ScalarNode {
		return true
	}
	if cut, ok := strings.CutSuffix(shown, "..."); ok {
		return strings.HasPrefix(n.Value, cut)
	}
	return n.Value == shown
}

// readSecretFiles reads juhe.key_file, juhe.openid_file,
// kafka.sasl.password_file and cache.secret_file into the secrets they stand
// for. The errors name the keys and the path, never the content.
func readSecretFiles(c *Config) error {
	var errs []error
	for _, s := range secretsInFiles(c) {
		fileKey := s.key + "_file"
		switch {
		case s.file == "":
			continue
		case *s.value != "":
			errs = append(errs, fmt.Errorf("%s and %s are both set; set only one (in the config file, %s or %s)",
				s.key, fileKey, envName(s.key), envName(fileKey)))
			continue
		}
		data, err := os.ReadFile(s.file)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is named below already
			}
			errs = append(errs, fmt.Errorf("%s: cannot read %q: %w", fileKey, s.file, err))
			continue
		}
		v := strings.TrimSpace(string(data))
		if v == "" {
			errs = append(errs, fmt.Errorf("%s: %q is empty", fileKey, s.file))
			continue
		}
		*s.value = Secret(v)
	}
	return errors.Join(errs...)
}

// secretInFile is a secret that may be read from a file instead.
type secretInFile struct {
	key   string // the secret's; its file's is key + "_file"
	value *Secret
	file  string
}

// secretsInFiles returns c's secrets that may be read from files, with the
// files set.
func secretsInFiles(c *Config) []secretInFile {
	return []secretInFile{
		{"juhe.key", &c.Juhe.Key, c.Juhe.KeyFile},
		{"juhe.openid", &c.Juhe.OpenID, c.Juhe.OpenIDFile},
		{"kafka.sasl.password", &c.Kafka.SASL.Password, c.Kafka.SASL.PasswordFile},
		{"cache.secret", &c.Cache.Secret, c.Cache.SecretFile},
	}
}

// parseInterspersed parses args with fs, collecting positional arguments
// wherever they are, so that "query 17312345678 --date 20240102" works as
// well as flags first. flag.Parse alone stops at the first positional one.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := ParseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := args[:len(args)-len(rest)]
		if len(rest) == 0 || (len(consumed) > 0 && consumed[len(consumed)-1] == "--") {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// FlagError is a command line that its flag set could not parse (an unknown
// flag, a value of the wrong kind): a usage error, which the flag set has
// already printed, with the flags' usage.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// ParseFlags is fs.Parse, its errors other than flag.ErrHelp as FlagErrors.
// A command's own flags (dev, sim, bench, broker: no setting's) get the
// usage and the errors the settings' flags have: "--latency", each flag's
// default, and what a bad value should have been, not Go's "parse error"
// (found by a walkthrough).
func ParseFlags(fs *flag.FlagSet, args []string) error {
	plain := true
	fs.VisitAll(func(f *flag.Flag) {
		if _, ok := f.Value.(*settingFlag); ok {
			plain = false
		}
	})
	if plain {
		fs.VisitAll(func(f *flag.Flag) {
			if g, ok := f.Value.(flag.Getter); ok {
				if kind := getterKind(g); kind != "" {
					f.Value = explainedValue{g, kind}
				}
			}
		})
		fs.Usage = func() { printUsage(fs, "twosell "+fs.Name()+" [flags]", false) }
	}
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return &FlagError{err}
	}
	return err
}

// getterKind is the kind of a flag of the flag package's own types whose
// errors say only "parse error": errExpected's key, or "" for others.
func getterKind(g flag.Getter) string {
	switch g.Get().(type) {
	case time.Duration:
		return "duration"
	case int, int64, uint, uint64:
		return "int"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return ""
}

// explainedValue is a flag's value whose parse errors say what was
// expected.
type explainedValue struct {
	flag.Getter
	kind string // getterKind
}

func (v explainedValue) Set(s string) error {
	if err := v.Getter.Set(s); err != nil {
		if v.kind == "bool" {
			return errors.New("expected true or false")
		}
		return errExpected[v.kind]
	}
	return nil
}

// IsBoolFlag lets a bool flag be given without a value, as before.
func (v explainedValue) IsBoolFlag() bool { return v.kind == "bool" }
