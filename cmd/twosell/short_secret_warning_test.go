package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twosell/twosell/config"
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
	// Its message is the program's own text too: with a secret "short",
	// it read "secrets ***er than 8 characters" (a walkthrough).
	secrets.Add("short")
	var warned bytes.Buffer
	warnSecrets(&config.Config{Cache: config.Cache{Secret: "short"}}, slog.New(redactingHandler{slog.NewTextHandler(&warned, nil), secrets}))
	if !strings.Contains(warned.String(), "secrets shorter than 8 characters") || !strings.Contains(warned.String(), "cache.secret") {
		t.Errorf("the warning of a secret \"short\" is garbled: %s", warned.String())
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

// Found by a walkthrough: with cache.secret "short", --print-config masked
// the key short_ttl as ***_ttl: the file did not load back, and showed
// where the secret's text is (a secret "mode" printed "***: plain"). The
// keys are the program's own text and print as they are; the values are
// masked, the secret's own and one pasted into another setting.
func TestPrintConfigWithAShortSecretLoadsBack(t *testing.T) {
	freshSecrets(t)
	dir := t.TempDir()
	keyFile, secretFile := filepath.Join(dir, "key"), filepath.Join(dir, "secret")
	for path, v := range map[string]string{keyFile: "k-0123456789abcdef", secretFile: "short"} {
		if err := os.WriteFile(path, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("TWOSELL_JUHE_KEY", "")
	t.Setenv("TWOSELL_JUHE_KEY_FILE", keyFile)
	t.Setenv("TWOSELL_CACHE_SECRET_FILE", secretFile)
	code, printed, stderr := reviewRun(t, t.Context(), "run", "--print-config")
	if code != 0 {
		t.Fatalf("run --print-config: exit %d: %s", code, stderr)
	}
	if !strings.Contains(printed, "short_ttl:") || strings.Contains(strings.ReplaceAll(printed, "short_ttl", ""), "short") {
		t.Errorf("want the key short_ttl as it is, and the secret's text nowhere else:\n%s", printed)
	}
	path := filepath.Join(dir, "printed.yaml")
	if err := os.WriteFile(path, []byte(printed), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TWOSELL_JUHE_KEY_FILE", "") // the printed file alone
	t.Setenv("TWOSELL_CACHE_SECRET_FILE", "")
	code, again, stderr := reviewRun(t, t.Context(), "run", "--config", path, "--print-config")
	if code != 0 || again != printed {
		t.Errorf("the printed configuration does not load back: exit %d\nstderr %s", code, strings.TrimSpace(stderr))
	}

	// The secret's text in another setting's value is masked.
	t.Setenv("TWOSELL_KAFKA_INPUT_TOPIC", "short-events")
	code, printed, stderr = reviewRun(t, t.Context(), "run", "--config", path, "--print-config")
	if code != 0 || !strings.Contains(printed, "input_topic: '***-events'") {
		t.Errorf("exit %d, stderr %s; want input_topic masked:\n%s", code, stderr, printed)
	}
}
