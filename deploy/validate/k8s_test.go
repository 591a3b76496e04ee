package validate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const k8sDir = "deploy/k8s"

// manifest is one YAML document of deploy/k8s.
type manifest struct {
	file       string
	doc        []byte
	apiVersion string
	kind       string
	name       string
}

// loadManifests reads every document of every .yaml file in deploy/k8s but
// the kustomization.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	files, err := filepath.Glob(repoPath(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []manifest
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
			if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(doc, "")) == "" {
				continue
			}
			var head struct {
				APIVersion string            `json:"apiVersion"`
				Kind       string            `json:"kind"`
				Metadata   metav1.ObjectMeta `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s: %v", filepath.Base(f), err)
			}
			out = append(out, manifest{filepath.Base(f), []byte(doc), head.APIVersion, head.Kind, head.Metadata.Name})
		}
	}
	return out
}

// k8sObjects are the manifests, decoded.
type k8sObjects struct {
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	pdbs        map[string]*policyv1.PodDisruptionBudget
	scaled      map[string]*scaledObject
	files       map[string]bool
}

// scaledObject is the part of KEDA's ScaledObject the cross-checks read;
// the whole object is validated against KEDA's CRD schema first.
type scaledObject struct {
	Metadata metav1.ObjectMeta `json:"metadata"`
	Spec     struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		Triggers        []struct {
			Type     string            `json:"type"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// decodeManifests decodes each manifest strictly into its official type:
// unknown or duplicate fields are errors, as with kubectl --validate=strict.
// The ScaledObject goes through the openAPIV3Schema of KEDA's CRD.
func decodeManifests(t *testing.T) k8sObjects {
	t.Helper()
	o := k8sObjects{
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, scaled: map[string]*scaledObject{},
		files: map[string]bool{},
	}
	var kedaSchema *schema
	for _, m := range loadManifests(t) {
		o.files[m.file] = true
		strict := func(v any) {
			if err := yaml.UnmarshalStrict(m.doc, v); err != nil {
				t.Errorf("%s (%s %s): %v", m.file, m.kind, m.name, err)
			}
		}
		switch m.apiVersion + " " + m.kind {
		case "v1 ConfigMap":
			v := &corev1.ConfigMap{}
			strict(v)
			o.configMaps[m.name] = v
		case "v1 Secret":
			v := &corev1.Secret{}
			strict(v)
			o.secrets[m.name] = v
		case "apps/v1 Deployment":
			v := &appsv1.Deployment{}
			strict(v)
			o.deployments[m.name] = v
		case "v1 Service":
			v := &corev1.Service{}
			strict(v)
			o.services[m.name] = v
		case "policy/v1 PodDisruptionBudget":
			v := &policyv1.PodDisruptionBudget{}
			strict(v)
			o.pdbs[m.name] = v
		case "keda.sh/v1alpha1 ScaledObject":
			if kedaSchema == nil {
				kedaSchema = crdSchema(t, kedaFile(t, "config/crd/bases/keda.sh_scaledobjects.yaml"), "v1alpha1")
			}
			var doc map[string]any
			if err := yaml.Unmarshal(m.doc, &doc); err != nil {
				t.Fatal(err)
			}
			// The API server validates metadata itself, as ObjectMeta.
			meta, _ := json.Marshal(doc["metadata"])
			if err := yaml.UnmarshalStrict(meta, &metav1.ObjectMeta{}); err != nil {
				t.Errorf("%s: metadata: %v", m.file, err)
			}
			delete(doc, "metadata")
			for _, e := range kedaSchema.validate("ScaledObject", doc) {
				t.Errorf("%s: %s", m.file, e)
			}
			v := &scaledObject{}
			if err := yaml.Unmarshal(m.doc, v); err != nil {
				t.Fatal(err)
			}
			o.scaled[m.name] = v
		default:
			t.Errorf("%s: %s %s is not a kind these checks know", m.file, m.apiVersion, m.kind)
		}
	}
	return o
}

// Every manifest decodes strictly into its official type, and the manifests
// agree with each other and with twosell: ports, probe paths, the Secret's
// keys, the ConfigMap's file, the flags and the configuration (through the
// binary), topics and group in the ScaledObject, its maximum and the input's
// partitions, the kustomization's list.
func TestKubernetes(t *testing.T) {
	o := decodeManifests(t)
	if len(o.deployments) != 1 || len(o.scaled) != 1 || len(o.services) != 1 || len(o.pdbs) != 1 || len(o.configMaps) != 1 {
		t.Fatalf("want one Deployment, ScaledObject, Service, PodDisruptionBudget and ConfigMap; have %d, %d, %d, %d, %d",
			len(o.deployments), len(o.scaled), len(o.services), len(o.pdbs), len(o.configMaps))
	}
	var dep *appsv1.Deployment
	for _, d := range o.deployments {
		dep = d
	}
	pod := dep.Spec.Template.Spec
	podLabels := labels.Set(dep.Spec.Template.Labels)
	if sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector); err != nil || !sel.Matches(podLabels) {
		t.Errorf("the Deployment's selector does not match its pods (%v)", err)
	}
	if dep.Spec.Replicas != nil {
		t.Errorf("the Deployment sets replicas; KEDA owns them")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, have %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Fatalf("the container's args %q are not \"run ...\"", c.Args)
	}
	checkFlags(t, "deployment.yaml", "run", c.Args[1:])

	// The configuration file: --config is a file of a mounted ConfigMap.
	configPath := flagValue(c.Args, "config")
	var cmFile []byte
	for _, vm := range c.VolumeMounts {
		if filepath.Dir(configPath) != vm.MountPath {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				cm := o.configMaps[v.ConfigMap.Name]
				if cm == nil {
					t.Fatalf("volume %s mounts ConfigMap %s, which is not among the manifests", v.Name, v.ConfigMap.Name)
				}
				data, ok := cm.Data[filepath.Base(configPath)]
				if !ok {
					t.Fatalf("ConfigMap %s has no key %s (--config %s)", cm.Name, filepath.Base(configPath), configPath)
				}
				cmFile = []byte(data)
			}
		}
	}
	if cmFile == nil {
		t.Fatalf("--config %s is not a file of a mounted ConfigMap", configPath)
	}

	// The environment: values as given, secrets from a Secret that has
	// the key (the example stands for the real one), never in clear.
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s := o.secrets[ref.Name]
			if s == nil {
				t.Errorf("env %s: Secret %s is not exemplified in %s (secret.example.yaml)", e.Name, ref.Name, k8sDir)
				continue
			}
			if _, ok := s.StringData[ref.Key]; !ok {
				if _, ok := s.Data[ref.Key]; !ok {
					t.Errorf("env %s: Secret %s has no key %q", e.Name, ref.Name, ref.Key)
				}
			}
			env[e.Name] = "from-secret-" + ref.Key
		case e.ValueFrom != nil:
			// Downward API (GOMEMLIMIT from the memory limit): not config.
			if e.ValueFrom.ResourceFieldRef != nil && c.Resources.Limits.Memory().IsZero() {
				t.Errorf("env %s takes the memory limit, which is not set", e.Name)
			}
		case strings.Contains(strings.ToUpper(e.Name), "KEY") || strings.Contains(strings.ToUpper(e.Name), "OPENID") || strings.Contains(strings.ToUpper(e.Name), "PASSWORD"):
			t.Errorf("env %s is a secret in clear; take it from a Secret", e.Name)
		default:
			env[e.Name] = e.Value
		}
	}
	// GOMEMLIMIT: under the container's memory limit, with room for what
	// the runtime's limit does not cover (stacks, kernel buffers, the heap's
	// growth until the collector runs): at 100% the container is killed
	// before the collector works hard.
	if v, ok := env["GOMEMLIMIT"]; !ok {
		t.Error("no GOMEMLIMIT: the Go runtime does not know the container's memory limit")
	} else if n, limit := memLimitBytes(t, v), c.Resources.Limits.Memory().Value(); n < limit/2 || n*100 > limit*95 {
		t.Errorf("GOMEMLIMIT %s is %.0f%% of the memory limit %d bytes; want 50–95%%", v, float64(n)*100/float64(limit), limit)
	}
	for _, want := range []string{"TWOSELL_JUHE_KEY", "TWOSELL_JUHE_OPENID"} {
		if _, ok := env[want]; !ok {
			t.Errorf("the container does not take %s from a Secret", want)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, filepath.Base(configPath))
	if err := os.WriteFile(file, cmFile, 0o600); err != nil {
		t.Fatal(err)
	}
	args := slices.Clone(c.Args[1:])
	for i, a := range args {
		switch {
		case a == "--config" || a == "-config":
			args[i+1] = file
		case strings.HasPrefix(a, "--config="):
			args[i] = "--config=" + file
		}
	}
	cfg := printConfig(t, "deployment.yaml with configmap.yaml", env, args)

	// Ports: telemetry.metrics_addr = the container port = the probes' =
	// the Service's target.
	port := cfg.metricsPort(t)
	named := map[string]int32{}
	for _, p := range c.Ports {
		named[p.Name] = p.ContainerPort
	}
	resolve := func(p intstr.IntOrString) string {
		if p.Type == intstr.String {
			n, ok := named[p.StrVal]
			if !ok {
				return "unknown port name " + p.StrVal
			}
			return strconv.Itoa(int(n))
		}
		return strconv.Itoa(int(p.IntVal))
	}
	if strconv.Itoa(int(named["metrics"])) != port {
		t.Errorf("container port \"metrics\" %d, telemetry.metrics_addr's port %s", named["metrics"], port)
	}
	probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe}
	wantPath := map[string]string{"liveness": "/healthz", "readiness": "/readyz", "startup": "/healthz"}
	for kind, p := range probes {
		if p == nil {
			if kind != "startup" {
				t.Errorf("no %s probe", kind)
			}
			continue
		}
		if p.HTTPGet == nil || p.HTTPGet.Path != wantPath[kind] || resolve(p.HTTPGet.Port) != port {
			t.Errorf("%s probe %+v: want GET %s on port %s", kind, p.HTTPGet, wantPath[kind], port)
		}
	}
	for _, s := range o.services {
		if sel := labels.SelectorFromSet(s.Spec.Selector); len(s.Spec.Selector) == 0 || !sel.Matches(podLabels) {
			t.Errorf("Service %s does not select the Deployment's pods", s.Name)
		}
		if len(s.Spec.Ports) == 0 || resolve(s.Spec.Ports[0].TargetPort) != port {
			t.Errorf("Service %s does not target the metrics port %s", s.Name, port)
		}
	}
	if podPort := dep.Spec.Template.Annotations["prometheus.io/port"]; podPort != "" && podPort != port {
		t.Errorf("annotation prometheus.io/port %s, metrics port %s", podPort, port)
	}

	// Graceful termination outlasts the shutdown.
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if grace <= cfg.shutdownTimeout(t) {
		t.Errorf("terminationGracePeriodSeconds %v is not longer than processing.shutdown_timeout %s", grace, cfg.Processing.ShutdownTimeout)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("the container's resources are incomplete: %+v", c.Resources)
	}

	// The disruption budget covers the pods.
	for _, p := range o.pdbs {
		if sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector); err != nil || !sel.Matches(podLabels) {
			t.Errorf("PodDisruptionBudget %s does not select the pods", p.Name)
		}
	}

	// KEDA: the kafka trigger on this group's lag on the input topic.
	for _, so := range o.scaled {
		if so.Spec.ScaleTargetRef.Name != dep.Name || (so.Spec.ScaleTargetRef.Kind != "" && so.Spec.ScaleTargetRef.Kind != "Deployment") {
			t.Errorf("ScaledObject %s scales %+v, not Deployment %s", so.Metadata.Name, so.Spec.ScaleTargetRef, dep.Name)
		}
		if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "kafka" {
			t.Fatalf("ScaledObject %s: want one kafka trigger, have %+v", so.Metadata.Name, so.Spec.Triggers)
		}
		md := so.Spec.Triggers[0].Metadata
		checkKafkaScaler(t, md)
		for key, want := range map[string]string{
			"bootstrapServers":  strings.Join(cfg.Kafka.Brokers, ","),
			"consumerGroup":     cfg.Kafka.Group,
			"topic":             cfg.Kafka.InputTopic,
			"offsetResetPolicy": "earliest", // twosell starts a new group at the beginning
		} {
			if md[key] != want {
				t.Errorf("ScaledObject trigger %s = %q, want %q (from the ConfigMap's configuration)", key, md[key], want)
			}
		}
		if so.Spec.MaxReplicaCount == nil || int(*so.Spec.MaxReplicaCount) != inputPartitions(t) {
			t.Errorf("ScaledObject maxReplicaCount %v, want the input topic's %d partitions", so.Spec.MaxReplicaCount, inputPartitions(t))
		}
	}

	// The kustomization lists every manifest but the example Secret.
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
		Images     []struct {
			Name, NewName, NewTag, Digest string
		} `json:"images"`
	}
	strictYAML(t, readRepoFile(t, k8sDir, "kustomization.yaml"), &k)
	if k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: kind %q", k.Kind)
	}
	for _, r := range k.Resources {
		if !o.files[r] {
			t.Errorf("kustomization.yaml lists %s, which is not a manifest here", r)
		}
	}
	for f := range o.files {
		if !slices.Contains(k.Resources, f) && f != "secret.example.yaml" {
			t.Errorf("kustomization.yaml does not list %s", f)
		}
	}
	if slices.Contains(k.Resources, "secret.example.yaml") {
		t.Errorf("kustomization.yaml applies the example Secret over the real one")
	}
	image, _, _ := strings.Cut(c.Image, ":")
	for _, img := range k.Images {
		if img.Name != image {
			t.Errorf("kustomization.yaml sets image %s, the container's is %s", img.Name, image)
		}
	}
}

