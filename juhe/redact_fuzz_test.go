package juhe

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzReplyReasonRedacted: wherever the key sits in the provider's own
// error text, and whatever surrounds it, no piece of the key gets through
// the error the client builds from the reply. (Redacting after the reason
// was quoted and cut to 200 characters let a key straddling the cut, or one
// that quoting escapes, through; the checked-in corpus keeps those cases.)
func FuzzReplyReasonRedacted(f *testing.F) {
	f.Add("echo ", "", 4242)
	f.Add(strings.Repeat("x", 195), " tail", 4242)
	f.Add(strings.Repeat("长", 60), "", 31337)
	f.Add("", "", 10001)
	const key = `fuzz"Key-7e21Ω`
	r := NewRedactor(key)
	f.Fuzz(func(t *testing.T, before, after string, code int) {
		body, err := json.Marshal(map[string]any{"reason": before + key + after, "error_code": code, "result": nil})
		if err != nil {
			t.Skip()
		}
		_, err = parseReply(body, func(s string) string { return r.Redact(s) })
		if err == nil {
			return
		}
		msg := err.Error()
		for i := 0; i+5 <= len(key); i++ {
			piece := key[i : i+5]
			if strings.Contains(msg, piece) && !strings.Contains(before, piece) && !strings.Contains(after, piece) {
				t.Fatalf("piece %q of the key in %q", piece, msg)
			}
		}
	})
}
