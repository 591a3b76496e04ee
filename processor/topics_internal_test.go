package processor

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// timeRetention finds a topic's time retention only when the broker deletes
// its records by their producer-given timestamps.
func TestTimeRetention(t *testing.T) {
	cfg := func(kv ...string) []kadm.Config {
		var cs []kadm.Config
		for i := 0; i < len(kv); i += 2 {
			cs = append(cs, kadm.Config{Key: kv[i], Value: kadm.StringPtr(kv[i+1])})
		}
		return cs
	}
	week := 7 * 24 * time.Hour
	tests := []struct {
		name    string
		configs []kadm.Config
		want    time.Duration
		ok      bool
	}{
		{"delete", cfg("cleanup.policy", "delete", "retention.ms", "604800000", "message.timestamp.type", "CreateTime"), week, true},
		{"no cleanup.policy: Kafka's default, delete", cfg("retention.ms", "604800000"), week, true},
		{"compact and delete", cfg("cleanup.policy", "compact,delete", "retention.ms", "3600000"), time.Hour, true},
		{"compact only", cfg("cleanup.policy", "compact", "retention.ms", "604800000"), 0, false},
		{"unlimited", cfg("cleanup.policy", "delete", "retention.ms", "-1"), 0, false},
		{"log append time", cfg("retention.ms", "604800000", "message.timestamp.type", "LogAppendTime"), 0, false},
		{"no retention.ms", cfg("cleanup.policy", "delete"), 0, false},
		{"unreadable retention.ms", cfg("retention.ms", "a week"), 0, false},
	}
	for _, tt := range tests {
		got, ok := timeRetention(tt.configs)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: timeRetention = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
