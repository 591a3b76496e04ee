package config

import (
	"reflect"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/twosell/twosell/juhe"
)

// MarshalYAML shows c as the config file would set it: every key, durations
// as Go durations (5s, not 5000000000) and secrets as ***. It is what
// "twosell run --print-config" prints. The result loads back to c, except
// that its secrets read as the literal *** (see Secret).
func (c Config) MarshalYAML() (any, error) {
	c.Juhe.URL = ShownURL(c.Juhe.URL) // a password in it is shown as xxxxx
	// A secret read from its file is shown by the file alone: both set do
	// not load (found by review: a key_file's printed configuration said
	// "juhe.key and juhe.key_file are both set").
	for _, s := range secretsInFiles(&c) {
		if s.file != "" {
			*s.value = ""
		}
	}
	n := yamlNode(reflect.ValueOf(c))
	if c.Kafka.TransactionalID == "" {
		// What an exactly-once run would use (found by a walkthrough: it
		// printed "" only). Not the value itself: a file printed on one
		// machine and deployed on several would give them one id, and
		// each would fence the others' transactions.
		kafka := valueOf(n, "kafka")
		valueOf(kafka, "transactional_id").LineComment = "# empty: <group>-<hostname>, here " + c.Kafka.TransactionalIDOrDefault()
	}
	return n, nil
}

// valueOf is the value of key in mapping m.
func valueOf(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	panic("config: no key " + key) // the keys are the program's own
}

// yamlNode builds the YAML node of a section or a setting, by the same
// rules the environment and the flags parse them with (formatValue).
func yamlNode(v reflect.Value) *yaml.Node {
	if v.Kind() == reflect.Struct {
		m := &yaml.Node{Kind: yaml.MappingNode}
		for i := range v.NumField() {
			name, ok := yamlKey(v.Type().Field(i))
			if !ok {
				continue
			}
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: name}, yamlNode(v.Field(i)))
		}
		return m
	}
	switch kindName(v) {
	case "list":
		seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for i := range v.Len() {
			seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v.Index(i).String()})
		}
		return seq
	case "bool":
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v.Bool())}
	case "int":
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}
	case "number":
		// A whole number is written as one: tagged !!float, the encoder
		// wrote "qps: !!float 0" (found by review). It loads back into the
		// float all the same.
		val, tag := formatValue(v), "!!float"
		if _, err := strconv.ParseInt(val, 10, 64); err == nil {
			tag = "!!int"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: val}
	}
	// Strings, durations and secrets (which format as ***).
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: formatValue(v)}
}

// ShortSecrets returns the keys of the secrets set shorter than n bytes.
// Logs, errors and spans mask every occurrence of a secret, so a short one
// (a password "pw") garbles them, and where the mask lands shows it.
func (c *Config) ShortSecrets(n int) []string {
	var out []string
	for _, s := range secretSettings(c) {
		if v := s.value.String(); v != "" && len(v) < n {
			out = append(out, s.key)
		}
	}
	if v := urlCredential(c.Juhe.URL); v != "" && len(v) < n { // a gateway's, masked as the others are
		out = append(out, "juhe.url")
	}
	return out
}

// IsSecretKey reports whether key is the key of a setting that can hold a
// secret, as ShortSecrets names it: a Secret setting, or juhe.url (a
// gateway's credential). The keys are the program's own text, the same
// whatever the configuration: a log line may show them as they are.
func IsSecretKey(key string) bool {
	if key == "juhe.url" {
		return true
	}
	c := Default()
	for _, s := range secretSettings(&c) {
		if s.key == key {
			return true
		}
	}
	return false
}

// secretSettings returns c's Secret settings, in declaration order.
func secretSettings(c *Config) []setting {
	var out []setting
	for _, s := range settings(c) {
		if s.value.Type() == reflect.TypeFor[Secret]() {
			out = append(out, s)
		}
	}
	return out
}

// Secrets returns the value of every secret set in c — each Secret setting
// (the provider's key and openid, the Kafka SASL password, the cache
// secret), the AES key derived from the openid and the cache secret derived
// from the key — for a redactor to mask wherever they might turn
// up. OAUTHBEARER tokens are not here: they live in kafka.sasl.token_file
// and change while twosell runs, so whoever reads them adds them.
func (c *Config) Secrets() []string {
	var out []string
	for _, s := range secretSettings(c) {
		if s.value.String() != "" {
			out = append(out, s.value.String())
		}
	}
	if c.Juhe.OpenID != "" {
		out = append(out, string(juhe.AESKey(c.Juhe.OpenID.Reveal())))
	}
	if c.Cache.Secret == "" && c.Juhe.Key != "" {
		out = append(out, c.CacheSecret()) // derived from the key
	}
	if p := urlCredential(c.Juhe.URL); p != "" {
		out = append(out, p) // a gateway's, in juhe.url
	}
	return out
}
