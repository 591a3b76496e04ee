package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// A secret's file that other users can read (Kubernetes mounts secrets at
// 0644 by default), or that the group or others can change, is reported
// with its setting and bits; 0600, 0400 and 0440 (a group that shares the
// secret, as Kubernetes' fsGroup gives) are not. A mounted secret's path is
// a link: its target's bits count.
func TestExposedSecretFiles(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no permission bits")
	}
	dir := t.TempDir()
	file := func(name string, mode fs.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("a-secret-long-enough\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // not subject to the umask
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		mode    fs.FileMode
		exposed bool
	}{
		{0o600, false}, {0o400, false}, {0o440, false}, {0o640, false},
		{0o644, true}, {0o604, true}, {0o660, true}, {0o602, true}, {0o666, true},
	} {
		c := Default()
		c.Juhe.KeyFile = file("key", tc.mode)
		got := c.ExposedSecretFiles()
		if tc.exposed != (len(got) == 1) {
			t.Errorf("mode %v: exposed %v, want %v", tc.mode, got, tc.exposed)
			continue
		}
		if tc.exposed && (got[0].Key != "juhe.key_file" || got[0].Path != c.Juhe.KeyFile || got[0].Mode != tc.mode) {
			t.Errorf("mode %v: reported as %+v", tc.mode, got[0])
		}
	}

	// Every secret file setting is checked; a link reports its target's
	// bits; a missing file is left to the loading's error.
	c := Default()
	c.Juhe.KeyFile = file("k", 0o600)
	c.Juhe.OpenIDFile = file("o", 0o644)
	c.Kafka.SASL.PasswordFile = file("p", 0o644)
	c.Kafka.SASL.TokenFile = file("t", 0o644)
	c.Kafka.TLS.KeyFile = file("tls.key", 0o644)
	target := file("s", 0o644)
	c.Cache.SecretFile = filepath.Join(dir, "s-link")
	if err := os.Symlink(target, c.Cache.SecretFile); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range c.ExposedSecretFiles() {
		keys = append(keys, f.Key)
	}
	want := []string{"juhe.openid_file", "kafka.sasl.password_file", "kafka.sasl.token_file", "kafka.tls.key_file", "cache.secret_file"}
	if len(keys) != len(want) {
		t.Fatalf("reported %v, want %v", keys, want)
	}
	for i := range want {
		if keys[i] != want[i] {
			t.Fatalf("reported %v, want %v", keys, want)
		}
	}
	c = Default()
	c.Juhe.KeyFile = filepath.Join(dir, "missing")
	if got := c.ExposedSecretFiles(); len(got) != 0 {
		t.Errorf("a missing file reported: %v", got)
	}
}
