package main

// Tests from a review of the command-line interface against README.md
// (twenty-third session). Each failed on the code it was written against,
// for the defect its comment names; the comments say what was wrong.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor/kafkatest"
)

// reviewRun runs the command line and returns its exit code, stdout and stderr.
func reviewRun(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	code := Main(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// README: "Every command exits 2 on a usage error". Every other command
// refuses positional arguments ("unexpected arguments"); bench ignores
// them and starts the benchmark (with the defaults, 50,000 events:
// "twosell bench 1000" measures 50,000). Small --events here, so that the
// defect costs a few seconds, not minutes.
func TestBenchRefusesExtraArguments(t *testing.T) {
	t.Setenv("TWOSELLTEST_MAIN", "1") // if the bench starts, its children run main
	code, stdout, stderr := reviewRun(t, t.Context(), "bench", "--events", "20", "--latency", "1ms", "--partitions", "1", "--in-flight", "4", "--json", "extra")
	if code != 2 || stdout != "" || !strings.Contains(stderr, "unexpected arguments") {
		t.Errorf("bench ... extra: exit %d, want 2, nothing on stdout and the argument named\nstdout %q\nstderr %q", code, stdout, stderr)
	}
}

// --print-config's output is meant to load back to the same configuration
// (config/print.go: "The result loads back to c, except that its secrets read
// as the literal ***"). With a secret from a file (juhe.key_file, as
// Kubernetes secret volumes give it) it prints both key: '***' and
// key_file: PATH, and that file refuses to load: "juhe.key and juhe.key_file
// are both set". The same holds for openid_file, password_file and
// cache.secret_file.
func TestPrintConfigWithASecretFileLoadsBack(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "juhe-key")
	if err := os.WriteFile(keyFile, []byte("Review-Key-4f1d2a9c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TWOSELL_JUHE_KEY", "")
	t.Setenv("TWOSELL_JUHE_KEY_FILE", keyFile)
	code, printed, stderr := reviewRun(t, t.Context(), "run", "--print-config")
	if code != 0 {
		t.Fatalf("run --print-config: exit %d: %s", code, stderr)
	}
	path := filepath.Join(t.TempDir(), "printed.yaml")
	if err := os.WriteFile(path, []byte(printed), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TWOSELL_JUHE_KEY_FILE", "") // the printed file alone
	code, again, stderr := reviewRun(t, t.Context(), "run", "--config", path, "--print-config")
	if code != 0 || again != printed {
		t.Errorf("the printed configuration does not load back: exit %d\nstderr %s", code, strings.TrimSpace(stderr))
	}
}

// --print-config shows a password in juhe.url as xxxxx (config.ShownURL).
// The printed file then loads without a word as a URL whose password is
// "xxxxx": the provider refuses it only once running. A secret printed as
// *** is refused at load for exactly this reason (validateMasks); the
// URL's credential is not.
func TestPrintConfigURLCredentialDoesNotLoadBackAsAnother(t *testing.T) {
	const url = "https://gw-user:Gw-Pass-77aa31c9@gateway.example.com"
	t.Setenv("TWOSELL_JUHE_KEY", "Review-Key-4f1d2a9c")
	t.Setenv("TWOSELL_JUHE_URL", url)
	code, printed, stderr := reviewRun(t, t.Context(), "run", "--print-config")
	if code != 0 {
		t.Fatalf("run --print-config: exit %d: %s", code, stderr)
	}
	if strings.Contains(printed, "Gw-Pass-77aa31c9") {
		t.Fatalf("the URL's password was printed:\n%s", printed)
	}
	path := filepath.Join(t.TempDir(), "printed.yaml")
	if err := os.WriteFile(path, []byte(printed), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TWOSELL_JUHE_URL", "")
	var errOut syncBuffer
	cfg, _, err := config.Load("run", []string{"--config", path}, os.LookupEnv, &errOut)
	if err == nil && cfg.Juhe.URL != url {
		t.Errorf("the printed configuration loads without an error as juhe.url %q (was %q): want it refused, as a *** secret is, or the same URL", cfg.Juhe.URL, url)
	}
}

// README: "Every command exits 2 on a usage error: an unknown flag, or a
// flag's value its setting does not take (`--juhe-timeout 5`, `--juhe-mode
// foo`); a value from the file or the environment that is not valid is a
// configuration error (exit 1)". A flag value of the right type outside
// its setting's range exits 1, as a configuration error.
func TestFlagValueOutOfRangeIsAUsageError(t *testing.T) {
	t.Setenv("TWOSELL_JUHE_KEY", "Review-Key-4f1d2a9c")
	for _, args := range [][]string{
		{"run", "--print-config", "--max-in-flight", "0"},
		{"run", "--print-config", "--brokers", "kafka-1"},
		{"query", "17312345678", "--date", "20240102", "--juhe-timeout", "0s"},
		{"replay", "--dry-run", "--qps", "-1"},
		{"sim", "--key", "Review-Key-4f1d2a9c", "--addr", "no-port"},
	} {
		code, stdout, stderr := reviewRun(t, t.Context(), args...)
		if code != 2 || stdout != "" {
			t.Errorf("%v: exit %d, want 2; stderr: %s", args, code, strings.TrimSpace(stderr))
		}
	}
}

// dev reads no config file and no TWOSELL_* variable, yet a bad
// --metrics-addr is reported as run's setting: "set in the config file,
// TWOSELL_TELEMETRY_METRICS_ADDR or --metrics-addr", and exits 1 after the
// broker and the simulator were started. (A taken address names the flag
// alone: TestAddressInUseNamesTheFlag.)
func TestDevBadMetricsAddrNamesDevsFlag(t *testing.T) {
	code, _, stderr := reviewRun(t, t.Context(), "dev", "--kafka-addr", "127.0.0.1:0", "--sim-addr", "127.0.0.1:0",
		"--generate", "0", "--metrics-addr", "no-port")
	if code != 2 || !strings.Contains(stderr, "--metrics-addr") ||
		strings.Contains(stderr, "TWOSELL_TELEMETRY_METRICS_ADDR") || strings.Contains(stderr, "config file") {
		t.Errorf("exit %d, want 2 and only dev's flag named; stderr: %s", code, strings.TrimSpace(stderr))
	}
}

// A malformed command line is a usage error (exit 2) whatever the
// configuration: query checks the number of arguments first ("The command
// line first"), but a bad MOBILE or --date, replay's --from and ledger
// export's --from-day are checked only once the configuration is valid, so
// with a setting missing they exit 1 with the configuration's error, and
// the command line's mistake is not mentioned.
func TestUsageErrorsComeBeforeConfigurationErrors(t *testing.T) {
	t.Setenv("TWOSELL_JUHE_KEY", "")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"query", "12345", "--date", "20240102"}, "11 digits"},
		{[]string{"query", "17312345678", "--date", "tomorrow"}, "--date"},
		{[]string{"replay", "--output-topic", "backfill", "--from", "yesterday"}, "--from"},
		{[]string{"ledger", "export", "--from-day", "2024-06-01", "--sasl-mechanism", "plain"}, "--from-day"},
	} {
		code, stdout, stderr := reviewRun(t, t.Context(), tt.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, want 2 and %q named; stderr: %s", tt.args, code, tt.want, strings.TrimSpace(stderr))
		}
	}
}

// README (Replay): "Interrupted (SIGINT), it ... prints the summary and
// exits 1". Interrupted before its processor started (while the range is
// resolved or the ledger loads, seconds on a large ledger), it prints no
// summary, and the error blames the cluster: "kafka (brokers … without
// TLS, no SASL): listing topic …: context canceled". (run treats a signal
// while the ledger loads as a stop.)
func TestReplayInterruptedBeforeItStarts(t *testing.T) {
	k := kafkatest.New(t)
	_, url := newSim(t, juhesim.Faults{})
	cfg := testConfig(t, k, url, juhe.ModePlain)
	t.Setenv("TWOSELL_JUHE_KEY", testKey)
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // Ctrl-C
	code, stdout, stderr := reviewRun(t, ctx, replayArgs(cfg, k.Name("out"))...)
	if code != 1 || stdout == "" || strings.Contains(stderr, "kafka (brokers") {
		t.Errorf("exit %d (want 1), summary %q (want one), stderr %q (want no Kafka error)", code, stdout, strings.TrimSpace(stderr))
	}
	// The dry run too (found by a later review: estimateReplay's error went
	// through explain, and interrupted passed a dry run's through).
	code, _, stderr = reviewRun(t, ctx, replayArgs(cfg, k.Name("out"), "--dry-run")...)
	if code != 1 || strings.Contains(stderr, "kafka (brokers") || !strings.Contains(stderr, "interrupted") {
		t.Errorf("replay --dry-run interrupted: exit %d, stderr %q; want exit 1 saying it was interrupted, not a Kafka error",
			code, strings.TrimSpace(stderr))
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("write |1: broken pipe") }

// gen's result ("wrote N events to TOPIC ...") is its output on stdout; a
// write that fails is ignored and gen exits 0, as if it had reported.
// query and replay return the write's error (exit 1).
func TestGenReportsAFailedWriteOfItsResult(t *testing.T) {
	k := kafkatest.New(t)
	var stderr syncBuffer
	code := Main(t.Context(), []string{"gen", "--brokers", strings.Join(k.Brokers, ","), "--input-topic", k.Name("gen"), "--events", "3"},
		failingWriter{}, &stderr)
	if code == 0 {
		t.Errorf("gen: exit 0 although its result could not be written; stderr %q", stderr.String())
	}
}

// ledger export --output writes a temporary file and renames it over the
// old one, then sets it to 0644 whatever the old file's mode and the umask:
// a reconciliation file the user had made private (0600: order ids and
// per-number hashes of the bill) becomes readable by every user of the
// machine. os.Create, which the code means to imitate ("as a file os.Create
// makes"), keeps an existing file's mode.
func TestLedgerExportKeepsTheOutputFilesMode(t *testing.T) {
	k := kafkatest.New(t)
	ledger := k.Name("ledger")
	k.CreateTopics(1, ledger)
	path := filepath.Join(t.TempDir(), "june.csv")
	if err := os.WriteFile(path, []byte("last month\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := reviewRun(t, t.Context(), "ledger", "export", "--brokers", strings.Join(k.Brokers, ","), "--ledger-topic", ledger, "--output", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("--output %s was 0600, is %v after the export", path, fi.Mode().Perm())
	}
}
