package validate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// root is the repository's root, relative to this package.
const root = "../.."

// twosellBin is the binary built from ../../cmd/twosell by TestMain.
var twosellBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "twosell-validate-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	twosellBin = filepath.Join(dir, "twosell")
	build := exec.Command("go", "build", "-o", twosellBin, "./cmd/twosell")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building twosell:", err)
		os.Exit(1)
	}
	code := m.Run()
	stopProcesses()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoPath is a path of the repository.
func repoPath(parts ...string) string { return filepath.Join(append([]string{root}, parts...)...) }

// readRepoFile reads a file of the repository.
func readRepoFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoPath(parts...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// twosell runs the binary with args and exactly the environment env (plus
// PATH and HOME), and returns its stdout, stderr and exit status.
func twosell(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(twosellBin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("twosell %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

var (
	helpMu    sync.Mutex
	helpCache = map[string]map[string]bool{}
)

// flagsOf returns the flags "twosell CMD --help" lists.
func flagsOf(t *testing.T, cmd string) map[string]bool {
	t.Helper()
	helpMu.Lock()
	defer helpMu.Unlock()
	if f, ok := helpCache[cmd]; ok {
		return f
	}
	stdout, stderr, code := twosell(t, nil, cmd, "--help")
	if code != 0 {
		t.Fatalf("twosell %s --help: exit %d\n%s", cmd, code, stderr)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--?([a-z][a-z0-9-]*)`).FindAllStringSubmatch(stdout+stderr, -1) {
		flags[m[1]] = true
	}
	if len(flags) < 3 {
		t.Fatalf("twosell %s --help lists no flags:\n%s%s", cmd, stdout, stderr)
	}
	helpCache[cmd] = flags
	return flags
}

// checkFlags reports every flag of args (a command line after the
// subcommand) that "twosell CMD --help" does not list.
func checkFlags(t *testing.T, where, cmd string, args []string) {
	t.Helper()
	known := flagsOf(t, cmd)
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			t.Errorf("%s: flag %s is not in \"twosell %s --help\"", where, a, cmd)
		}
	}
}

// effectiveConfig is what "twosell run ARGS --print-config" prints with the
// environment env: the merged, validated configuration that "twosell run"
// would use.
type effectiveConfig struct {
	Kafka struct {
		Brokers     []string `json:"brokers"`
		Group       string   `json:"group"`
		InputTopic  string   `json:"input_topic"`
		OutputTopic string   `json:"output_topic"`
		DLQTopic    string   `json:"dlq_topic"`
	} `json:"kafka"`
	Juhe struct {
		URL  string `json:"url"`
		Key  string `json:"key"`
		Mode string `json:"mode"`
	} `json:"juhe"`
	Processing struct {
		OnUnavailable   string `json:"on_unavailable"`
		ShutdownTimeout string `json:"shutdown_timeout"`
	} `json:"processing"`
	Telemetry struct {
		MetricsAddr string `json:"metrics_addr"`
	} `json:"telemetry"`
}

// printConfig runs "twosell run ARGS --print-config" and decodes its output.
func printConfig(t *testing.T, where string, env map[string]string, args []string) effectiveConfig {
	t.Helper()
	stdout, stderr, code := twosell(t, env, append(append([]string{"run"}, args...), "--print-config")...)
	if code != 0 {
		t.Fatalf("%s: twosell run %s --print-config refuses the configuration (exit %d):\n%s",
			where, strings.Join(args, " "), code, stderr)
	}
	var c effectiveConfig
	if err := yaml.Unmarshal([]byte(stdout), &c); err != nil {
		t.Fatalf("%s: --print-config output: %v\n%s", where, err, stdout)
	}
	return c
}

// shutdownTimeout parses processing.shutdown_timeout as printed.
func (c effectiveConfig) shutdownTimeout(t *testing.T) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(c.Processing.ShutdownTimeout)
	if err != nil {
		t.Fatalf("processing.shutdown_timeout %q: %v", c.Processing.ShutdownTimeout, err)
	}
	return d
}

// metricsPort is the port of telemetry.metrics_addr.
func (c effectiveConfig) metricsPort(t *testing.T) string {
	t.Helper()
	i := strings.LastIndexByte(c.Telemetry.MetricsAddr, ':')
	if i < 0 {
		t.Fatalf("telemetry.metrics_addr %q has no port", c.Telemetry.MetricsAddr)
	}
	return c.Telemetry.MetricsAddr[i+1:]
}

// process is a twosell started in the background for the whole test run.
type process struct {
	cmd    *exec.Cmd
	lines  chan string   // stdout and stderr, line by line
	exited chan struct{} // closed when it has exited
	mu     sync.Mutex
	output strings.Builder
}

var (
	procMu    sync.Mutex
	processes []*process
)

// start runs twosell in the background; stopProcesses ends it.
func start(env map[string]string, args ...string) (*process, error) {
	cmd := exec.Command(twosellBin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, lines: make(chan string, 4096), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.output.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody is waiting for lines any more
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	procMu.Lock()
	processes = append(processes, p)
	procMu.Unlock()
	return p, nil
}

// waitLine returns the submatches of the first line matching re; the
// deadline only keeps a broken run from hanging the tests.
func (p *process) waitLine(re *regexp.Regexp) ([]string, error) {
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case line := <-p.lines:
			if m := re.FindStringSubmatch(line); m != nil {
				return m, nil
			}
		case <-p.exited:
			return nil, fmt.Errorf("twosell %v exited before printing a line matching %s:\n%s", p.cmd.Args[1:], re, p.logs())
		case <-deadline:
			return nil, fmt.Errorf("no line matching %s from twosell %v:\n%s", re, p.cmd.Args[1:], p.logs())
		}
	}
}

func (p *process) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// stopProcesses interrupts every process started and waits for it.
func stopProcesses() {
	procMu.Lock()
	defer procMu.Unlock()
	for _, p := range processes {
		_ = p.cmd.Process.Signal(os.Interrupt)
	}
	for _, p := range processes {
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
}

// A real "twosell run" for the tests that need its HTTP server and its
// metrics: "twosell dev" provides the Kafka broker (kfake), the juhe
// simulator and sample events; "twosell run" consumes them in a group of its
// own, with a daily budget so that the budget's series exist.
var (
	runOnce sync.Once
	runBase string // http://host:port of its metrics server
	runErr  error
)

func runningTwosell(t *testing.T) string {
	t.Helper()
	runOnce.Do(func() { runBase, runErr = startRun() })
	if runErr != nil {
		t.Fatal(runErr)
	}
	return runBase
}

func startRun() (string, error) {
	dev, err := start(nil, "dev", "--kafka-addr", "127.0.0.1:0", "--sim-addr", "127.0.0.1:0",
		"--metrics-addr", "", "--generate", "300", "--sim-latency", "1ms", "--show", "0")
	if err != nil {
		return "", err
	}
	broker, err := dev.waitLine(regexp.MustCompile(`^\s+kafka broker\s+(\S+)`))
	if err != nil {
		return "", err
	}
	sim, err := dev.waitLine(regexp.MustCompile(`^\s+juhe simulator\s+(\S+)`))
	if err != nil {
		return "", err
	}
	key, err := dev.waitLine(regexp.MustCompile(`^\s+other commands\s+TWOSELL_JUHE_KEY=(\S+)`))
	if err != nil {
		return "", err
	}
	run, err := start(map[string]string{
		"TWOSELL_JUHE_KEY":          key[1], // the dev simulator's own, as dev prints it
		"TWOSELL_JUHE_DAILY_BUDGET": "100000",
		"OTEL_TRACES_EXPORTER":      "none",
	}, "run", "--brokers", broker[1], "--group", "validate", "--juhe-url", sim[1],
		"--metrics-addr", "127.0.0.1:0", "--log-format", "json", "--log-level", "info")
	if err != nil {
		return "", err
	}
	line, err := run.waitLine(regexp.MustCompile(`^\{.*"msg":"starting".*$`))
	if err != nil {
		return "", err
	}
	var starting struct {
		MetricsAddr string `json:"metrics_addr"`
	}
	if err := json.Unmarshal([]byte(line[0]), &starting); err != nil || starting.MetricsAddr == "" {
		return "", fmt.Errorf("no metrics address in %q (%v)", line[0], err)
	}
	return "http://" + starting.MetricsAddr, nil
}

// get fetches a path of the running twosell.
func get(t *testing.T, base, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// metricNames returns the metric families of a /metrics page, with the
// series names of histograms (_bucket, _sum, _count) as well.
func metricNames(body string) map[string]bool {
	names := map[string]bool{}
	for line := range strings.Lines(body) {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		names[name] = true
	}
	return names
}

// scrapeUntil scrapes the running twosell until every name in want is
// exposed (some appear only after the first events, the first lag reading
// or the first paid call) and returns the names exposed; the deadline only
// keeps a broken run from hanging the tests.
func scrapeUntil(t *testing.T, want map[string]bool) map[string]bool {
	t.Helper()
	base := runningTwosell(t)
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		code, body := get(t, base, "/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d", code)
		}
		names := metricNames(body)
		var missing []string
		for n := range want {
			if !names[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			return names
		}
		if time.Now().After(deadline) {
			sort.Strings(missing)
			t.Fatalf("metrics queried by the dashboard or the alerts but not exposed by twosell run: %v\n/metrics:\n%s", missing, body)
		}
		<-tick.C
	}
}
