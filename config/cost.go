package config

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"time"
)

// The accepted values of processing.on_budget.
var validOnBudget = []string{OnBudgetPause, OnBudgetEmit}

// cacheSecretLabel is what the derived cache secret is an HMAC of, under
// juhe.key. Changing it would change every mobile's key in the ledger.
const cacheSecretLabel = "twosell cache secret v1"

// CacheSecret returns the key of the hash by which the knowledge cache and
// the ledger know mobile numbers: cache.secret, or, when that is empty, one
// derived from juhe.key (the hex HMAC-SHA256 of a fixed label under the
// key), so that every instance with the same key shares the ledger's
// knowledge without another secret to distribute. The derivation is one-way:
// the derived secret does not reveal the key. It returns "" when neither is
// set.
func (c *Config) CacheSecret() string {
	if c.Cache.Secret != "" {
		return c.Cache.Secret.Reveal()
	}
	if c.Juhe.Key == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(c.Juhe.Key.Reveal()))
	m.Write([]byte(cacheSecretLabel))
	return hex.EncodeToString(m.Sum(nil))
}

// validateCost checks the cost controls: the cache, the ledger, the rate,
// the budget and the deadline.
func (c *Config) validateCost(v *validator) {
	// The cost controls know numbers by a hash keyed by the cache secret.
	// A run that calls the provider has it (juhe.key is required, and the
	// secret is derived from it); a dry run needs it too (found by review:
	// it was missed only once the range was read from Kafka, and reported
	// as a Kafka error).
	if v.cmd == "replay" && !v.calls && c.CacheSecret() == "" {
		v.addSecret("cache.secret", "must be set for a dry run, or juhe.key, from which it is derived: it keys the hash by which the ledger knows numbers")
	}
	v.atLeast("cache.max_entries", c.Cache.MaxEntries, 1)
	v.positive("cache.not_recycled_ttl", c.Cache.NotRecycledTTL)
	v.positive("cache.short_ttl", c.Cache.ShortTTL)
	if c.Ledger.Enabled {
		if !validTopicName(c.Ledger.Topic) {
			v.addf("ledger.topic", "%q is not a valid topic name; valid: 1 to %d of %s, other than \".\" and \"..\"",
				c.Ledger.Topic, maxTopicNameLength, topicNameCharacters)
		}
		for _, t := range []struct{ key, name string }{
			{"kafka.input_topic", c.Kafka.InputTopic},
			{"kafka.output_topic", c.Kafka.OutputTopic},
			{"kafka.dlq_topic", c.Kafka.DLQTopic},
		} {
			if t.name == c.Ledger.Topic {
				v.addf("ledger.topic", "%q is also %s; the ledger needs a topic of its own", t.name, t.key)
			}
		}
	}
	// NaN and infinities pass a "< 0" check (YAML's .nan and .inf; the
	// environment already refuses them): NaN read as unlimited.
	if c.Juhe.QPS < 0 || !finite(c.Juhe.QPS) {
		v.addf("juhe.qps", "%v is not valid; valid: 0 (unlimited) or a rate in requests per second, such as 10 or 0.5", c.Juhe.QPS)
	}
	v.atLeast("juhe.daily_budget", c.Juhe.DailyBudget, 0)
	if c.Juhe.DailyBudget > 0 && !c.Ledger.Enabled {
		v.addf("juhe.daily_budget", "%d needs the ledger (ledger.enabled: true), where every instance's calls are counted: "+
			"without it each process would count from 0, and could spend the budget again at every restart", c.Juhe.DailyBudget)
	}
	c.Juhe.budgetLoc = nil
	if loc, err := time.LoadLocation(c.Juhe.BudgetTimeZone); err != nil || c.Juhe.BudgetTimeZone == "" {
		// "" would load as UTC: make the choice explicit, as input.time_zone.
		v.addf("juhe.budget_time_zone", "%q is not valid; valid: an IANA time zone name such as Asia/Shanghai (the provider's) or UTC", c.Juhe.BudgetTimeZone)
	} else {
		c.Juhe.budgetLoc = loc
	}
	if c.Juhe.PricePerCall < 0 || !finite(c.Juhe.PricePerCall) {
		v.addf("juhe.price_per_call", "%v is not valid; valid: 0 or more, such as 0.4", c.Juhe.PricePerCall)
	}
	p := &c.Processing
	p.OnBudget = v.choose("processing.on_budget", p.OnBudget)
	if p.SkipOlderThan < 0 {
		v.addf("processing.skip_older_than", "%s is not valid; valid: 0 (off) or a duration such as 10m", p.SkipOlderThan)
	}
}

// finite reports whether f is a number, not NaN or an infinity.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
