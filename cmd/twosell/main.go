// Command twosell enriches registration events on Kafka with the juhe
// "two-sell" check (全网二次放号查询): has this mobile number been recycled and
// re-issued to a new holder since the registration date?
//
// Usage:
//
//	twosell run     the processor, from a config file, environment and flags
//	twosell dev     everything on one machine: embedded Kafka, simulator, processor, sample events
//	twosell sim     the juhe simulator alone
//	twosell query   one lookup from the terminal
//	twosell replay  enrich a bounded range of a topic, paying once per fact
//	twosell ledger  export the ledger of paid calls as CSV
//
// Run "twosell COMMAND -h" for a command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/twosell/twosell/config"
)

// command is one subcommand. It returns when its work is done or ctx ends
// (SIGINT/SIGTERM); a nil error means exit status 0.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "run the processor (config file, TWOSELL_* environment, flags)", cmdRun},
		{"dev", "run everything on this machine: embedded Kafka, juhe simulator, processor, sample events", cmdDev},
		{"sim", "run the juhe API simulator", cmdSim},
		{"query", "look up one mobile number: twosell query MOBILE --date YYYYMMDD (answered from the ledger's knowledge when it can; a paid call counts in the daily budget, as run's do)", cmdQuery},
		{"replay", "enrich a bounded range of a topic (by time or offsets) into a topic, paying once per fact", cmdReplay},
		{"ledger", "export the ledger of paid calls as CSV: twosell ledger export", cmdLedger},
		{"gen", "write sample registration events to a topic, at a rate or as fast as the brokers take them", cmdGen},
		{"bench", "measure throughput, CPU, latency and memory against the limits", cmdBench},
		{"broker", "run the embedded Kafka broker (kfake) alone", cmdBroker},
	}
}

// readsSettings are the commands that read the settings from TWOSELL_*
// variables: for them, a variable that is no setting's is an error.
var readsSettings = map[string]bool{"run": true, "query": true, "replay": true, "ledger": true, "gen": true}

// asksHelp reports whether args ask for a command's usage (-h, --help),
// which is given whatever the environment holds.
func asksHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help", "--h":
			return true
		case "--":
			return false
		}
	}
	return false
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, the next one is the default's: a second
	// Ctrl-C ends a stop that takes too long (a flush to brokers that are
	// gone, say).
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Main runs the command line args and returns the process exit status:
// 0 on success, 1 on an error, 2 on a usage error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		var err error
		if readsSettings[c.name] && !asksHelp(args[1:]) {
			err = config.CheckEnv(os.Environ())
		}
		if err == nil {
			err = c.run(ctx, args[1:], stdout, stderr)
		}
		switch {
		case err == nil || errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(*config.FlagError)):
			return 2 // the flag set printed it, with the flags' usage
		case errors.As(err, new(usageError)), errors.As(err, new(*config.InvalidFlagError)):
			fmt.Fprintf(stderr, "twosell %s: %s\n", c.name, secrets.Redact(err.Error()))
			return 2
		default:
			fmt.Fprintf(stderr, "twosell %s: %s\n", c.name, secrets.Redact(err.Error()))
			return 1
		}
	}
	fmt.Fprintf(stderr, "twosell: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "twosell enriches registration events on Kafka with the juhe two-sell check.")
	fmt.Fprintln(w, "\nUsage: twosell COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-6s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"twosell COMMAND -h\" for a command's flags.")
}

// usageError is a command line the command cannot run with.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }
