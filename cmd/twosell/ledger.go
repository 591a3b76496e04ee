package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/processor"
)

// ledgerCSVHeader names the columns "twosell ledger export" writes.
var ledgerCSVHeader = []string{"day", "at", "order_id", "status", "res", "code", "date", "mode", "mobile_key", "instance"}

// cmdLedger is "twosell ledger export": every paid call recorded in the
// ledger, as CSV, to reconcile the provider's bill by order id. The mobile
// appears only as its keyed hash.
func cmdLedger(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const use = "twosell ledger export [--from-day YYYYMMDD] [--to-day YYYYMMDD] [--output FILE]"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprintf(stderr, "usage: %s\n(twosell ledger export -h lists every flag)\n", use)
		return nil
	}
	if len(args) == 0 || args[0] != "export" {
		return usageError{"want a subcommand: " + use}
	}
	fs := flag.NewFlagSet("ledger export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fromDay := fs.String("from-day", "", "first day (yyyymmdd, the budget's day) to export; default: the first")
	toDay := fs.String("to-day", "", "last day (yyyymmdd) to export, included; default: the last")
	output := fs.String("output", "", "file to write the CSV to (default: stdout)")
	cfg, rest, err := config.LoadWith("ledger", fs, args[1:], os.LookupEnv)
	// The command line first: a usage error (exit 2) before what the
	// configuration lacks (returned with the arguments, rest).
	if err != nil && rest == nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", rest)}
	}
	for _, d := range []struct{ name, v string }{{"--from-day", *fromDay}, {"--to-day", *toDay}} {
		if _, err := time.Parse("20060102", d.v); d.v != "" && err != nil {
			return usageError{fmt.Sprintf("%s %q: want yyyymmdd", d.name, d.v)}
		}
	}
	if *fromDay != "" && *toDay != "" && *fromDay > *toDay {
		return usageError{fmt.Sprintf("--from-day %s is after --to-day %s", *fromDay, *toDay)}
	}
	if err != nil {
		return err
	}
	registerSecrets(cfg)
	log, err := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return err
	}
	// The export reads the ledger from Kafka (found by review: it said
	// nothing of a password sent in clear, as run and replay do).
	warnInsecureKafka(cfg, log)
	warnSecrets(cfg, log)
	w := stdout
	var out *os.File  // the file renamed over --output once complete
	target := *output // --output, or the file it links to
	if fi, serr := os.Stat(*output); *output != "" && serr == nil && !fi.Mode().IsRegular() {
		f, err := os.OpenFile(*output, os.O_WRONLY, 0) // a device or a pipe, such as /dev/stdout
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	} else if *output != "" {
		// Through a symbolic link, the file it names is written, as
		// os.Create would (found by review: the rename replaced the link).
		if resolved, err := filepath.EvalSymlinks(*output); err == nil {
			target = resolved
		}
		// Written next to the file and renamed over it once complete: a
		// failed export (a wrong broker, a missing ledger) leaves the file
		// as it was, such as last month's reconciliation.
		out, err = createBeside(target)
		if err != nil {
			// Its error names the temporary file, which the user never gave.
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return fmt.Errorf("--output %s: cannot write a file in %s: %w", *output, filepath.Dir(target), err)
		}
		defer func() {
			out.Close()
			os.Remove(out.Name()) // gone after the rename
		}()
		w = out
	}
	n, unreadable, guarded, err := exportLedger(ctx, cfg, *fromDay, *toDay, w)
	if err == nil && out != nil {
		if err = out.Close(); err == nil {
			err = os.Rename(out.Name(), target)
		}
	}
	if errors.Is(err, processor.ErrTopicMissing) {
		return fmt.Errorf("no ledger on %v: topic %q does not exist; nothing was paid for through twosell on this cluster yet, or --ledger-topic names another topic",
			cfg.Kafka.Brokers, cfg.Ledger.Topic)
	}
	if err != nil && ctx.Err() != nil {
		return errors.New("ledger export interrupted before it was complete (--output's file, if given, is left as it was)") // not the cluster's fault
	}
	if err != nil {
		return explainKafka(cfg, err)
	}
	if *output != "" {
		fmt.Fprintf(stderr, "wrote %d paid calls to %s\n", n, *output)
	}
	if guarded > 0 {
		fmt.Fprintf(stderr, "WARNING: %d cells began with =, +, -, @, a tab or a carriage return (or had a part after a ';' that did), "+
			"which a spreadsheet runs as a formula; each such part is written with a ' before it. The provider's order ids never begin so: check who writes to the ledger topic.\n", guarded)
	}
	if len(unreadable) > 0 {
		fmt.Fprintf(stderr, "WARNING: %d call records of the ledger could not be decoded (the first at %s); "+
			"their rows hold only what their keys say: day, order id and instance. The budget counted them.\n", len(unreadable), unreadable[0])
	}
	return nil
}

