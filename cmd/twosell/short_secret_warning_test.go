package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/twosell/twosell/juhe"
)

// freshSecrets gives the test a redactor of its own: a short secret added
// to the process-wide one would mask its text ("op": "topic") in every test
// that runs after.
func freshSecrets(t *testing.T) {
	t.Helper()
	old := secrets
	secrets = juhe.NewRedactor()
	t.Cleanup(func() { secrets = old })
}

// README: run, replay and query "warn at start, naming the settings (never
// the values)" of a secret shorter than 8 characters. Found by review: the
// warning went through the redactor that masks the short secret wherever
// its text appears, so an openid "op" garbled its own list,
// settings="[juhe.***enid]", which also showed where the secret's text is.
// The names are the program's own text and are shown as they are; the
// secret stays masked everywhere else.
func TestShortSecretWarningNamesTheSettingLegibly(t *testing.T) {
	freshSecrets(t)
	t.Setenv("TWOSELL_JUHE_KEY", "k-0123456789abcdef")
	t.Setenv("TWOSELL_JUHE_OPENID", "op")
	t.Setenv("TWOSELL_JUHE_RETRIES", "0")
	var stdout, stderr syncBuffer
	Main(t.Context(), []string{"query", "13800000000", "--date", "20240101",
		"--juhe-url", "http://127.0.0.1:1", "--juhe-mode", "aes", "--juhe-timeout", "200ms", "--log-format", "json"}, &stdout, &stderr)
	out := stderr.String()
	if !strings.Contains(out, "shorter than 8") {
		t.Fatalf("no short-secret warning at all:\n%s", out)
	}
	if !strings.Contains(out, `"settings":["juhe.openid"]`) {
		t.Errorf("the short-secret warning does not name juhe.openid:\n%s", out)
	}

	// Everywhere else the secret's text is masked, in a setting name's
	// substring too, and a list that is not only secret settings' keys is
	// masked as any value.
	var buf bytes.Buffer
	log := slog.New(redactingHandler{slog.NewJSONHandler(&buf, nil), secrets})
	log.Warn("stop", "topic", "op-events", "names", settingNames{"juhe.openid", "op"}, "more", settingNames{"juhe.openid"},
		"list", []string{"juhe.openid"})
	got := buf.String()
	for _, want := range []string{`"msg":"st***"`, `"t***ic":"***-events"`, `"names":"[juhe.***enid ***]"`, `"more":["juhe.openid"]`, `"list":"[juhe.***enid]"`} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in:\n%s", want, got)
		}
	}
}
