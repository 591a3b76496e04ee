package main

import (
	"strings"
	"testing"
)

// "ledger export" reads the ledger from Kafka and "query" sends the key to
// the provider: each warns of what it sends in clear, as run and replay do
// (found by review: neither said a word).
func TestExportAndQueryWarnOfWhatTheySendInClear(t *testing.T) {
	t.Run("ledger export, SASL PLAIN without TLS", func(t *testing.T) {
		t.Setenv("TWOSELL_KAFKA_SASL_PASSWORD", "a-long-enough-password")
		var stdout, stderr syncBuffer
		Main(t.Context(), []string{"ledger", "export", "--brokers", "127.0.0.1:1", "--sasl-mechanism", "PLAIN",
			"--sasl-username", "u", "--output", t.TempDir() + "/missing/x.csv"}, &stdout, &stderr)
		if got := stderr.String(); !strings.Contains(got, "SASL PLAIN without TLS") || strings.Contains(got, "a-long-enough-password") {
			t.Errorf("stderr %q: want the warning of the password sent in clear, and never the password", got)
		}
	})
	t.Run("query, plain http to a remote provider", func(t *testing.T) {
		t.Setenv("TWOSELL_JUHE_KEY", testKey)
		t.Setenv("TWOSELL_JUHE_ALLOW_INSECURE", "true")
		t.Setenv("TWOSELL_JUHE_RETRIES", "0")
		var stdout, stderr syncBuffer
		// 192.0.2.1 (TEST-NET-1) takes nothing; the attempt ends at its
		// timeout.
		Main(t.Context(), []string{"query", "17312345678", "--date", "20200101", "--juhe-url", "http://192.0.2.1:9/",
			"--juhe-timeout", "50ms"}, &stdout, &stderr)
		if got := stderr.String(); !strings.Contains(got, "the key is sent to the provider over plain http") || strings.Contains(got, testKey) {
			t.Errorf("stderr %q: want the warning of the key sent over plain http, and never the key", got)
		}
	})
}