// exportLedger writes the ledger's paid calls of the days from..to (either
// may be empty: unbounded) as CSV, by day and time,
// and returns how many it wrote, where and why each call it could not
// decode (its row holds what its key says) could not be, and how many cells
// it guarded against a spreadsheet's formulas (formulaSafe).
func exportLedger(ctx context.Context, cfg *config.Config, from, to string, w io.Writer) (int, []string, int, error) {
	opts, err := kafkaOpts(cfg)
	if err != nil {
		return 0, nil, 0, err
	}
	var unreadable []string
	cw := csv.NewWriter(w)
	guarded := 0
	write := func(cells ...string) error {
		for i, c := range cells {
			if safe := formulaSafe(c); safe != c {
				cells[i] = safe
				guarded++
			}
		}
		return cw.Write(cells)
	}
	headed := false
	head := func() error { // once the ledger is found: no header before an error
		if headed {
			return nil
		}
		headed = true
		return cw.Write(ledgerCSVHeader)
	}
	// Read whole, then written in the order of the calls' times: the
	// ledger holds them in the order of its partitions, and a bill is
	// reconciled day by day (found by a walkthrough). A few hundred bytes
	// a call are held meanwhile (README: --from-day and --to-day narrow it).
	var calls []processor.LedgerCall
	err = processor.ReadLedgerCalls(ctx, opts, cfg.Ledger.Topic, func(c processor.LedgerCall) error {
		if (from != "" && c.Day < from) || (to != "" && c.Day > to) {
			return nil
		}
		if c.Unreadable != "" {
			unreadable = append(unreadable, c.Unreadable)
		}
		calls = append(calls, c)
		return head()
	})
	// By day first: a call whose record could not be decoded has a day
	// and no time; it comes first in its day. Equal times keep the
	// ledger's order.
	slices.SortStableFunc(calls, func(a, b processor.LedgerCall) int {
		return cmp.Or(strings.Compare(a.Day, b.Day), a.At.Compare(b.At))
	})
	for _, c := range calls {
		if err != nil {
			break
		}
		if c.Unreadable != "" { // what is not known is left empty, not zero
			err = write(c.Day, "", c.OrderID, "", "", "", "", "", "", c.Instance)
			continue
		}
		err = write(c.Day, c.At.UTC().Format(time.RFC3339Nano), c.OrderID, string(c.Status), exportedRes(c),
			exportedCode(c), c.Date, c.Mode, c.Key, c.Instance)
	}
	n := len(calls)
	if err == nil {
		err = head() // an export of no call still has its header
	}
	cw.Flush()
	if err == nil {
		err = cw.Error()
	}
	return n, unreadable, guarded, err
}

// formulaSafe returns cell as a spreadsheet shows it rather than runs it: a
// cell that begins with =, +, -, @, a tab or a carriage return can be a
// formula to Excel and LibreOffice, and is written with a ' first (OWASP's
// advice on CSV injection), unless it is a plain number (a code of -1). So
// is each part of it after a ';': a spreadsheet whose list separator is ';'
// (Excel in many European locales) splits the row there, and the cell's
// part after it is a cell of its own. Every cell of a call twosell wrote is
// safe as it is (order ids, hashes, days, codes, the instance's name); only
// a hand-written or hostile ledger record holds such a cell, which the
// export must not turn into a formula on the desk of whoever reconciles
// the bill.
func formulaSafe(cell string) string {
	if !strings.Contains(cell, ";") {
		return formulaSafePart(cell)
	}
	parts := strings.Split(cell, ";")
	for i, p := range parts {
		parts[i] = formulaSafePart(p)
	}
	return strings.Join(parts, ";")
}

func formulaSafePart(cell string) string {
	if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) && !isNumber(cell) {
		return "'" + cell
	}
	return cell
}

// isNumber reports whether s is a plain decimal number, with a sign and a
// fraction at most, as a spreadsheet reads one (strconv.ParseFloat also
// takes "-Infinity", "+NaN" and hexadecimal floats, which a spreadsheet
// runs as formulas).
func isNumber(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	whole, frac, dot := strings.Cut(s, ".")
	digits := func(d string) bool { return d != "" && strings.Trim(d, "0123456789") == "" }
	return digits(whole) && (!dot || digits(frac))
}

// createBeside creates a new file next to path, to be renamed over it, with
// the permissions os.Create would leave path with: an existing file's own
// (a reconciliation made private stays private; found by review: the
// export made it 0644), else 0666 less the umask. os.CreateTemp makes
// 0600, which a chmod to a fixed mode could only replace by ignoring both.
func createBeside(path string) (*os.File, error) {
	dir, base := filepath.Split(path)
	for range 100 {
		f, err := os.OpenFile(filepath.Join(dir, "."+base+"."+rand.Text()[:10]), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if fi, err := os.Stat(path); err == nil {
			if err := f.Chmod(fi.Mode().Perm()); err != nil {
				f.Close()
				os.Remove(f.Name())
				return nil, err
			}
		}
		return f, nil
	}
	return nil, fmt.Errorf("no free temporary name in %s", dir)
}

// exportedRes is c's res for the export: empty for a call without one
// (no_record, unavailable). The provider's res is 1, 2 or 3; a 0 would read
// as an answer it never gives.
func exportedRes(c processor.LedgerCall) string {
	if c.Res == 0 {
		return ""
	}
	return strconv.Itoa(c.Res)
}

// exportedCode is c's provider code for the export: empty for a request
// that got no reply (unavailable with no code), which the ledger records as
// 0, the provider's code for success: a bill reconciled from the export
// would read a timed-out request as answered.
func exportedCode(c processor.LedgerCall) string {
	if c.Code == 0 && c.Status == processor.StatusUnavailable {
		return ""
	}
	return strconv.Itoa(c.Code)
}
