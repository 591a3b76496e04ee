package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.yaml.in/yaml/v3"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/processor"
)

// cmdRun is "twosell run": the processor, configured by a YAML file,
// TWOSELL_* environment variables and flags (flags win). It returns when ctx
// ends (after a graceful shutdown) or with an error on a fatal fault. With
// --print-config it prints the merged, validated configuration instead, as
// YAML with secrets as ***, and exits.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	printConfig := fs.Bool("print-config", false, "print the merged, validated configuration (secrets as ***) as YAML and exit")
	cfg, rest, err := config.LoadWith("run", fs, args, os.LookupEnv)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", rest)}
	}
	registerSecrets(cfg)
	if *printConfig {
		return writeConfig(stdout, cfg)
	}
	return runProcessor(ctx, cfg, os.LookupEnv, stderr)
}

// writeConfig prints cfg as the config file would set it: the secrets
// print as *** (config.Secret), and a secret pasted into another setting is
// masked by the process redactor. The redactor masks the values only: the
// keys are the program's own text, and a short secret masked in them ("short"
// in short_ttl: ***_ttl) made a file that did not load back and showed where
// the secret's text is (found by a walkthrough).
func writeConfig(w io.Writer, cfg *config.Config) error {
	doc, err := cfg.MarshalYAML()
	if err != nil {
		return err
	}
	node, ok := doc.(*yaml.Node)
	if !ok {
		return fmt.Errorf("the configuration's YAML is a %T, not a node", doc)
	}
	redactValues(node)
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(node); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// redactValues masks the secrets in n's scalar values and their comments,
// not in its mapping keys. A value masked is a string from then on: "***" is no number.
func redactValues(n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			redactValues(n.Content[i])
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			redactValues(c)
		}
	case yaml.ScalarNode:
		if v := secrets.Redact(n.Value); v != n.Value {
			n.Value, n.Tag = v, "!!str"
		}
		n.LineComment = secrets.Redact(n.LineComment) // the default transactional id's, made of the group
	}
}

// runProcessor wires a validated configuration into a running processor.
// tracing adds to the tracer provider's options (tests record spans).
func runProcessor(ctx context.Context, cfg *config.Config, lookupEnv func(string) (string, bool), stderr io.Writer, tracing ...sdktrace.TracerProviderOption) error {
	registerSecrets(cfg)
	log, err := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	tp, err := setupTracing(ctx, cfg.Telemetry.ServiceName, lookupEnv, log, tracing...)
	if err != nil {
		return err
	}
	defer shutdownTracing(ctx, tp)
	warnInsecure(cfg, log)
	ops, err := newOperations(log)
	if err != nil {
		return err
	}
	defer ops.Close()
	if err := ops.listen(cfg, metricsSetting); err != nil { // /healthz while the ledger loads
		return err
	}
	client, err := newJuheClient(cfg, tp, ops.meterProvider(), log)
	if err != nil {
		return err
	}
	defer client.Close()                                                         // the provider's connections
	cost, err := openCostControl(ctx, cfg, juheEnricher{client}, "run", tp, log) // loads the ledger first
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			// SIGINT or SIGTERM while the ledger loads (seconds, on a large
			// one): a stop like any other, before anything was consumed.
			log.Info("stopped before consuming", "reason", context.Cause(ctx))
			return nil
		}
		return err
	}
	defer closeCostControl(ctx, cost)
	proc, err := newProcessor(cfg, cost, tp, log, ops.kafkaOpts()...)
	if err != nil {
		return err
	}
	if err := ops.start(cfg, proc, client); err != nil {
		return err
	}
	log.Info("starting", "brokers", cfg.Kafka.Brokers, "kafka_tls", cfg.Kafka.TLS.Enabled,
		"kafka_sasl", cfg.Kafka.SASL.Mechanism, "juhe_url", config.ShownURL(cfg.Juhe.URL), "juhe_mode", cfg.Juhe.Mode,
		"metrics_addr", ops.addr())
	if err := proc.Run(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) && !errors.As(err, new(*processor.FatalError)) {
			// SIGINT or SIGTERM while the topics were checked or created:
			// a stop like any other (found by review: it exited 1 with a
			// Kafka connection error).
			log.Info("stopped before consuming", "reason", context.Cause(ctx))
			return nil
		}
		return explain(cfg, err)
	}
	return nil
}
