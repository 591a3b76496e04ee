package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe/juhesim"
)

// simShutdownGrace is how long "twosell sim" lets requests in flight finish
// at shutdown before it closes their connections (which also ends a "hang").
const simShutdownGrace = 5 * time.Second

// cmdSim is "twosell sim": the juhe simulator alone, on --addr, until ctx
// ends. It prints one line, "juhe simulator listening on http://ADDR", once
// it accepts connections, then shuts down gracefully and returns nil. The key
// and openid are never printed.
func cmdSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		keys       listFlag
		rates      = rateFlag{}
		f          juhesim.Faults
		openid     string
		population int
		seed       int64
	)
	addr := fs.String("addr", "127.0.0.1:8088", "listen address (port 0 picks a free port)")
	// No flag takes its default from the environment: -h prints defaults, and
	// the key and openid must never be printed.
	fs.Var(&keys, "key", "an accepted account key; repeatable or comma-separated (default $TWOSELL_JUHE_KEY)")
	fs.StringVar(&openid, "openid", "", "the account's openid, for the AES modes (default $TWOSELL_JUHE_OPENID)")
	fs.IntVar(&population, "population", juhesim.DefaultPopulation, "sample mobiles indexed for the digest modes (0: none)")
	fs.Int64Var(&seed, "seed", 1, "seed of the jitter and error-rate draws")
	fs.DurationVar(&f.Latency, "latency", 0, "fixed latency added to every reply")
	fs.DurationVar(&f.Jitter, "jitter", 0, "uniform random latency in [0, jitter) added to every reply")
	fs.Var(rates, "error-rate", "CODE=P: answer error_code CODE with probability P (0-1); repeatable")
	fs.StringVar(&f.Outage, "outage", "", `outage: "" (none), 503, hang, garbage or reset`)
	fs.Float64Var(&f.QPS, "qps", 0, "requests per second across all callers before 10012 (0: no limit)")
	fs.Float64Var(&f.IPQPS, "ip-qps", 0, "requests per second per remote IP before 10011 (0: no limit)")
	if err := config.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	if !config.ValidListenAddr(*addr) {
		return usageError{fmt.Sprintf("--addr %q is not valid; valid: host:port or :port, such as 127.0.0.1:0", *addr)}
	}
	if len(keys) == 0 {
		keys.Set(os.Getenv("TWOSELL_JUHE_KEY")) //nolint:errcheck // Set never fails
	}
	if len(keys) == 0 {
		return usageError{"no key: set --key or TWOSELL_JUHE_KEY"}
	}
	if !isFlagSet(fs, "openid") {
		openid = os.Getenv("TWOSELL_JUHE_OPENID")
	}
	if population <= 0 {
		population = -1 // juhesim reads 0 as its default
	}
	if len(rates) > 0 {
		f.ErrorRates = rates
	}
	if err := f.Validate(); err != nil {
		return usageError{err.Error()}
	}

	sim, err := juhesim.New(juhesim.Config{
		Keys:       keys,
		OpenID:     openid,
		Population: population,
		Seed:       seed,
		Faults:     f,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return inUse(fmt.Errorf("juhe simulator: %w", err), "--addr")
	}
	srv := sim.NewServer()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "juhe simulator listening on http://%s\n", ln.Addr())

	select {
	case err := <-served:
		return inUse(fmt.Errorf("juhe simulator: %w", err), "--addr")
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), simShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close() // the grace is over: drop what is still in flight
	}
	<-served // http.ErrServerClosed
	return nil
}

func isFlagSet(fs *flag.FlagSet, name string) (set bool) {
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// listFlag collects a repeatable, comma-separated string flag. It never
// prints its values: it holds keys.
type listFlag []string

func (l *listFlag) String() string { return "" }

func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// rateFlag collects repeatable CODE=P flags into error rates.
type rateFlag map[int]float64

func (r rateFlag) String() string { return "" }

func (r rateFlag) Set(s string) error {
	code, p, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("%q is not CODE=P", s)
	}
	c, err := strconv.Atoi(strings.TrimSpace(code))
	if err != nil {
		return fmt.Errorf("%q: code %q is not an integer", s, code)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
	if err != nil || v < 0 || v > 1 {
		return fmt.Errorf("%q: probability %q is not a number between 0 and 1", s, p)
	}
	r[c] = v
	return nil
}