// checkKafkaScaler checks a kafka trigger's metadata against KEDA's own
// generated scaler schema (schema/generated/scalers-schema.json of its
// module): every key is a parameter of the kafka scaler that metadata may
// set, required ones are there, and enumerated values are allowed.
func checkKafkaScaler(t *testing.T, md map[string]string) {
	t.Helper()
	var s struct {
		Scalers []struct {
			Type       string `json:"type"`
			Parameters []struct {
				Name             string   `json:"name"`
				Optional         bool     `json:"optional"`
				Default          string   `json:"default"`
				AllowedValue     []string `json:"allowedValue"`
				MetadataReadable bool     `json:"metadataVariableReadable"`
			} `json:"parameters"`
		} `json:"scalers"`
	}
	if err := json.Unmarshal(kedaFile(t, "schema/generated/scalers-schema.json"), &s); err != nil {
		t.Fatal(err)
	}
	for _, sc := range s.Scalers {
		if sc.Type != "kafka" {
			continue
		}
		known := map[string]bool{}
		for _, p := range sc.Parameters {
			known[p.Name] = p.MetadataReadable
			v, set := md[p.Name]
			if !set && !p.Optional && p.Default == "" && p.MetadataReadable {
				t.Errorf("kafka trigger: %s is required", p.Name)
			}
			if set && len(p.AllowedValue) > 0 && !slices.Contains(p.AllowedValue, v) {
				t.Errorf("kafka trigger: %s %q is not one of %v", p.Name, v, p.AllowedValue)
			}
		}
		for k := range md {
			if !known[k] {
				t.Errorf("kafka trigger: %s is not a metadata parameter of KEDA's kafka scaler", k)
			}
		}
		if n, err := strconv.Atoi(md["lagThreshold"]); err != nil || n <= 0 {
			t.Errorf("kafka trigger: lagThreshold %q is not a positive integer", md["lagThreshold"])
		}
		return
	}
	t.Fatal("KEDA's scaler schema has no kafka scaler")
}

// inputPartitions is the partition count docker-compose.yml creates the
// topics with: the one place this repository decides it.
func inputPartitions(t *testing.T) int {
	t.Helper()
	p := loadCompose(t, map[string]string{})
	m := regexp.MustCompile(`--partitions (\d+)`).FindStringSubmatch(strings.Join(service(t, p, "kafka-init").Command, " "))
	if m == nil {
		t.Fatal("kafka-init sets no --partitions")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// memLimitBytes reads a GOMEMLIMIT value: a number of bytes with an
// optional B, KiB, MiB, GiB or TiB suffix, as the Go runtime does.
func memLimitBytes(t *testing.T, v string) int64 {
	t.Helper()
	mult := int64(1)
	for i, suffix := range []string{"TiB", "GiB", "MiB", "KiB", "B"} {
		if n, ok := strings.CutSuffix(v, suffix); ok {
			mult, v = int64(1)<<(10*(4-i)), n
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("GOMEMLIMIT %q: %v", v, err)
	}
	return n * mult
}
