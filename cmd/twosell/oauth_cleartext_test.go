package main

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/twosell/twosell/config"
)

// OAUTHBEARER sends its bearer token to the brokers as it is, exactly as
// PLAIN sends its password: without TLS, anyone on the path can read it and
// replay it until it expires. warnInsecure warned of PLAIN without TLS but
// said nothing of OAUTHBEARER without TLS, and validation accepts it, so the
// token went out in clear text silently. (Found by a security review.)
func TestWarnOAuthBearerWithoutTLS(t *testing.T) {
	cfg := config.Default()
	cfg.Kafka.SASL = config.KafkaSASL{Mechanism: config.SASLOAuthBearer, TokenFile: "/run/secrets/kafka-token"}
	cfg.Kafka.TLS.Enabled = false
	var logs strings.Builder
	warnInsecure(&cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if !strings.Contains(strings.ToLower(logs.String()), "tls") {
		t.Errorf("OAUTHBEARER without TLS sends the token in clear text, and no warning says so; logs: %q", logs.String())
	}
}
