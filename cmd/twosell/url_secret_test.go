package main

import (
	"strings"
	"testing"
)

// The provider's document writes its URLs with the key in the query
// (...?key=您申请的KEY): a juhe.url pasted from it is refused by the
// configuration's validation, which does not show the query, and
// --print-config prints nothing of it (found by review: it printed the URL,
// key and all, and exited 0; juhe.New refused it only when run).
func TestJuheURLWithTheKeyInItsQuery(t *testing.T) {
	const key = "UrlQueryKey-7c1e94ab3f"
	t.Setenv("TWOSELL_JUHE_KEY", key)
	t.Setenv("TWOSELL_JUHE_URL", "https://apis.juhe.cn/twoSellTel/query?key="+key)
	var stdout, stderr syncBuffer
	code := Main(t.Context(), []string{"run", "--print-config"}, &stdout, &stderr)
	out := stdout.String() + stderr.String()
	if code == 0 || !strings.Contains(out, "juhe.url") || !strings.Contains(out, "query") {
		t.Errorf("exit %d, want a configuration error naming juhe.url and its query:\n%s", code, out)
	}
	if strings.Contains(out, key) {
		t.Errorf("the juhe key is printed:\n%s", out)
	}
}

// A juhe.url that does not parse (here a trailing newline, from a file or
// a ConfigMap: string settings are not trimmed) is quoted by the error
// without its query. Found by review: the error printed the key, which the
// process redactor learns only once the configuration has loaded.
func TestUnparsableJuheURLErrorHidesItsQuery(t *testing.T) {
	// Its own key: the process redactor keeps every key an earlier test of
	// this process registered, which would hide the leak.
	const key = "UnparsableUrlKey-2e8d5a0c61"
	t.Setenv("TWOSELL_JUHE_KEY", key)
	t.Setenv("TWOSELL_JUHE_URL", "https://apis.juhe.cn/twoSellTel/query?key="+key+"\n")
	for _, args := range [][]string{
		{"run", "--print-config"},
		{"query", "17398765432", "--date", "20240102"},
	} {
		var stdout, stderr syncBuffer
		code := Main(t.Context(), args, &stdout, &stderr)
		out := stdout.String() + stderr.String()
		if code == 0 || !strings.Contains(out, "juhe.url") {
			t.Errorf("%v: exit %d, want an error naming juhe.url:\n%s", args, code, out)
		}
		if strings.Contains(out, key) {
			t.Errorf("%v: the juhe key is printed:\n%s", args, out)
		}
	}
}

// --print-config passes through the process redactor: a secret pasted into
// another setting is masked there too.
func TestPrintConfigMasksASecretInAnotherSetting(t *testing.T) {
	const key = "PastedKey-5b0e3d9a17"
	t.Setenv("TWOSELL_JUHE_KEY", key)
	t.Setenv("TWOSELL_KAFKA_GROUP", "twosell-"+key)
	var stdout, stderr syncBuffer
	if code := Main(t.Context(), []string{"run", "--print-config"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if out := stdout.String(); strings.Contains(out, key) || !strings.Contains(out, "group: twosell-") {
		t.Errorf("the key is printed, or the group is not:\n%s", out)
	}
}
