package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestSecretNeverShown(t *testing.T) {
	t.Parallel()
	const key, openid = "k-5ecret-value", "o-5ecret-value"
	c := Default()
	c.Juhe.Key = key
	c.Juhe.OpenID = openid
	if err := c.Validate("run"); err != nil {
		t.Fatal(err)
	}

	yamlOut, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	jsonOut, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("config", "config", c, "key", c.Juhe.Key)
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("config", "config", c, "key", c.Juhe.Key)

	outputs := map[string]string{
		"%v %+v %#v":        fmt.Sprintf("%v %+v %#v", c, c, c),
		"pointer":           fmt.Sprintf("%v %+v %#v", &c, &c, &c),
		"section":           fmt.Sprintf("%v %+v %#v", c.Juhe, c.Juhe, c.Juhe),
		"secret verbs":      fmt.Sprintf("%v %s %q %x %X %#v", c.Juhe.Key, c.Juhe.Key, c.Juhe.Key, c.Juhe.Key, c.Juhe.Key, c.Juhe.Key),
		"fmt.Sprint":        fmt.Sprint(c, c.Juhe.OpenID),
		"yaml":              string(yamlOut),
		"json":              string(jsonOut),
		"slog json":         jsonLog.String(),
		"slog text":         textLog.String(),
		"text marshal":      string(must1(c.Juhe.Key.MarshalText())),
		"section yaml/json": string(must1(yaml.Marshal(c.Juhe))) + string(must1(json.Marshal(c.Juhe))),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			for _, secret := range []string{key, openid, "5ecret"} {
				if strings.Contains(out, secret) {
					t.Errorf("shows %q:\n%s", secret, out)
				}
			}
			if !strings.Contains(out, "***") {
				t.Errorf("no *** in:\n%s", out)
			}
		})
	}
	if c.Juhe.Key.Reveal() != key {
		t.Errorf("Reveal = %q", c.Juhe.Key.Reveal())
	}
}

func TestSecretEmpty(t *testing.T) {
	t.Parallel()
	var s Secret
	j, _ := json.Marshal(s)
	y, _ := yaml.Marshal(s)
	if got := fmt.Sprintf("%v|%#v|%s|%s", s, s, j, y); got != `|""|""|""`+"\n" {
		t.Errorf("empty secret prints %q", got)
	}
}

func must1[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
