package main

// What a review of README.md against the commands found (each test failed
// before its fix).

import (
	"net"
	"os"
	"strings"
	"testing"

	"github.com/twosell/twosell/processor/kafkatest"
)

// flagHelp returns the usage of --name in a command's -h output: the
// flag's line and its description's.
func flagHelp(t *testing.T, help, name string) string {
	t.Helper()
	lines := strings.Split(help, "\n")
	for i, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "--"+name && i+1 < len(lines) {
			return l + "\n" + lines[i+1]
		}
	}
	t.Fatalf("no --%s in the help:\n%s", name, help)
	return ""
}

// The error for an unknown TWOSELL_* variable says where every setting is
// listed: it named run -h, which lists only those with flags
// (juhe.daily_budget, the error's example, is not among them).
// --print-config prints them all.
func TestUnknownEnvErrorNamesWhereEverySettingIsListed(t *testing.T) {
	t.Setenv("TWOSELL_JUHE_DAILYBUDGET", "5")
	var stdout, stderr syncBuffer
	if code := Main(t.Context(), []string{"run", "--print-config"}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), `README's Configuration lists every setting; "twosell run --print-config" prints them`) {
		t.Fatalf("the error does not say where the settings are listed: %s", stderr.String())
	}
	os.Unsetenv("TWOSELL_JUHE_DAILYBUDGET") // restored by Setenv's cleanup
	t.Setenv("TWOSELL_JUHE_KEY", "review-key-123456")
	var out, errOut syncBuffer
	if code := Main(t.Context(), []string{"run", "--print-config"}, &out, &errOut); code != 0 {
		t.Fatalf("run --print-config: exit %d: %s", code, errOut.String())
	}
	for _, key := range []string{"daily_budget:", "key:", "open_for:"} {
		if !strings.Contains(out.String(), key) {
			t.Errorf("run --print-config does not list %s", key)
		}
	}
}

// replay takes --output-topic and --dlq-topic from its flags alone:
// replay -h must not show kafka.*'s defaults and variables for them
// (TWOSELL_KAFKA_DLQ_TOPIC is ignored; the dead letters go to
// <output-topic>.dlq).
func TestReplayHelpShowsNoDefaultReplayDoesNotUse(t *testing.T) {
	var stdout, stderr syncBuffer
	if code := Main(t.Context(), []string{"replay", "-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if h := flagHelp(t, stderr.String(), "dlq-topic"); strings.Contains(h, "default registrations.dlq") || strings.Contains(h, "env TWOSELL_KAFKA_DLQ_TOPIC") ||
		!strings.Contains(h, "--dlq-topic string") || !strings.Contains(h, `the output topic + ".dlq"`) {
		t.Errorf("replay -h, --dlq-topic:\n%s", h)
	}
	if h := flagHelp(t, stderr.String(), "output-topic"); strings.Contains(h, "default registrations.enriched") || strings.Contains(h, "env TWOSELL_KAFKA_OUTPUT_TOPIC") {
		t.Errorf("replay -h advertises a default and a variable for a flag required on the command line:\n%s", h)
	}
	if h := flagHelp(t, stderr.String(), "input-topic"); !strings.Contains(h, "env TWOSELL_KAFKA_INPUT_TOPIC") {
		t.Errorf("replay -h, --input-topic (from the file and the environment too):\n%s", h)
	}
}

// A flag given a value its setting does not take is a usage error (exit
// 2), whatever the setting: --juhe-timeout 5 was, --juhe-mode foo exited 1.
func TestBadFlagValueIsAUsageError(t *testing.T) {
	t.Setenv("TWOSELL_JUHE_KEY", "review-key-123456")
	for _, args := range [][]string{
		{"dev", "--juhe-mode", "foo"},
		{"query", "17312345678", "--date", "20240102", "--juhe-mode", "foo"},
		{"query", "17312345678", "--date", "20240102", "--juhe-method", "PUT"},
		{"query", "17312345678", "--date", "20240102", "--juhe-timeout", "5"},
		{"run", "--print-config", "--juhe-mode", "foo"},
		{"run", "--print-config", "--ordering", "foo"},
		{"run", "--print-config", "--log-level", "loud"},
		{"replay", "--dry-run", "--on-budget", "wait"},
	} {
		var stdout, stderr syncBuffer
		if code := Main(t.Context(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr: %s", args, code, strings.TrimSpace(stderr.String()))
		}
	}
	// Case does not matter, on a flag as in the file.
	var stdout, stderr syncBuffer
	if code := Main(t.Context(), []string{"run", "--print-config", "--juhe-mode", "MD5", "--juhe-method", "post", "--ordering", "Key"}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "mode: md5") || !strings.Contains(stdout.String(), "method: POST") {
		t.Errorf("exit %d; stderr %s\n%s", code, stderr.String(), stdout.String())
	}
}

// replay --dry-run makes no call, so it needs no juhe.key, but it needs the
// cache secret: missing, it is a configuration error found before Kafka is
// asked anything, not a Kafka error.
func TestDryRunMissingSecretIsAConfigurationError(t *testing.T) {
	t.Setenv("TWOSELL_JUHE_KEY", "")
	t.Setenv("TWOSELL_CACHE_SECRET", "")
	var stdout, stderr syncBuffer
	code := Main(t.Context(), []string{"replay", "--dry-run", "--brokers", "127.0.0.1:1", "--progress", "none"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "cache.secret: must be set for a dry run, or juhe.key") ||
		strings.Contains(stderr.String(), "kafka (brokers") {
		t.Errorf("exit %d, stderr %s", code, strings.TrimSpace(stderr.String()))
	}
	// With a key, it goes on to Kafka.
	t.Setenv("TWOSELL_JUHE_KEY", "review-key-123456")
	k := kafkatest.New(t)
	in := k.Name("dry-in")
	k.CreateTopics(1, in)
	var out, errOut syncBuffer
	if code := Main(t.Context(), []string{"replay", "--dry-run", "--brokers", strings.Join(k.Brokers, ","),
		"--input-topic", in, "--ledger-topic", k.Name("dry-ledger"), "--progress", "none"}, &out, &errOut); code != 0 {
		t.Errorf("with a key: exit %d, stderr %s", code, errOut.String())
	}
}

// Every address a command listens on, taken, says which flag to change:
// dev's --metrics-addr (whose error named telemetry.metrics_addr, which dev
// does not read), sim's and broker's --addr.
func TestAddressInUseNamesTheFlag(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	for _, args := range [][]string{
		{"dev", "--kafka-addr", "127.0.0.1:0", "--sim-addr", "127.0.0.1:0", "--generate", "0", "--metrics-addr", addr},
		{"sim", "--key", "review-key-123456", "--addr", addr},
		{"broker", "--addr", addr},
	} {
		flag := args[len(args)-2]
		var stdout, stderr syncBuffer
		code := Main(t.Context(), args, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), "choose another address with "+flag) {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %s named", args[0], code, stderr.String(), flag)
		}
		if args[0] == "dev" && (strings.Contains(stderr.String(), "telemetry.metrics_addr") || strings.Contains(stderr.String(), "WARN")) {
			t.Errorf("dev: %q", stderr.String())
		}
	}
}
