package juhe_test

import (
	"strings"
	"testing"
	"time"

	"github.com/twosell/twosell/juhe"
)

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  juhe.Config
		want []string // substrings of the error
	}{
		{"no key", juhe.Config{}, []string{"juhe.key is empty"}},
		{"aes without openid", juhe.Config{Key: "k", Mode: juhe.ModeAES}, []string{"juhe.openid is empty", "aes"}},
		{"unknown mode", juhe.Config{Key: "k", Mode: "rot13"}, []string{"juhe.mode", "rot13", "sha256+aes"}},
		{"bad method", juhe.Config{Key: "k", Method: "PUT"}, []string{"juhe.method must be GET or POST"}},
		{"ftp", juhe.Config{Key: "k", BaseURL: "ftp://apis.juhe.cn"}, []string{"juhe.url must start with http"}},
		{"no host", juhe.Config{Key: "k", BaseURL: "https://"}, []string{"juhe.url has no host"}},
		{"key in the URL", juhe.Config{Key: "k", BaseURL: "https://apis.juhe.cn/?key=SECRET-KEY"}, []string{"the key belongs in juhe.key"}},
		{"unparsable URL", juhe.Config{Key: "k", BaseURL: "https://SECRET-KEY@[::1"}, []string{"juhe.url does not parse"}},
		{"backoffs", juhe.Config{Key: "k", Backoff: time.Second, MaxBackoff: time.Millisecond}, []string{"juhe.max_backoff"}},
		{"negative", juhe.Config{Key: "k", Timeout: -1, MaxConns: -1, Breaker: juhe.BreakerConfig{OpenFor: -1}},
			[]string{"juhe.timeout", "juhe.max_conns", "juhe.breaker.open_for"}},
		{"all at once", juhe.Config{Mode: "x", Method: "PATCH"}, []string{"juhe.key", "juhe.mode", "juhe.method"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := juhe.New(tt.cfg)
			if err == nil {
				t.Fatalf("New accepted %+v (%v)", tt.cfg, c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "SECRET-KEY") {
				t.Errorf("error %q quotes a secret", err)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	c, err := juhe.New(juhe.Config{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode() != juhe.ModePlain || c.BreakerState() != juhe.BreakerClosed {
		t.Errorf("mode %s, breaker %s", c.Mode(), c.BreakerState())
	}
}
