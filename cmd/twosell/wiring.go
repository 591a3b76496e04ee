package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/processor"
)

// juheEnricher adapts the juhe client to the processor's Enricher: it maps
// the provider's answers to statuses and its error classes to what the
// processor does with the record (DESIGN.md's table).
type juheEnricher struct{ c *juhe.Client }

// ClassBadParameter is the dead-letter class of records the provider
// rejected (232702).
const ClassBadParameter = "bad_parameter"

func (e juheEnricher) Enrich(ctx context.Context, l processor.Lookup) (processor.Result, error) {
	// Each retry inside the client takes a rate token and a unit of the
	// budget, as the first request did.
	a, err := e.c.Query(juhe.WithRetryGate(ctx, processor.BeforeRetryBilled), l.Mobile, l.Date)
	res := processor.Result{Res: a.Res, OrderID: a.OrderID, Source: "api", Mode: string(e.c.Mode()), Code: a.Code,
		Attempts: a.Attempts, Billable: a.Billable, BillableRequests: a.BillableRequests, Resent: a.Resent}
	if err != nil {
		var je *juhe.Error
		if errors.As(err, &je) {
			res.Code = je.Code
		}
		switch {
		case ctx.Err() != nil:
			return res, err
		case juhe.IsRecord(err):
			// What to fix, at once: one answer may be all a query, or a
			// record's dead letter, gets (a walkthrough: the reason gave
			// none; only a run of them, which the client counts, did).
			return res, processor.Reject(ClassBadParameter, fmt.Errorf("%w; the provider could not read the number as sent: "+
				"if it refuses valid numbers too, check %s", err, e.c.BadParamCheck()))
		case juhe.IsFatal(err):
			return res, processor.Fatal(err)
		case juhe.IsQuota(err): // 10011-10013: the cost controls slow down
			return res, processor.RateLimited(err)
		case je != nil && je.RetryIn > 0: // the breaker refusing calls until then
			return res, processor.UnavailableFor(err, je.RetryIn)
		default: // transient after retries, transport
			return res, processor.Unavailable(err)
		}
	}
	if a.NoRecord {
		res.Status = processor.StatusNoRecord
		return res, nil
	}
	status, ok := processor.StatusOfRes(a.Res)
	if !ok {
		// The client validates res; an unknown value here is a bug, and
		// holding the record back is the safe side of it.
		return res, processor.Unavailable(fmt.Errorf("juhe: unexpected res %d", a.Res))
	}
	res.Status = status
	return res, nil
}

// newJuheClient builds the provider client from the configuration; it
// records its metrics into mp (nil: otel's global provider).
func newJuheClient(cfg *config.Config, tp trace.TracerProvider, mp metric.MeterProvider, log *slog.Logger) (*juhe.Client, error) {
	registerSecrets(cfg)
	var rootCAs *x509.CertPool
	if cfg.Juhe.CAFile != "" {
		var err error
		if rootCAs, err = loadCAs("juhe.ca_file", cfg.Juhe.CAFile); err != nil {
			return nil, err
		}
	}
	retries := cfg.Juhe.Retries
	if retries == 0 {
		retries = -1 // juhe.retries: 0 disables them; the client's zero is its default
	}
	return juhe.New(juhe.Config{
		BaseURL:            cfg.Juhe.URL,
		Key:                cfg.Juhe.Key.Reveal(),
		OpenID:             cfg.Juhe.OpenID.Reveal(),
		Mode:               cfg.Juhe.Mode,
		Method:             cfg.Juhe.Method,
		Timeout:            cfg.Juhe.Timeout,
		Retries:            retries,
		Backoff:            cfg.Juhe.Backoff,
		MaxBackoff:         cfg.Juhe.MaxBackoff,
		BadParamFatalAfter: cfg.Juhe.BadParamFatalAfter,
		MaxConns:           juhePool(cfg),
		Breaker: juhe.BreakerConfig{
			Failures:         uint32(cfg.Juhe.Breaker.Failures),
			OpenFor:          cfg.Juhe.Breaker.OpenFor,
			HalfOpenRequests: uint32(cfg.Juhe.Breaker.HalfOpenRequests),
		},
		RootCAs:        rootCAs,
		AllowInsecure:  cfg.Juhe.AllowInsecure,
		TracerProvider: tp,
		MeterProvider:  mp,
		Logger:         log,
	})
}

// kafkaOpts are the options that say how to reach the cluster: the seed
// brokers, the client id, TLS (kafka.tls) and SASL (kafka.sasl). Every Kafka
// client twosell creates for a configured cluster takes them from here.
// juhePool is how many idle connections to the provider the client keeps:
// juhe.max_conns, and never fewer than processing.max_in_flight, a call in
// flight each (DESIGN: a pool sized to the concurrency). Found by review:
// with max_in_flight raised to 600 and max_conns left at 256, every call
// beyond 256 opened a connection and closed it after use (344 sockets in
// TIME-WAIT for 4,000 numbers).
func juhePool(cfg *config.Config) int { return max(cfg.Juhe.MaxConns, cfg.Processing.MaxInFlight) }

