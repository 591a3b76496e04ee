package main

import (
	"encoding/csv"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/twosell/twosell/juhe/juhesim"
	"github.com/twosell/twosell/processor/kafkatest"
)

// runQuery runs "twosell query" with the broker k and the ledger topic
// ledger, and returns its exit code, stdout and stderr.
func runQuery(t *testing.T, k *kafkatest.Cluster, url, ledger string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	args = append([]string{"query", "--juhe-url", url, "--brokers", strings.Join(k.Brokers, ","), "--ledger-topic", ledger}, args...)
	code := Main(t.Context(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// ledgerCSV is "twosell ledger export" of ledger.
func ledgerCSV(t *testing.T, k *kafkatest.Cluster, ledger string) string {
	t.Helper()
	var out, said syncBuffer
	if code := Main(t.Context(), []string{"ledger", "export", "--brokers", strings.Join(k.Brokers, ","), "--ledger-topic", ledger}, &out, &said); code != 0 {
		t.Fatalf("ledger export: exit %d: %s", code, said.String())
	}
	return out.String()
}

// ledgerRows is ledgerCSV's rows, the header first.
func ledgerRows(t *testing.T, k *kafkatest.Cluster, ledger string) [][]string {
	t.Helper()
	out := ledgerCSV(t, k, ledger)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("ledger export %q: %v", out, err)
	}
	return rows
}

// With the ledger (the default), "twosell query" pays once per fact as run
// does: its paid answer is written to the ledger (in "ledger export", by
// order id) and counted in juhe.daily_budget; a query the ledger's
// knowledge answers makes no call and names the answer it came from;
// --fresh asks the provider all the same; a spent budget is an error that
// makes no call. Each query is a process of its own: what the next one
// knows, it read from the ledger. (Before, every query was a paid call
// outside the ledger and the budget.)
func TestQueryPaysOncePerFact(t *testing.T) {
	useCostClock(t)
	k := kafkatest.New(t)
	sim, url := newSim(t, juhesim.Faults{})
	ledger := k.Name("ledger")
	t.Setenv("TWOSELL_JUHE_KEY", testKey)
	t.Setenv("TWOSELL_JUHE_DAILY_BUDGET", "2")
	recycled := ""
	for _, m := range juhesim.Population(100) {
		if _, res := juhesim.Expect(m, "20200101"); res == 1 {
			recycled = m
			break
		}
	}
	query := func(want int, args ...string) (queryResult, string) {
		t.Helper()
		code, stdout, stderr := runQuery(t, k, url, ledger, args...)
		if code != want {
			t.Fatalf("query %v: exit %d, want %d; stderr: %s", args, code, want, stderr)
		}
		var got queryResult
		if want == 0 {
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("stdout %q: %v", stdout, err)
			}
		}
		if out := stdout + stderr; strings.Contains(out, recycled) || strings.Contains(out, testKey) {
			t.Errorf("the number or the key was printed: %s", out)
		}
		return got, stderr
	}

	paid, _ := query(0, recycled, "--date", "20200101")
	if paid.Source != "api" || paid.Status != "recycled" || paid.OrderID == "" || sim.Stats().Requests != 1 {
		t.Fatalf("first query: %+v, %d requests; want a paid recycled answer", paid, sim.Stats().Requests)
	}
	// res 1 on 20200101 also answers every earlier date.
	for _, date := range []string{"20200101", "20190305"} {
		got, said := query(0, recycled, "--date", date)
		if got.Source != "cache" || got.Status != "recycled" || got.OrderID != paid.OrderID || sim.Stats().Requests != 1 {
			t.Errorf("query on %s after the paid one: %+v, %d requests; want the ledger's answer, order id %s, no call",
				date, got, sim.Stats().Requests, paid.OrderID)
		}
		// One lookup's output says what it did: the ledger's load is a
		// DEBUG line (it was an INFO line on every query; a walkthrough).
		if strings.Contains(said, "ledger loaded") {
			t.Errorf("query on %s logged the ledger's load at the default level:\n%s", date, said)
		}
	}
	t.Setenv("TWOSELL_LOG_LEVEL", "debug")
	fresh, said := query(0, recycled, "--date", "20200101", "--fresh")
	if fresh.Source != "api" || fresh.OrderID == paid.OrderID || sim.Stats().Requests != 2 {
		t.Errorf("--fresh: %+v, %d requests; want a paid call", fresh, sim.Stats().Requests)
	}
	// Its knowledge is not kept, and the log says so, not "0 mobiles known"
	// (found by a walkthrough: the ledger seemed lost).
	if !strings.Contains(said, "not kept (the cache is off)") {
		t.Errorf("--fresh: the ledger's log line does not say its knowledge is not kept:\n%s", said)
	}
	// Both paid calls are in the ledger, by order id.
	csv := ledgerCSV(t, k, ledger)
	for _, id := range []string{paid.OrderID, fresh.OrderID} {
		if !strings.Contains(csv, id) {
			t.Errorf("ledger export lacks the query's order id %s:\n%s", id, csv)
		}
	}
	// Two paid calls today, the budget's two: a third is refused without
	// a call; the knowledge still answers.
	_, stderr := query(1, recycled, "--date", "20200101", "--fresh")
	if !strings.Contains(stderr, "no call made") || !strings.Contains(stderr, "juhe.daily_budget (2 a day") ||
		strings.Contains(stderr, "holding back records") || sim.Stats().Requests != 2 {
		t.Errorf("third paid query with a budget of 2: %d requests, stderr %q", sim.Stats().Requests, stderr)
	}
	if got, _ := query(0, recycled, "--date", "20180101"); got.Source != "cache" || sim.Stats().Requests != 2 {
		t.Errorf("a query the knowledge answers, budget spent: %+v, %d requests", got, sim.Stats().Requests)
	}
}

// A query whose first request is cut off (its outcome unknown: paid,
// counted, written "unavailable") and whose retry the budget refuses
// (juhe.daily_budget 1) says a request was made: it said "no call made"
// (found by review).
func TestQueryRetryRefusedByTheBudgetSaysARequestWasMade(t *testing.T) {
	useCostClock(t)
	k := kafkatest.New(t)
	_, url := newSim(t, juhesim.Faults{Outage: juhesim.OutageReset})
	ledger := k.Name("ledger")
	t.Setenv("TWOSELL_JUHE_KEY", testKey)
	t.Setenv("TWOSELL_JUHE_DAILY_BUDGET", "1")
	code, _, stderr := runQuery(t, k, url, ledger, "17312345678", "--date", "20200101")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, stderr)
	}
	if csv := ledgerCSV(t, k, ledger); !strings.Contains(csv, ",unavailable,") {
		t.Fatalf("the cut-off request is not in the ledger:\n%s", csv)
	}
	if strings.Contains(stderr, "no call made") || !strings.Contains(stderr, "1 request(s) made and failed") {
		t.Errorf("a request was made (in ledger export as unavailable, counted in the budget); the query says:\n%s", stderr)
	}
}

