package validate

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

// loadCompose loads docker-compose.yml with the Compose specification's own
// loader (schema validation, interpolation, normalization, consistency
// checks), in the environment env, as "docker compose" would.
func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(abs, "docker-compose.yml")}},
		Environment: env,
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("twosell", true)
	})
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

// service returns a service of the project, failing if it is missing.
func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q", name)
	}
	return s
}

// environ is a service's environment with its values.
func environ(s types.ServiceConfig) map[string]string {
	env := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// The compose file loads, and what its services pass each other agrees:
// the flags of "twosell run" and "twosell sim" exist and give a
// configuration twosell accepts; brokers, topics, the simulator's URL, the
// metrics port, the collector, Prometheus and Grafana line up; the switch to
// the real API changes what the README says it does.
func TestCompose(t *testing.T) {
	p := loadCompose(t, map[string]string{})
	for _, name := range []string{"kafka", "kafka-init", "twosell", "twosell-sim", "otel-collector", "jaeger", "prometheus", "grafana"} {
		service(t, p, name)
	}

	// Kafka: the official image, one KRaft node.
	kafka := service(t, p, "kafka")
	if !strings.HasPrefix(kafka.Image, "apache/kafka:") {
		t.Errorf("kafka image %q, want the official apache/kafka", kafka.Image)
	}
	kenv := environ(kafka)
	if kenv["KAFKA_PROCESS_ROLES"] != "broker,controller" || kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "" {
		t.Errorf("kafka is not a single KRaft broker+controller: %v", kenv)
	}
	advertised := strings.Split(kenv["KAFKA_ADVERTISED_LISTENERS"], ",")

	// The topics the one-shot service creates, and with how many partitions.
	initCmd := strings.Join(service(t, p, "kafka-init").Command, " ")
	created := map[string]bool{}
	for _, m := range regexp.MustCompile(`for topic in ([^;]+);`).FindAllStringSubmatch(initCmd, -1) {
		for _, topic := range strings.Fields(m[1]) {
			created[topic] = true
		}
	}
	if len(created) == 0 || !strings.Contains(initCmd, "/opt/kafka/bin/kafka-topics.sh") {
		t.Fatalf("kafka-init creates no topic with kafka-topics.sh: %q", initCmd)
	}
	if d := service(t, p, "kafka-init").DependsOn["kafka"]; d.Condition != types.ServiceConditionHealthy {
		t.Errorf("kafka-init does not wait for kafka to be healthy")
	}

	// twosell run: its flags exist and give a configuration twosell accepts.
	tw := service(t, p, "twosell")
	if len(tw.Command) == 0 || tw.Command[0] != "run" {
		t.Fatalf("twosell's command %q is not \"run ...\"", tw.Command)
	}
	checkFlags(t, "docker-compose.yml twosell", "run", tw.Command[1:])
	cfg := printConfig(t, "docker-compose.yml twosell", environ(tw), tw.Command[1:])
	for _, b := range cfg.Kafka.Brokers {
		if !slices.Contains(advertised, "PLAINTEXT://"+b) {
			t.Errorf("twosell's broker %s is not a listener kafka advertises (%v)", b, advertised)
		}
	}
	for _, topic := range []string{cfg.Kafka.InputTopic, cfg.Kafka.OutputTopic, cfg.Kafka.DLQTopic} {
		if !created[topic] {
			t.Errorf("twosell uses topic %q, which kafka-init does not create (%v)", topic, created)
		}
	}
	if d := tw.DependsOn["kafka-init"]; d.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("twosell does not wait for the topics")
	}
	if tw.StopGracePeriod == nil || time.Duration(*tw.StopGracePeriod) <= cfg.shutdownTimeout(t) {
		t.Errorf("twosell's stop_grace_period %v is not longer than processing.shutdown_timeout %s", tw.StopGracePeriod, cfg.Processing.ShutdownTimeout)
	}
	port := cfg.metricsPort(t)
	published := false
	for _, pc := range tw.Ports {
		published = published || strconv.Itoa(int(pc.Target)) == port
	}
	if !published {
		t.Errorf("twosell's metrics port %s is not among its ports %v", port, tw.Ports)
	}
	if tw.Build == nil || tw.Build.Dockerfile != "deploy/Dockerfile" {
		t.Errorf("twosell is not built from deploy/Dockerfile: %+v", tw.Build)
	} else if _, err := os.Stat(repoPath(tw.Build.Dockerfile)); err != nil {
		t.Error(err)
	}

	// The simulator: its flags exist, and twosell's URL is its address.
	sim := service(t, p, "twosell-sim")
	if len(sim.Command) == 0 || sim.Command[0] != "sim" {
		t.Fatalf("twosell-sim's command %q is not \"sim ...\"", sim.Command)
	}
	checkFlags(t, "docker-compose.yml twosell-sim", "sim", sim.Command[1:])
	simAddr := flagValue(sim.Command, "addr")
	u, err := url.Parse(cfg.Juhe.URL)
	if err != nil || u.Hostname() != "twosell-sim" || ":"+u.Port() != simAddr {
		t.Errorf("twosell's juhe.url %s is not the simulator's address (twosell-sim, --addr %s)", cfg.Juhe.URL, simAddr)
	}
	if environ(sim)["TWOSELL_JUHE_KEY"] != environ(tw)["TWOSELL_JUHE_KEY"] {
		t.Errorf("twosell's key is not one the simulator accepts")
	}

	// Traces: twosell -> collector (OTLP/HTTP) -> Jaeger (OTLP/gRPC).
	otlp, err := url.Parse(environ(tw)["OTEL_EXPORTER_OTLP_ENDPOINT"])
	if err != nil || otlp.Hostname() != "otel-collector" {
		t.Fatalf("twosell's OTEL_EXPORTER_OTLP_ENDPOINT %q is not the collector", environ(tw)["OTEL_EXPORTER_OTLP_ENDPOINT"])
	}
	col := collectorConfig(t, p)
	if !strings.HasSuffix(col.Receivers.OTLP.Protocols.HTTP.Endpoint, ":"+otlp.Port()) {
		t.Errorf("the collector's OTLP/HTTP receiver %q is not on twosell's port %s", col.Receivers.OTLP.Protocols.HTTP.Endpoint, otlp.Port())
	}
	jaeger := col.Exporters["otlp/jaeger"].Endpoint
	if host, _, _ := strings.Cut(jaeger, ":"); host != "jaeger" || !slices.Contains(col.Service.Pipelines.Traces.Exporters, "otlp/jaeger") {
		t.Errorf("the collector does not export traces to the jaeger service (%q)", jaeger)
	}

	// Prometheus scrapes twosell's metrics port and loads the alert rules.
	prom := prometheusConfig(t, p)
	var targets []string
	for _, sc := range prom.ScrapeConfigs {
		for _, s := range sc.StaticConfigs {
			targets = append(targets, s.Targets...)
		}
	}
	if !slices.Contains(targets, "twosell:"+port) {
		t.Errorf("Prometheus scrapes %v, not twosell:%s", targets, port)
	}
	rules := mountedFrom(t, p, "prometheus")
	for _, rf := range prom.RuleFiles {
		if src, ok := rules[rf]; !ok || filepath.Base(src) != "alerts.yml" {
			t.Errorf("Prometheus' rule file %s is not deploy/prometheus/alerts.yml (mounts %v)", rf, rules)
		}
	}
	if len(prom.RuleFiles) == 0 {
		t.Errorf("Prometheus loads no rule file")
	}

	// Grafana: the datasource is the prometheus service, the provider loads
	// the mounted dashboards, and the dashboard uses the datasource's uid.
	mounts := mountedFrom(t, p, "grafana")
	var provider struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name, Folder, Type string
			DisableDeletion    bool `json:"disableDeletion"`
			AllowUIUpdates     bool `json:"allowUiUpdates"`
			Options            struct{ Path string }
		} `json:"providers"`
	}
	strictYAML(t, readRepoFile(t, "deploy/grafana/provisioning/dashboards/twosell.yml"), &provider)
	if len(provider.Providers) != 1 || mounts[provider.Providers[0].Options.Path] == "" {
		t.Errorf("the dashboard provider's path is not a mounted directory: %+v (mounts %v)", provider, mounts)
	}
	if _, ok := mounts["/etc/grafana/provisioning"]; !ok {
		t.Errorf("Grafana's provisioning directory is not mounted: %v", mounts)
	}
	ds := grafanaDatasource(t)
	if u, err := url.Parse(ds.URL); err != nil || u.Hostname() != "prometheus" {
		t.Errorf("Grafana's datasource %s is not the prometheus service", ds.URL)
	}
	for _, uid := range dashboardDatasourceUIDs(t) {
		if uid != ds.UID {
			t.Errorf("a dashboard panel uses datasource uid %q, not the provisioned %q", uid, ds.UID)
		}
	}

	// Every file mounted from the repository exists.
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("service %s mounts %s: %v", name, v.Source, err)
				}
			}
		}
	}
}

