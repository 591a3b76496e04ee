package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twosell/twosell/processor/kafkatest"
)

// ledger export --output through a symlink (a reconciliation file kept
// elsewhere, linked into a working directory): createBeside creates the
// temporary file next to the link and the rename replaces the link itself
// with a regular file, so the file the link names is never written (it
// keeps last month's export) and the link is gone. os.Create, whose
// behaviour createBeside's comment and the README ("renamed over it ... the
// file keeps its permissions") describe, writes the linked file.
func TestDiffReviewLedgerExportOutputThroughASymlink(t *testing.T) {
	k := kafkatest.New(t)
	ledger := k.Name("ledger")
	k.CreateTopics(1, ledger)
	dir := t.TempDir()
	target := filepath.Join(dir, "archive", "june.csv")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, []byte("last month\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "june.csv")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := reviewRun(t, t.Context(), "ledger", "export", "--brokers", strings.Join(k.Brokers, ","), "--ledger-topic", ledger, "--output", link)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) == "last month\n" || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("--output %s (a symlink to %s): the linked file still reads %q, and the link is now %v: the export replaced the link instead of writing the file",
			link, target, got, fi.Mode())
	}
}