// The ledger's knowledge answers a query without a call, so a wrong
// juhe.key goes unseen (cache.secret set: the ledger's keys do not change
// with it); --fresh asks the provider, which refuses the key. README's way
// to try the real API once is --fresh (found by review: without it, the
// wrong key "worked").
func TestQueryFreshTriesTheKey(t *testing.T) {
	useCostClock(t)
	k := kafkatest.New(t)
	sim, url := newSim(t, juhesim.Faults{})
	ledger := k.Name("ledger")
	t.Setenv("TWOSELL_CACHE_SECRET", "a-cache-secret-of-32-characters!")
	t.Setenv("TWOSELL_JUHE_KEY", testKey)
	if code, _, stderr := runQuery(t, k, url, ledger, "17312345678", "--date", "20240102"); code != 0 {
		t.Fatalf("first query: exit %d: %s", code, stderr)
	}
	t.Setenv("TWOSELL_JUHE_KEY", "WRONG-KEY-0000")
	code, stdout, _ := runQuery(t, k, url, ledger, "17312345678", "--date", "20240102")
	var got queryResult
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil || got.Source != "cache" || sim.Stats().Requests != 1 {
		t.Errorf("without --fresh: exit %d, %+v (%v), %d requests; want the ledger's answer, no call", code, got, err, sim.Stats().Requests)
	}
	code, _, stderr := runQuery(t, k, url, ledger, "17312345678", "--date", "20240102", "--fresh")
	if code != 1 || !strings.Contains(stderr, "10001") || sim.Stats().Requests != 2 {
		t.Errorf("--fresh with a wrong key: exit %d, %d requests, stderr %s; want the provider's 10001", code, sim.Stats().Requests, stderr)
	}
}

