package main

import (
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/processor"
)

// Found by review. README (Configuration): "Unknown keys and bad values are
// errors that name the key and say what would be valid", and `run
// --print-config` "prints the merged, validated configuration ...: what the
// process would run with". A field-name setting that collided with another
// (output.field equal to input.mobile_field, input.date_field equal to the
// default input.id_field, ...) passed config.Validate (and so
// --print-config, which deploy/validate relies on), and was refused only
// later, by processor.NewCodec inside `run`, after the ledger had been
// loaded, with a message that named no setting.
func TestCollidingFieldNamesAreAConfigError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		env    map[string]string
		wanted []string // one of the settings the error must name
	}{
		{"output.field = input.mobile_field", map[string]string{"TWOSELL_OUTPUT_FIELD": "mobile"}, []string{"output.field", "input.mobile_field"}},
		{"input.date_field = input.id_field", map[string]string{"TWOSELL_INPUT_DATE_FIELD": "event_id"}, []string{"input.date_field", "input.id_field"}},
		{"input.id_field = input.mobile_field", map[string]string{"TWOSELL_INPUT_ID_FIELD": "mobile"}, []string{"input.id_field", "input.mobile_field"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"TWOSELL_JUHE_KEY": testKey}
			for k, v := range tc.env {
				env[k] = v
			}
			lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
			var stderr strings.Builder
			cfg, _, loadErr := config.Load("run", nil, lookup, &stderr)
			var err error = loadErr
			if loadErr == nil {
				// Validate accepted it: what run does next with it.
				pc, perr := processorConfig(cfg, nil, noop.NewTracerProvider(), slog.New(slog.DiscardHandler))
				if perr != nil {
					t.Fatal(perr)
				}
				_, err = processor.NewCodec(pc.Codec)
				if err == nil {
					t.Fatalf("the processor accepts %v", tc.env)
				}
				t.Errorf("config.Validate accepted %v (so `run --print-config` prints it as valid); the processor refuses it only at start, after the ledger loads: %v", tc.env, err)
			}
			named := false
			for _, key := range tc.wanted {
				named = named || strings.Contains(err.Error(), key)
			}
			if !named {
				t.Errorf("the error names none of the settings %v to fix: %v", tc.wanted, err)
			}
		})
	}
}
