package processor

// A missing ledger topic that the user may not create.

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/twosell/twosell/processor/kafkatest"
)

// A ledger topic that is missing, with CreateTopic allowed (kafka.create_topics:
// true, the default), and a user without CREATE (a production ACL): Open
// fails with the broker's authorization error and, as for the refused fetch
// ("the user needs READ on the topic") and the missing topic it may not
// create, says what to fix: CREATE for the user, or the topic created
// compacted beforehand. Before, it gave the broker's error alone (found by
// review).
func TestLedgerCreateRefusedSaysWhatToFix(t *testing.T) {
	t.Parallel()
	k := kafkatest.NewDescribeOnly(t, "app", "app-pw")
	topic := k.Name("ledger")
	c, err := NewCostControl(EnricherFunc(func(context.Context, Lookup) (Result, error) { return Result{}, nil }), CostConfig{
		Secret: []byte("s"), Logger: slog.New(slog.DiscardHandler),
		Ledger: &LedgerConfig{Topic: topic, CreateTopic: true, ClientOpts: []kgo.Opt{kgo.SeedBrokers(k.Brokers...),
			kgo.SASL(plain.Auth{User: "app", Pass: "app-pw"}.AsMechanism())}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err = c.Open(ctx)
	if err == nil {
		c.Close(context.Background())
		t.Fatal("Open succeeded with a user that may not create the missing ledger topic")
	}
	t.Logf("Open: %v", err)
	authz := errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed)
	if !authz || !(strings.Contains(err.Error(), "CREATE") || strings.Contains(err.Error(), "compact")) {
		t.Errorf("Open: %v; want the refused authorization and what to fix (CREATE for the user, or create the topic compacted)", err)
	}
}
