package config

import "testing"

// Found by review. Kubernetes gives every pod (enableServiceLinks, on by
// default) variables for each
// ClusterIP Service of its namespace: for a Service named "twosell-sim" (the
// simulator's name in docker-compose.yml) or "twosell", TWOSELL_SIM_* or
// TWOSELL_SERVICE_HOST, TWOSELL_PORT, ... Variables the operator did not
// write must not keep "twosell run" from starting (CrashLoopBackOff).
func TestCheckEnvIgnoresKubernetesServiceLinks(t *testing.T) {
	env := []string{
		"TWOSELL_SIM_SERVICE_HOST=10.0.0.12",
		"TWOSELL_SIM_SERVICE_PORT=8088",
		"TWOSELL_SIM_PORT=tcp://10.0.0.12:8088",
		"TWOSELL_SIM_PORT_8088_TCP=tcp://10.0.0.12:8088",
		"TWOSELL_SIM_PORT_8088_TCP_PROTO=tcp",
		"TWOSELL_SIM_PORT_8088_TCP_PORT=8088",
		"TWOSELL_SIM_PORT_8088_TCP_ADDR=10.0.0.12",
		"TWOSELL_SERVICE_HOST=10.0.0.13",
		"TWOSELL_SERVICE_PORT_METRICS=9464",
		"TWOSELL_PORT=tcp://10.0.0.13:9464",
	}
	if err := CheckEnv(env); err != nil {
		t.Errorf("the variables Kubernetes injects for a Service named twosell-sim stop the commands:\n%v", err)
	}
}

// The patterns are Kubernetes' only: a misspelled setting is still caught.
func TestCheckEnvServiceLinkPatternsOnly(t *testing.T) {
	for _, name := range []string{"TWOSELL_JUHE_URLS", "TWOSELL_SERVICE", "TWOSELL_SIM_PORTS", "TWOSELL_PORT_80"} {
		if err := CheckEnv([]string{name + "=x"}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
