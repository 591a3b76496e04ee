package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/twosell/twosell/config"
	"github.com/twosell/twosell/juhe"
)

// syncBuffer is a bytes.Buffer that a command and a test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startSim runs cmdSim with args until the test ends and returns its base
// URL, read from the line it prints, and a function that stops it and
// returns its error.
func startSim(t *testing.T, args ...string) (base string, stop func() error, stderr *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	stderr = &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		err := cmdSim(ctx, args, pw, stderr)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no banner (%v); cmdSim: %v; stderr: %s", err, <-done, stderr)
	}
	const prefix = "juhe simulator listening on "
	if !strings.HasPrefix(line, prefix) {
		t.Fatalf("banner %q", line)
	}
	base = strings.TrimSpace(strings.TrimPrefix(line, prefix))
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return base, stop, stderr
}

func simGet(t *testing.T, base, path string, v url.Values) (code int, body string) {
	t.Helper()
	resp, err := http.Get(base + path + "?" + v.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a struct {
		ErrorCode int `json:"error_code"`
	}
	if path == juhe.PathQuery || path == juhe.PathQueryEncry {
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	return a.ErrorCode, string(b)
}

func TestCmdSim(t *testing.T) {
	const envKey, envOpenID = "env-key-5f3a9c", "env-openid-77b1d0"
	t.Setenv("TWOSELL_JUHE_KEY", envKey)
	t.Setenv("TWOSELL_JUHE_OPENID", envOpenID)

	t.Run("environment", func(t *testing.T) {
		base, stop, stderr := startSim(t, "--addr", "127.0.0.1:0", "--population", "10")
		aes, err := juhe.EncodeMobile(juhe.ModeAES, "17312345678", juhe.AESKey(envOpenID))
		if err != nil {
			t.Fatal(err)
		}
		if code, body := simGet(t, base, juhe.PathQueryEncry, url.Values{"key": {envKey}, "mobile": {aes}, "date": {"20180518"}}); code != 0 {
			t.Errorf("aes with the environment's key and openid: %s", body)
		}
		if code, _ := simGet(t, base, juhe.PathQuery, url.Values{"key": {"other"}, "mobile": {"17312345678"}, "date": {"20180518"}}); code != 10001 {
			t.Errorf("wrong key: code %d, want 10001", code)
		}
		if err := stop(); err != nil {
			t.Errorf("cmdSim after ctx ended: %v, want nil", err)
		}
		if s := stderr.String(); strings.Contains(s, envKey) || strings.Contains(s, envOpenID) {
			t.Errorf("stderr shows a secret: %s", s)
		}
	})

	t.Run("flags", func(t *testing.T) {
		base, stop, _ := startSim(t, "--addr", "127.0.0.1:0", "--key", "k1,k2", "--key", "k3",
			"--openid", "flag-openid", "--population", "0", "--seed", "7",
			"--error-rate", "232704=0.5", "--error-rate", "10020=0", "--qps", "1000", "--ip-qps", "500")
		for _, k := range []string{"k1", "k2", "k3"} {
			// Rates below 1: any of these codes is an accepted key.
			if code, body := simGet(t, base, juhe.PathQuery, url.Values{"key": {k}, "mobile": {"17312345678"}, "date": {"20180518"}}); code != 0 && code != 232704 {
				t.Errorf("key %s: %s", k, body)
			}
		}
		if code, _ := simGet(t, base, juhe.PathQuery, url.Values{"key": {envKey}, "mobile": {"17312345678"}, "date": {"20180518"}}); code != 10001 {
			t.Errorf("--key replaces the environment's key: code %d, want 10001", code)
		}
		// --population 0 indexes nothing: a digest is unknown.
		if code, _ := simGet(t, base, juhe.PathQueryEncry, url.Values{"key": {"k1"}, "mobile": {juhe.MD5Hex("13986055100")}, "date": {"20180518"}}); code != 232703 && code != 232704 {
			t.Errorf("digest with --population 0: code %d, want 232703", code)
		}
		_, faults := simGet(t, base, "/sim/faults", nil)
		for _, want := range []string{`"232704": 0.5`, `"qps": 1000`, `"ip_qps": 500`} {
			if !strings.Contains(faults, want) {
				t.Errorf("GET /sim/faults lacks %s: %s", want, faults)
			}
		}
		if err := stop(); err != nil {
			t.Errorf("cmdSim after ctx ended: %v, want nil", err)
		}
	})
}

func TestCmdSimErrors(t *testing.T) {
	t.Setenv("TWOSELL_JUHE_OPENID", "")
	tests := []struct {
		name   string
		envKey string
		args   []string
	}{
		{"no key", "", []string{"--addr", "127.0.0.1:0"}},
		{"blank key", " , ", []string{"--addr", "127.0.0.1:0"}},
		{"error rate without =", "k", []string{"--error-rate", "232704"}},
		{"error rate above 1", "k", []string{"--error-rate", "232704=2"}},
		{"error rate for code 0", "k", []string{"--error-rate", "0=0.5"}},
		{"unknown outage", "k", []string{"--outage", "flood"}},
		{"negative qps", "k", []string{"--qps", "-1"}},
		{"unknown flag", "k", []string{"--frobnicate"}},
		{"extra argument", "k", []string{"now"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TWOSELL_JUHE_KEY", tc.envKey)
			var stdout, stderr bytes.Buffer
			err := cmdSim(t.Context(), tc.args, &stdout, &stderr)
			if !errors.As(err, new(usageError)) && !errors.As(err, new(*config.FlagError)) {
				t.Errorf("err %v, want a usage error", err)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

func TestCmdSimHelpHidesSecrets(t *testing.T) {
	const envKey, envOpenID = "env-key-5f3a9c", "env-openid-77b1d0"
	t.Setenv("TWOSELL_JUHE_KEY", envKey)
	t.Setenv("TWOSELL_JUHE_OPENID", envOpenID)
	var stdout, stderr bytes.Buffer
	if err := cmdSim(t.Context(), []string{"-h"}, &stdout, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err %v, want flag.ErrHelp", err)
	}
	help := stderr.String()
	if !strings.Contains(help, "-error-rate") {
		t.Errorf("help lacks the flags: %s", help)
	}
	if strings.Contains(help, envKey) || strings.Contains(help, envOpenID) {
		t.Errorf("help shows a secret: %s", help)
	}
}

func TestCmdSimAddressInUse(t *testing.T) {
	t.Setenv("TWOSELL_JUHE_KEY", "k")
	base, _, _ := startSim(t, "--addr", "127.0.0.1:0", "--population", "0")
	var stdout, stderr bytes.Buffer
	err := cmdSim(t.Context(), []string{"--addr", strings.TrimPrefix(base, "http://")}, &stdout, &stderr)
	if err == nil || errors.As(err, new(usageError)) {
		t.Errorf("err %v, want a listen error", err)
	}
}
