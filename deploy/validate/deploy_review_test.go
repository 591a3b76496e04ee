package validate

// The deployment files against what the binary does: defects a review
// found (twenty-second session), each test failing before its fix.

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// deployedConfig is the part of "twosell run --print-config" these tests read.
type deployedConfig struct {
	Processing struct {
		ShutdownTimeout    string `json:"shutdown_timeout"`
		MaxBufferedBytes   int64  `json:"max_buffered_bytes"`
		MaxInFlightBytes   int64  `json:"max_in_flight_bytes"`
		MaxBufferedRecords int64  `json:"max_buffered_records"`
	} `json:"processing"`
	Cache struct {
		Enabled    bool  `json:"enabled"`
		MaxEntries int64 `json:"max_entries"`
	} `json:"cache"`
}

// deployedTwosell returns the Deployment, its container and the
// configuration "twosell run" builds from the Deployment's args, its
// environment (secrets stood in for) and the ConfigMap's file.
func deployedTwosell(t *testing.T) (*appsv1.Deployment, corev1.Container, deployedConfig, map[string]string) {
	t.Helper()
	o := decodeManifests(t)
	var dep *appsv1.Deployment
	for _, d := range o.deployments {
		dep = d
	}
	c := dep.Spec.Template.Spec.Containers[0]
	var cmFile string
	for _, cm := range o.configMaps {
		cmFile = cm.Data[filepath.Base(flagValue(c.Args, "config"))]
	}
	file := filepath.Join(t.TempDir(), "twosell.yaml")
	if err := os.WriteFile(file, []byte(cmFile), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "review-secret-" + e.ValueFrom.SecretKeyRef.Key
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		}
	}
	args := []string{"run", "--config", file, "--print-config"}
	stdout, stderr, code := twosell(t, env, args...)
	if code != 0 {
		t.Fatalf("twosell %v: exit %d\n%s", args, code, stderr)
	}
	var cfg deployedConfig
	if err := yaml.Unmarshal([]byte(stdout), &cfg); err != nil {
		t.Fatal(err)
	}
	return dep, c, cfg, env
}

