package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"run", "query"} {
		for _, arg := range []string{"-h", "--help"} {
			t.Run(cmd+" "+arg, func(t *testing.T) {
				t.Parallel()
				var out bytes.Buffer
				_, _, err := Load(cmd, []string{arg}, withKey.lookup, &out)
				if !errors.Is(err, flag.ErrHelp) {
					t.Fatalf("err = %v, want flag.ErrHelp", err)
				}
				help := out.String()
				mustContain(t, help, "Usage: twosell "+cmd, "--config path", "TWOSELL_CONFIG",
					"TWOSELL_<SECTION>_<KEY>", "config file")
				def := Default()
				byKey := settingsByKey(&def)
				for _, f := range commandFlags[cmd] {
					s := byKey[f.key]
					mustContain(t, help, "--"+f.name, "env "+s.env())
					if d := formatValue(s.value); d != "" {
						mustContain(t, help, "default "+d)
					}
				}
			})
		}
	}
}

func TestHelpListsCallersFlags(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	fs.SetOutput(&out)
	fs.String("date", "", "check re-issue after this `yyyymmdd` date")
	_, _, err := LoadWith("query", fs, []string{"--help"}, withKey.lookup)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	mustContain(t, out.String(), "Usage: twosell query [flags] MOBILE", "--date yyyymmdd", "--juhe-mode")
}

func TestQueryFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		positional []string
		date       string
		mode       string
		err        string // in the error and the usage printed, if any
	}{
		{name: "flags first", args: []string{"--date", "20240102", "--juhe-mode", "md5", "17312345678"},
			positional: []string{"17312345678"}, date: "20240102", mode: "md5"},
		{name: "interleaved", args: []string{"17312345678", "--date=20240102", "--juhe-mode", "sha256"},
			positional: []string{"17312345678"}, date: "20240102", mode: "sha256"},
		{name: "double dash", args: []string{"--juhe-mode", "md5", "--", "--date", "x"},
			positional: []string{"--date", "x"}, mode: "md5"},
		{name: "run-only flag", args: []string{"--group", "g", "17312345678"},
			err: "flag provided but not defined: -group"},
		{name: "another run-only flag", args: []string{"--on-unavailable=emit"},
			err: "flag provided but not defined: -on-unavailable"},
		{name: "bad duration", args: []string{"--juhe-timeout", "5"},
			err: `invalid value "5" for flag -juhe-timeout: expected a Go duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			fs := flag.NewFlagSet("query", flag.ContinueOnError)
			fs.SetOutput(&out)
			date := fs.String("date", "", "date")
			c, positional, err := LoadWith("query", fs, tt.args, withKey.lookup)
			if tt.err != "" {
				if err == nil {
					t.Fatal("no error")
				}
				mustContain(t, err.Error(), tt.err)
				mustContain(t, out.String(), tt.err, "Usage: twosell query")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(positional, tt.positional) || *date != tt.date || string(c.Juhe.Mode) != tt.mode {
				t.Errorf("positional %q date %q mode %q; want %q %q %q", positional, *date, c.Juhe.Mode, tt.positional, tt.date, tt.mode)
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	_, _, err := Load("serve", nil, withKey.lookup, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `"serve"`) {
		t.Fatalf("err = %v", err)
	}
}