// A query by a user who may read the ledger but not write it (an account
// given the export's ACL): the call is paid, its call record refused and
// given up; the query prints the answer and exits 1, saying that ledger
// export and the budgets miss the call (it exited 0: found by review).
func TestQueryWhoseLedgerWriteIsRefusedExitsOne(t *testing.T) {
	useCostClock(t)
	k, ledger := readOnlyLedger(t)
	sim, url := newSim(t, juhesim.Faults{})
	t.Setenv("TWOSELL_JUHE_KEY", testKey)
	code, stdout, stderr := runQuery(t, k, url, ledger, "17312345678", "--date", "20240102", "--sasl-mechanism", "plain", "--sasl-username", "ops")
	var got queryResult
	err := json.Unmarshal([]byte(stdout), &got)
	if code != 1 || err != nil || got.Source != "api" || got.OrderID == "" || sim.Stats().Requests != 1 ||
		!strings.Contains(stderr, "could not be written to the ledger") || !strings.Contains(stderr, got.OrderID) {
		t.Errorf("ledger write refused: exit %d, answer %+v (%v), %d requests; stderr %s\nwant the answer printed, exit 1, the order id and the reason on stderr",
			code, got, err, sim.Stats().Requests, stderr)
	}
}

// readOnlyLedger is a compacted ledger topic on a kfake cluster where the
// user "ops" (its password in TWOSELL_KAFKA_SASL_PASSWORD) may describe and
// read topics but not write them: an account given the export's ACL.
func readOnlyLedger(t *testing.T) (*kafkatest.Cluster, string) {
	t.Helper()
	acl := func(resource kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: resource, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	k := kafkatest.NewFake(t, []kgo.Opt{kgo.SASL(plain.Auth{User: "admin", Pass: "admin-pw"}.AsMechanism())},
		kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "admin-pw"),
		kfake.User("PLAIN", "ops", "ops-pw",
			acl(kmsg.ACLResourceTypeTopic, "*", kmsg.ACLOperationDescribe), acl(kmsg.ACLResourceTypeTopic, "*", kmsg.ACLOperationRead),
			acl(kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLOperationDescribe)))
	ledger := k.Name("ledger")
	compact := "compact"
	k.CreateTopicsWith(1, map[string]*string{"cleanup.policy": &compact}, ledger)
	t.Setenv("TWOSELL_KAFKA_SASL_PASSWORD", "ops-pw")
	return k, ledger
}

// A query whose first request is cut off and whose retry the budget
// refuses, by a user who may not write the ledger: the error says the
// request's call record could not be written (it said the request was "in
// the ledger as unavailable": found by review).
func TestQueryBudgetSpentWithItsCallRecordLost(t *testing.T) {
	useCostClock(t)
	k, ledger := readOnlyLedger(t)
	_, url := newSim(t, juhesim.Faults{Outage: juhesim.OutageReset})
	t.Setenv("TWOSELL_JUHE_KEY", testKey)
	t.Setenv("TWOSELL_JUHE_DAILY_BUDGET", "1")
	code, _, stderr := runQuery(t, k, url, ledger, "17312345678", "--date", "20240102", "--sasl-mechanism", "plain", "--sasl-username", "ops")
	if code != 1 || !strings.Contains(stderr, "could not be written before closing") {
		t.Fatalf("exit %d, stderr %s; want exit 1 and the call record given up", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if last := lines[len(lines)-1]; strings.Contains(last, "in the ledger as unavailable") || !strings.Contains(last, "could not be written to the ledger") {
		t.Errorf("the cut-off request's call record was given up unwritten; the query's error says:\n%s", last)
	}
}

// A provider address where nothing listens: the error names the setting.
func TestQueryUnreachableProviderNamesTheSetting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there
	t.Setenv("TWOSELL_JUHE_KEY", testKey)
	t.Setenv("TWOSELL_LEDGER_ENABLED", "false")
	var stdout, stderr syncBuffer
	code := Main(t.Context(), []string{"query", "17312345678", "--date", "20240102", "--juhe-url", "http://" + addr, "--juhe-timeout", "2s"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "check juhe.url (--juhe-url") {
		t.Errorf("provider unreachable: exit %d, stderr %s; want 1, naming juhe.url", code, stderr.String())
	}
}