// The switch the README documents: TWOSELL_JUHE_URL and the key in the
// environment (or .env) point twosell at the real API, and the sample
// events are not produced.
func TestComposeRealAPI(t *testing.T) {
	env := map[string]string{
		"TWOSELL_JUHE_URL":    "https://apis.juhe.cn",
		"TWOSELL_JUHE_KEY":    "a-real-key",
		"TWOSELL_JUHE_OPENID": "a-real-openid",
		"TWOSELL_JUHE_MODE":   "sha256+aes",
	}
	p := loadCompose(t, env)
	tw := service(t, p, "twosell")
	cfg := printConfig(t, "docker-compose.yml twosell with the real API", environ(tw), tw.Command[1:])
	if cfg.Juhe.URL != "https://apis.juhe.cn" || cfg.Juhe.Mode != "sha256+aes" {
		t.Errorf("with TWOSELL_JUHE_URL and TWOSELL_JUHE_MODE set, twosell uses %s in mode %s", cfg.Juhe.URL, cfg.Juhe.Mode)
	}
	if environ(tw)["TWOSELL_JUHE_KEY"] != "a-real-key" {
		t.Errorf("TWOSELL_JUHE_KEY does not reach twosell")
	}
	if strings.Contains(strings.Join(tw.Command, " "), "a-real-key") {
		t.Errorf("the key is on twosell's command line")
	}
	events := service(t, p, "sample-events")
	if environ(events)["TWOSELL_JUHE_URL"] == "" || !strings.Contains(strings.Join(events.Command, " "), `if [ -n "$TWOSELL_JUHE_URL" ]`) {
		t.Errorf("sample-events does not skip the paid sample events with the real API")
	}
}