func kafkaOpts(cfg *config.Config) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Kafka.Brokers...),
		kgo.ClientID(cfg.Kafka.ClientID),
	}
	if cfg.Kafka.TLS.Enabled {
		tc, err := kafkaTLS(&cfg.Kafka.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	mech, err := saslMechanism(&cfg.Kafka.SASL)
	if err != nil {
		return nil, err
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// newProcessor builds the processor from the configuration.
func newProcessor(cfg *config.Config, enricher processor.Enricher, tp trace.TracerProvider, log *slog.Logger, extra ...kgo.Opt) (*processor.Processor, error) {
	pc, err := processorConfig(cfg, enricher, tp, log, extra...)
	if err != nil {
		return nil, err
	}
	return processor.New(pc)
}

// processorConfig translates the configuration for the processor.
func processorConfig(cfg *config.Config, enricher processor.Enricher, tp trace.TracerProvider, log *slog.Logger, extra ...kgo.Opt) (processor.Config, error) {
	opts, err := kafkaOpts(cfg)
	if err != nil {
		return processor.Config{}, err
	}
	return processor.Config{
		ClientOpts:   append(opts, extra...),
		Group:        cfg.Kafka.Group,
		InputTopic:   cfg.Kafka.InputTopic,
		OutputTopic:  cfg.Kafka.OutputTopic,
		DLQTopic:     cfg.Kafka.DLQTopic,
		CreateTopics: cfg.Kafka.CreateTopics,
		Codec: processor.CodecConfig{
			MobileField: cfg.Input.MobileField,
			DateField:   cfg.Input.DateField,
			IDField:     cfg.Input.IDField,
			OutputField: cfg.Output.Field,
			DateSource:  processor.DateSource(cfg.Input.DateSource),
			Location:    cfg.Input.Location(),

			MaxRecordBytes: cfg.Input.MaxRecordBytes,
			MaxHeaders:     cfg.Input.MaxHeaders,
		},
		Enricher:               enricher,
		EmitUnavailable:        cfg.Processing.OnUnavailable == config.OnUnavailableEmit,
		ExactlyOnce:            cfg.Kafka.Delivery == config.DeliveryExactlyOnce,
		TransactionalID:        cfg.Kafka.TransactionalIDOrDefault(),
		TransactionTimeout:     cfg.Kafka.TransactionTimeout,
		SessionTimeout:         cfg.Kafka.SessionTimeout,
		RebalanceTimeout:       cfg.Kafka.RebalanceTimeout,
		CommitInterval:         cfg.Processing.CommitInterval,
		ShutdownTimeout:        cfg.Processing.ShutdownTimeout,
		RetryBackoff:           cfg.Processing.RetryBackoff,
		MaxRetryBackoff:        cfg.Processing.MaxRetryBackoff,
		MaxBufferedRecords:     cfg.Processing.MaxBufferedRecords,
		MaxBufferedBytes:       cfg.Processing.MaxBufferedBytes,
		FetchMaxPartitionBytes: cfg.Processing.FetchMaxPartitionBytes,
		FetchMaxWait:           cfg.Processing.FetchMaxWait,
		MaxInFlight:            cfg.Processing.MaxInFlight,
		MaxInFlightBytes:       int64(cfg.Processing.MaxInFlightBytes),
		Ordering:               processor.Ordering(cfg.Processing.Ordering),
		TracerProvider:         tp,
		Logger:                 log,
		Cost:                   costReporter(enricher),
		OnAssigned:             onAssigned(enricher),
	}, nil
}

// explain adds what to do to the errors a user can fix at start. Errors of
// the cluster (the processor lists its topics first, so a wrong password or
// CA surfaces here) name the brokers, TLS and the SASL mechanism and user;
// a fatal error of the provider is left as it is.
func explain(cfg *config.Config, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, processor.ErrInputTopicMissing):
		return fmt.Errorf("%w on %v: create it, or point kafka.input_topic (--input-topic, TWOSELL_KAFKA_INPUT_TOPIC) at an existing topic", err, cfg.Kafka.Brokers)
	case errors.Is(err, processor.ErrTopicMissing):
		return fmt.Errorf("%w on %v: create it, or set kafka.create_topics: true (--create-topics)", err, cfg.Kafka.Brokers)
	case errors.As(err, new(*processor.FatalError)), errors.Is(err, processor.ErrOutputsWouldExpire), errors.Is(err, processor.ErrInputTopicDeleted):
		return err // not the cluster's (found by review: a retention refusal read as a connection error)
	}
	return explainKafka(cfg, err)
}
