package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDefaultIsValid(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"run", "query"} {
		t.Run(cmd, func(t *testing.T) {
			c := Default()
			c.Juhe.Key = "k"
			if err := c.Validate(cmd); err != nil {
				t.Fatalf("Default with a key: %v", err)
			}
			if got := c.Input.Location().String(); got != "Asia/Shanghai" {
				t.Errorf("Location = %s, want Asia/Shanghai", got)
			}
		})
	}
}

func TestDefaultSlicesAreFresh(t *testing.T) {
	t.Parallel()
	a := Default()
	a.Kafka.Brokers[0] = "changed:1"
	if b := Default(); b.Kafka.Brokers[0] != "127.0.0.1:9092" {
		t.Fatalf("Default shares its brokers slice: %v", b.Kafka.Brokers)
	}
}

// The example file is what the README points to: it must load, hold every
// key, and show the defaults, so that it cannot drift from the code.
func TestExampleFile(t *testing.T) {
	t.Parallel()
	const path = "testdata/twosell.yaml"
	got, _, err := Load("run", []string{"--config", path}, withKey.lookup, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Juhe.Key = "test-key"
	got.Input.loc, want.Input.loc = nil, nil
	got.Juhe.budgetLoc, want.Juhe.budgetLoc = nil, nil
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("example file differs from Default:\n got %+v\nwant %+v", *got, want)
	}

	t.Run("every key", func(t *testing.T) {
		data := readFile(t, path)
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		var inFile []string
		var visit func(n *yaml.Node, key string)
		visit = func(n *yaml.Node, key string) {
			switch n.Kind {
			case yaml.DocumentNode:
				visit(n.Content[0], key)
			case yaml.MappingNode:
				for i := 0; i+1 < len(n.Content); i += 2 {
					visit(n.Content[i+1], joinKey(key, n.Content[i].Value))
				}
			default:
				inFile = append(inFile, key)
			}
		}
		visit(&doc, "")
		var c Config
		var all []string
		for _, s := range settings(&c) {
			all = append(all, s.key)
		}
		slices.Sort(inFile)
		slices.Sort(all)
		if !slices.Equal(inFile, all) {
			t.Errorf("keys in %s:\n %v\nsettings:\n %v", path, inFile, all)
		}
	})
}

// Every setting's doc comment states its default, and the stated default
// is the one Default returns, so that the README generated from them is
// right.
func TestDocCommentsStateDefaults(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	// type name → field name → its default, formatted.
	defaults := map[string]map[string]reflect.Value{}
	def := Default()
	var collect func(v reflect.Value)
	collect = func(v reflect.Value) {
		fields := map[string]reflect.Value{}
		defaults[v.Type().Name()] = fields
		for i := range v.NumField() {
			if _, ok := yamlKey(v.Type().Field(i)); !ok {
				continue
			}
			fields[v.Type().Field(i).Name] = v.Field(i)
			if v.Field(i).Kind() == reflect.Struct {
				collect(v.Field(i))
			}
		}
	}
	collect(reflect.ValueOf(def))

	checked := 0
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok || !ts.Name.IsExported() {
			return false
		}
		for _, field := range st.Fields.List {
			for _, name := range field.Names {
				if !name.IsExported() {
					continue
				}
				doc := field.Doc.Text()
				if doc == "" {
					t.Errorf("%s.%s has no doc comment", ts.Name, name)
					continue
				}
				v, ok := defaults[ts.Name.Name][name.Name]
				if !ok || v.Kind() == reflect.Struct {
					continue // a section: it has no default of its own
				}
				checked++
				_, after, ok := strings.Cut(doc, "Default ")
				if !ok {
					t.Errorf("%s.%s: doc comment states no default:\n%s", ts.Name, name, doc)
					continue
				}
				stated := strings.Fields(after)[0]
				stated = strings.TrimRight(stated, ".,")
				stated = strings.Trim(stated, `[]"`)
				if stated == "empty" {
					stated = ""
				}
				if !sameValue(v, stated) {
					t.Errorf("%s.%s: doc says default %q, Default has %q", ts.Name, name, stated, formatValue(v))
				}
			}
		}
		return false
	})
	var c Config
	if want := len(settings(&c)); checked != want {
		t.Errorf("checked %d documented defaults, want %d (one per setting)", checked, want)
	}
}

func sameValue(v reflect.Value, stated string) bool {
	if v.Type() == durationType {
		d, err := time.ParseDuration(stated)
		return err == nil && d == time.Duration(v.Int())
	}
	return formatValue(v) == stated
}

// Every setting is tagged the same for YAML and JSON, so a Config logged as
// JSON reads like the file.
func TestTagsMatch(t *testing.T) {
	t.Parallel()
	var check func(t reflect.Type)
	check = func(rt reflect.Type) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			if !f.IsExported() {
				continue
			}
			y, j := f.Tag.Get("yaml"), f.Tag.Get("json")
			if y == "" || y != j {
				t.Errorf("%s.%s: yaml tag %q, json tag %q", rt.Name(), f.Name, y, j)
			}
			if f.Type.Kind() == reflect.Struct {
				check(f.Type)
			}
		}
	}
	check(reflect.TypeFor[Config]())
}

func TestSlogLevel(t *testing.T) {
	t.Parallel()
	for _, level := range validLogLevels {
		t.Run(level, func(t *testing.T) {
			got := Log{Level: level}.SlogLevel()
			if !strings.EqualFold(got.String(), level) {
				t.Errorf("SlogLevel(%q) = %v", level, got)
			}
		})
	}
}
