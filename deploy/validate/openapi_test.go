package validate

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

// kedaModule is the directory of KEDA's Go module (a dependency of this
// module, pinned in go.mod), downloaded if need be.
var kedaModule = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/kedacore/keda/v2").Output()
	if err != nil {
		return "", fmt.Errorf("go mod download github.com/kedacore/keda/v2: %w", err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return "", fmt.Errorf("go mod download github.com/kedacore/keda/v2: %s %v", m.Error, err)
	}
	return m.Dir, nil
})

func kedaFile(t *testing.T, path string) []byte {
	t.Helper()
	dir, err := kedaModule()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// schema is the subset of OpenAPI v3 that CRDs use (structural schemas).
type schema struct {
	Type                 string             `json:"type"`
	Properties           map[string]*schema `json:"properties"`
	Required             []string           `json:"required"`
	Items                *schema            `json:"items"`
	AdditionalProperties json.RawMessage    `json:"additionalProperties"`
	Enum                 []any              `json:"enum"`
	Minimum              *float64           `json:"minimum"`
	Maximum              *float64           `json:"maximum"`
	MinLength            *int               `json:"minLength"`
	MaxLength            *int               `json:"maxLength"`
	Pattern              string             `json:"pattern"`
	Format               string             `json:"format"`
	Nullable             bool               `json:"nullable"`
	AnyOf                []*schema          `json:"anyOf"`
	PreserveUnknown      bool               `json:"x-kubernetes-preserve-unknown-fields"`
	IntOrString          bool               `json:"x-kubernetes-int-or-string"`
}

// crdSchema returns the openAPIV3Schema of version of a CRD file.
func crdSchema(t *testing.T, crd []byte, version string) *schema {
	t.Helper()
	var c struct {
		Spec struct {
			Group string `json:"group"`
			Names struct {
				Kind string `json:"kind"`
			} `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema *schema `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(crd, &c); err != nil {
		t.Fatalf("CRD: %v", err)
	}
	for _, v := range c.Spec.Versions {
		if v.Name == version && v.Schema.OpenAPIV3Schema != nil {
			return v.Schema.OpenAPIV3Schema
		}
	}
	t.Fatalf("the CRD of %s has no version %s", c.Spec.Names.Kind, version)
	return nil
}

// validate checks v (decoded from JSON) against s, as the API server's
// structural validation does, and rejects unknown fields as strict decoding
// (kubectl's --validate=strict) does. It returns every problem, each with
// its path.
func (s *schema) validate(path string, v any) []string {
	if v == nil {
		if s.Nullable {
			return nil
		}
		return []string{path + ": null"}
	}
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	if s.IntOrString {
		switch x := v.(type) {
		case string:
		case float64:
			if x != math.Trunc(x) {
				bad("%v is not an integer or a string", v)
			}
		default:
			bad("%v is not an integer or a string", v)
		}
		return errs
	}
	switch s.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			bad("want an object, have %T", v)
			return errs
		}
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				bad("missing required field %q", r)
			}
		}
		var extra *schema
		allowAny := s.PreserveUnknown
		if len(s.AdditionalProperties) > 0 {
			var b bool
			if json.Unmarshal(s.AdditionalProperties, &b) == nil {
				allowAny = allowAny || b
			} else if err := json.Unmarshal(s.AdditionalProperties, &extra); err != nil {
				bad("schema: additionalProperties: %v", err)
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch sub, ok := s.Properties[k]; {
			case ok:
				errs = append(errs, sub.validate(path+"."+k, m[k])...)
			case extra != nil:
				errs = append(errs, extra.validate(path+"."+k, m[k])...)
			case !allowAny:
				bad("unknown field %q", k)
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			bad("want an array, have %T", v)
			return errs
		}
		if s.Items != nil {
			for i, x := range a {
				errs = append(errs, s.Items.validate(fmt.Sprintf("%s[%d]", path, i), x)...)
			}
		}
	case "string":
		x, ok := v.(string)
		if !ok {
			bad("want a string, have %T %v", v, v)
			return errs
		}
		if s.MinLength != nil && len(x) < *s.MinLength {
			bad("%q is shorter than %d", x, *s.MinLength)
		}
		if s.MaxLength != nil && len(x) > *s.MaxLength {
			bad("%q is longer than %d", x, *s.MaxLength)
		}
		if s.Pattern != "" {
			if re, err := regexp.Compile(s.Pattern); err == nil && !re.MatchString(x) {
				bad("%q does not match %s", x, s.Pattern)
			}
		}
	case "integer", "number":
		x, ok := v.(float64)
		if !ok {
			bad("want a number, have %T %v", v, v)
			return errs
		}
		if s.Type == "integer" && x != math.Trunc(x) {
			bad("%v is not an integer", x)
		}
		if s.Format == "int32" && (x < math.MinInt32 || x > math.MaxInt32) {
			bad("%v is out of int32", x)
		}
		if s.Minimum != nil && x < *s.Minimum {
			bad("%v is below the minimum %v", x, *s.Minimum)
		}
		if s.Maximum != nil && x > *s.Maximum {
			bad("%v is above the maximum %v", x, *s.Maximum)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("want a boolean, have %T %v", v, v)
		}
	case "":
		// No type: anything (the schema says nothing more).
	default:
		bad("schema: unknown type %q", s.Type)
	}
	if len(s.Enum) > 0 && !slices.ContainsFunc(s.Enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		bad("%v is not one of %v", v, s.Enum)
	}
	return errs
}

// The validator itself: it must reject what the API server rejects, or the
// check of the ScaledObject proves nothing.
func TestSchemaValidator(t *testing.T) {
	var s schema
	if err := yaml.Unmarshal([]byte(`
type: object
required: [spec]
properties:
  spec:
    type: object
    required: [name]
    properties:
      name: {type: string, minLength: 1}
      count: {type: integer, format: int32, minimum: 0}
      mode: {type: string, enum: [a, b]}
      labels: {type: object, additionalProperties: {type: string}}
      port: {x-kubernetes-int-or-string: true, anyOf: [{type: integer}, {type: string}]}
      items: {type: array, items: {type: object, properties: {x: {type: boolean}}}}
`), &s); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		doc  string
		want string // a part of the first error; "" for none
	}{
		{`{"spec":{"name":"n","count":3,"mode":"a","labels":{"k":"v"},"port":"metrics","items":[{"x":true}]}}`, ""},
		{`{"spec":{"name":"n","port":9464}}`, ""},
		{`{}`, `missing required field "spec"`},
		{`{"spec":{"name":""}}`, "shorter than 1"},
		{`{"spec":{"name":"n","typo":1}}`, `unknown field "typo"`},
		{`{"spec":{"name":"n","count":-1}}`, "below the minimum"},
		{`{"spec":{"name":"n","count":1.5}}`, "not an integer"},
		{`{"spec":{"name":"n","mode":"c"}}`, "not one of"},
		{`{"spec":{"name":"n","labels":{"k":1}}}`, "want a string"},
		{`{"spec":{"name":"n","items":[{"y":true}]}}`, `unknown field "y"`},
		{`{"spec":{"name":"n","port":true}}`, "not an integer or a string"},
	} {
		var v any
		if err := json.Unmarshal([]byte(tt.doc), &v); err != nil {
			t.Fatal(err)
		}
		errs := s.validate("$", v)
		switch {
		case tt.want == "" && len(errs) > 0:
			t.Errorf("%s: %v, want valid", tt.doc, errs)
		case tt.want != "" && (len(errs) == 0 || !strings.Contains(errs[0], tt.want)):
			t.Errorf("%s: %v, want an error with %q", tt.doc, errs, tt.want)
		}
	}
}
