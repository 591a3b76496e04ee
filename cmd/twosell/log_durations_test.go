package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A duration attribute is written as Go writes it, "10ms", by the JSON
// handler as by the text handler. Found by review: JSON logs wrote bare
// nanoseconds, "took":10000000.
func TestLogDurationsAreReadable(t *testing.T) {
	for format, want := range map[string]string{"json": `"took":"10ms"`, "text": `took=10ms`} {
		var buf bytes.Buffer
		log, err := newLogger(&buf, "info", format)
		if err != nil {
			t.Fatal(err)
		}
		log.With("after", 1500*time.Millisecond).WithGroup("g").Info("done", "took", 10*time.Millisecond)
		out := buf.String()
		if !strings.Contains(out, want) || !strings.Contains(out, "1.5s") {
			t.Errorf("%s: want %s and 1.5s in:\n%s", format, want, out)
		}
	}
}
