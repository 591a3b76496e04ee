package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/twosell/twosell/config"
)

// cmdRun is "twosell run": the processor, configured by a YAML file,
// TWOSELL_* environment variables and flags (flags win). It returns when ctx
// ends (after a graceful shutdown) or with an error on a fatal fault.
func cmdRun(ctx context.Context, args []string, _, stderr io.Writer) error {
	cfg, rest, err := config.Load("run", args, os.LookupEnv, stderr)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", rest)}
	}
	return runProcessor(ctx, cfg, os.LookupEnv, stderr)
}

// runProcessor wires a validated configuration into a running processor.
func runProcessor(ctx context.Context, cfg *config.Config, lookupEnv func(string) (string, bool), stderr io.Writer) error {
	log, err := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	tp, err := setupTracing(ctx, cfg.Telemetry.ServiceName, lookupEnv, log)
	if err != nil {
		return err
	}
	defer func() {
		// Export what is buffered; a collector that is down must not hold
		// the exit.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(sctx)
	}()
	client, err := newJuheClient(cfg, tp, log)
	if err != nil {
		return err
	}
	proc, err := newProcessor(cfg, juheEnricher{client}, tp, log)
	if err != nil {
		return err
	}
	log.Info("starting", "brokers", cfg.Kafka.Brokers, "juhe_url", cfg.Juhe.URL, "juhe_mode", cfg.Juhe.Mode)
	return explain(cfg, proc.Run(ctx))
}
