package config

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// A whole number is printed as one, a fraction as one, and both load back.
// Found by review: --print-config printed "qps: !!float 0".
func TestMarshalYAMLWholeNumbers(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Juhe.QPS, c.Juhe.PricePerCall = 0, 0.4
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	mustContain(t, text, "qps: 0\n", "price_per_call: 0.4\n")
	if strings.Contains(text, "!!") {
		t.Errorf("a YAML tag in the printed configuration:\n%s", text)
	}
	c.Juhe.QPS = 20
	if out, err = yaml.Marshal(c); err != nil {
		t.Fatal(err)
	}
	mustContain(t, string(out), "qps: 20\n")
	back := Default()
	if err := yaml.Unmarshal(out, &back); err != nil || back.Juhe.QPS != 20 || back.Juhe.PricePerCall != 0.4 {
		t.Errorf("loaded back qps %v, price %v (%v)", back.Juhe.QPS, back.Juhe.PricePerCall, err)
	}
}