// flagValue returns the value of --name in a command line (--name=v or
// --name v), or "".
func flagValue(args []string, name string) string {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// mountedFrom maps a service's bind mounts: target to source.
func mountedFrom(t *testing.T, p *types.Project, name string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, v := range service(t, p, name).Volumes {
		if v.Type == types.VolumeTypeBind {
			m[v.Target] = v.Source
		}
	}
	return m
}

// mountedFile reads the repository file a service mounts at target.
func mountedFile(t *testing.T, p *types.Project, name, target string) []byte {
	t.Helper()
	src, ok := mountedFrom(t, p, name)[target]
	if !ok {
		t.Fatalf("service %s mounts nothing at %s", name, target)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// strictYAML decodes YAML into v, rejecting fields v does not have.
func strictYAML(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		t.Fatalf("%T: %v", v, err)
	}
}

// collectorConfig is the part of the collector's configuration the stack
// relies on, read from the file the otel-collector service mounts as its
// --config.
type otelConfig struct {
	Receivers struct {
		OTLP struct {
			Protocols struct {
				GRPC struct{ Endpoint string } `json:"grpc"`
				HTTP struct{ Endpoint string } `json:"http"`
			} `json:"protocols"`
		} `json:"otlp"`
	} `json:"receivers"`
	Processors map[string]any `json:"processors"`
	Exporters  map[string]struct {
		Endpoint string
		TLS      struct{ Insecure bool } `json:"tls"`
	} `json:"exporters"`
	Extensions map[string]struct{ Endpoint string } `json:"extensions"`
	Service    struct {
		Extensions []string `json:"extensions"`
		Pipelines  struct {
			Traces struct {
				Receivers  []string `json:"receivers"`
				Processors []string `json:"processors"`
				Exporters  []string `json:"exporters"`
			} `json:"traces"`
		} `json:"pipelines"`
	} `json:"service"`
}

func collectorConfig(t *testing.T, p *types.Project) otelConfig {
	t.Helper()
	col := service(t, p, "otel-collector")
	target := flagValue(col.Command, "config")
	if target == "" {
		t.Fatalf("otel-collector has no --config: %q", col.Command)
	}
	var c otelConfig
	strictYAML(t, mountedFile(t, p, "otel-collector", target), &c)
	for _, stage := range [][]string{c.Service.Pipelines.Traces.Receivers, c.Service.Pipelines.Traces.Exporters} {
		if len(stage) == 0 {
			t.Errorf("the collector's traces pipeline is incomplete: %+v", c.Service.Pipelines.Traces)
		}
	}
	for _, proc := range c.Service.Pipelines.Traces.Processors {
		if _, ok := c.Processors[proc]; !ok {
			t.Errorf("the traces pipeline names processor %q, which is not configured", proc)
		}
	}
	return c
}

// promConfig is the part of prometheus.yml the stack relies on, decoded
// strictly (Prometheus' own loader would bring in every service discovery).
type promConfig struct {
	Global struct {
		ScrapeInterval     string `json:"scrape_interval"`
		EvaluationInterval string `json:"evaluation_interval"`
	} `json:"global"`
	RuleFiles     []string `json:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `json:"job_name"`
		MetricsPath   string `json:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `json:"targets"`
		} `json:"static_configs"`
	} `json:"scrape_configs"`
}

func prometheusConfig(t *testing.T, p *types.Project) promConfig {
	t.Helper()
	prom := service(t, p, "prometheus")
	var c promConfig
	strictYAML(t, mountedFile(t, p, "prometheus", flagValue(prom.Command, "config.file")), &c)
	for _, sc := range c.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("Prometheus scrapes %s, twosell serves /metrics", sc.MetricsPath)
		}
	}
	return c
}

// datasource is Grafana's provisioned Prometheus datasource.
type datasource struct {
	Name, UID, Type, Access, URL string
	IsDefault                    bool           `json:"isDefault"`
	JSONData                     map[string]any `json:"jsonData"`
}

func grafanaDatasource(t *testing.T) datasource {
	t.Helper()
	var f struct {
		APIVersion  int          `json:"apiVersion"`
		Datasources []datasource `json:"datasources"`
	}
	strictYAML(t, readRepoFile(t, "deploy/grafana/provisioning/datasources/prometheus.yml"), &f)
	if len(f.Datasources) != 1 || f.Datasources[0].Type != "prometheus" {
		t.Fatalf("want one prometheus datasource: %+v", f)
	}
	return f.Datasources[0]
}