// goConst reads a Go constant "name = N * time.Second" (or "N << 20") from
// a source file of the module, so that the test follows the code.
func goConst(t *testing.T, file, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)\b` + name + `\s*=\s*(.+)$`).FindStringSubmatch(string(readRepoFile(t, file)))
	if m == nil {
		t.Fatalf("%s: no constant %s", file, name)
	}
	return strings.TrimSpace(m[1])
}

func constSeconds(t *testing.T, file, name string) time.Duration {
	t.Helper()
	v := goConst(t, file, name)
	m := regexp.MustCompile(`^(\d+)\s*\*\s*time\.Second$`).FindStringSubmatch(v)
	if m == nil {
		t.Fatalf("%s: %s = %s is not N * time.Second", file, name, v)
	}
	n, _ := strconv.Atoi(m[1])
	return time.Duration(n) * time.Second
}

// The container's memory limit (and GOMEMLIMIT at 90% of it) must hold
// what the configuration lets the process keep, as the README and the
// config's own documentation size it: the knowledge cache (cache.max_entries
// at "about 400 bytes each", filled at start from the ledger, which holds
// every number ever paid for), the records in flight
// (processing.max_in_flight_bytes), the buffered records of every partition
// an instance may own (processing.max_buffered_bytes per partition; with
// KEDA at minReplicaCount 1 one instance owns all of them) and the output
// records kept for reuse (16 MiB, processor/record.go maxKeptOutputBytes).
// (Found by review: with cache.max_entries at its default, 1,000,000, the
// cache alone was ~381 MiB of a 460 MiB GOMEMLIMIT, and the memory request,
// 128Mi, a quarter of what a warmed-up instance holds.)
func TestMemoryLimitHoldsTheConfiguredMemory(t *testing.T) {
	_, c, cfg, env := deployedTwosell(t)
	const bytesPerCacheEntry = 400 // README: cache.max_entries "about 400 bytes each"
	cache := int64(0)
	if cfg.Cache.Enabled {
		cache = cfg.Cache.MaxEntries * bytesPerCacheEntry
	}
	partitions := int64(inputPartitions(t))
	kept := int64(16 << 20)
	if v := goConst(t, "processor/record.go", "maxKeptOutputBytes"); v != "16 << 20" {
		t.Fatalf("maxKeptOutputBytes is %s now; update this test", v)
	}
	need := cache + cfg.Processing.MaxInFlightBytes + partitions*cfg.Processing.MaxBufferedBytes + kept
	memLimit := memLimitBytes(t, env["GOMEMLIMIT"])
	limit := c.Resources.Limits.Memory().Value()
	request := c.Resources.Requests.Memory().Value()
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	t.Logf("cache %d entries x %d B = %.0f MiB; in flight %.0f MiB; buffered %d partitions x %.0f MiB; kept outputs %.0f MiB; total %.0f MiB",
		cfg.Cache.MaxEntries, bytesPerCacheEntry, mib(cache), mib(cfg.Processing.MaxInFlightBytes), partitions,
		mib(cfg.Processing.MaxBufferedBytes), mib(kept), mib(need))
	if need > memLimit {
		t.Errorf("deployment.yaml: GOMEMLIMIT %s (%.0f MiB) < the %.0f MiB the configuration lets an instance hold (cache.max_entries %d at ~400 B alone is %.0f MiB): "+
			"the collector runs continuously and the pod is OOM-killed (limits.memory %.0f MiB) once the ledger has filled the cache; "+
			"set cache.max_entries in the ConfigMap or raise the limit", env["GOMEMLIMIT"], mib(memLimit), mib(need),
			cfg.Cache.MaxEntries, mib(cache), mib(limit))
	}
	if request < cache {
		t.Errorf("deployment.yaml: requests.memory %.0f MiB is below the knowledge cache's own %.0f MiB: the scheduler packs pods that each grow to their limit",
			mib(request), mib(cache))
	}
}

// On SIGTERM the processor leaves the group, and the revoke of its
// partitions runs these steps one after the other, each with its own bound
// (processor/group.go revoked, processor/partition.go shutdown):
//
//	in-flight records finish          <= processing.shutdown_timeout   (group.go: time.AfterFunc(ShutdownTimeout))
//	abandoned records end             <= min(shutdown_timeout, maxAbandonWait)
//	outputs acknowledged (flush)      <= processing.shutdown_timeout   (group.go: flushCtx)
//	final commit                      <= processing.shutdown_timeout   (group.go commitWorkers)
//
// then the LeaveGroup request (leaveGrace; processor.go leaveAndClose bounds
// the leave), and "run" closes the ledger (costCloseTimeout), the tracer
// (5 s) and the metrics server (5 s). The grace before SIGKILL must outlast them all, or a slow broker turns a clean stop into a kill between the
// outputs' acknowledgement and their commit. (Found by review: 60 s for a
// shutdown_timeout of 30 s, and compose's 45 s.)
func TestGracePeriodOutlastsTheShutdownPath(t *testing.T) {
	dep, _, cfg, _ := deployedTwosell(t)
	st, err := time.ParseDuration(cfg.Processing.ShutdownTimeout)
	if err != nil {
		t.Fatal(err)
	}
	abandon := min(st, constSeconds(t, "processor/partition.go", "maxAbandonWait"))
	ledgerClose := constSeconds(t, "cmd/twosell/cost.go", "costCloseTimeout")
	revoke := st + abandon + st + st
	after := constSeconds(t, "processor/processor.go", "leaveGrace") + ledgerClose + 5*time.Second + 5*time.Second
	grace := time.Duration(*dep.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= revoke+after {
		t.Errorf("deployment.yaml: terminationGracePeriodSeconds %v <= the revoke's bound %v (in flight %v + abandon %v + flush %v + commit %v; "+
			"then the group's leave, ledger close %v, tracer and server 10s: %v in all)", grace, revoke, st, abandon, st, st, ledgerClose, revoke+after)
	}

	// docker-compose.yml: the same, with stop_grace_period and the
	// environment's shutdown timeout.
	p := loadCompose(t, map[string]string{})
	s := service(t, p, "twosell")
	cst := st
	if v := environ(s)["TWOSELL_PROCESSING_SHUTDOWN_TIMEOUT"]; v != "" {
		if cst, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	crevoke := cst + min(cst, abandon) + cst + cst
	if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= crevoke+after {
		t.Errorf("docker-compose.yml: twosell's stop_grace_period %v <= the revoke's bound %v (3 x shutdown_timeout %v + abandon %v) and the closing's %v",
			s.StopGracePeriod, crevoke, cst, min(cst, abandon), after)
	}
}

// The image is pinned (a version or a digest), or always pulled. (Found by
// review: the mutable tag "latest" with imagePullPolicy IfNotPresent; a
// node that had pulled it once kept running that build, and instances of
// one consumer group could run different versions.)
func TestImageIsPinnedOrAlwaysPulled(t *testing.T) {
	dep, c, _, _ := deployedTwosell(t)
	var k struct {
		Images []struct {
			Name, NewName, NewTag, Digest string
		} `json:"images"`
	}
	if err := yaml.Unmarshal(readRepoFile(t, k8sDir, "kustomization.yaml"), &k); err != nil {
		t.Fatal(err)
	}
	tag := "latest"
	if _, after, ok := strings.Cut(c.Image[strings.LastIndex(c.Image, "/")+1:], ":"); ok {
		tag = after
	}
	digest := strings.Contains(c.Image, "@sha256:")
	for _, img := range k.Images {
		if img.NewTag != "" {
			tag = img.NewTag
		}
		digest = digest || img.Digest != ""
	}
	if !digest && tag == "latest" && c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("%s: container %s runs image %s (kustomization newTag %q) with imagePullPolicy %s: "+
			"a new push is never pulled by nodes that have the old one and triggers no rollout; pin a version or a digest",
			dep.Name, c.Name, c.Image, tag, c.ImagePullPolicy)
	}
}
