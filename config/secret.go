package config

import (
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"

	"go.yaml.in/yaml/v3"
)

// redacted is what every printed or marshaled form of a non-empty Secret
// shows.
const redacted = "***"

// Secret is a credential, such as the provider's key or openid. Every way of
// printing, logging or marshaling it shows *** (or "" when it is empty, so
// that a missing secret is still visible), so a Config can be logged whole.
// Only Reveal returns the value.
//
// Marshaled output is for display: loading it back yields the literal ***.
type Secret string

// Reveal returns the secret's value. Call it only where the value is sent to
// the provider.
func (s Secret) Reveal() string { return string(s) }

// String returns *** for a non-empty secret; fmt's %v, %s and %+v use it,
// including inside structs.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString returns the quoted String, for %#v.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// MarshalText returns String; encoders that fall back to text use it.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON returns String as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML returns String, for go.yaml.in/yaml/v3.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// LogValue returns String, so slog's handlers never see the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Every interface through which a Secret could be printed or encoded.
var (
	_ fmt.Stringer           = Secret("")
	_ fmt.GoStringer         = Secret("")
	_ encoding.TextMarshaler = Secret("")
	_ json.Marshaler         = Secret("")
	_ yaml.Marshaler         = Secret("")
	_ slog.LogValuer         = Secret("")
)
