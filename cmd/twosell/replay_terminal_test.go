//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openPTY opens a pseudo-terminal: its master, which the test reads, and
// its slave, the terminal a program writes to. It skips the test when the
// system has none to give.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: opening /dev/ptmx: %v", err)
	}
	var unlock int32 // unlockpt
	if err := ioctl(master, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		master.Close()
		t.Skipf("no pseudo-terminal: unlockpt: %v", err)
	}
	var n uint32 // ptsname
	if err := ioctl(master, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		master.Close()
		t.Skipf("no pseudo-terminal: ptsname: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		t.Skipf("no pseudo-terminal: opening /dev/pts/%d: %v", n, err)
	}
	t.Cleanup(func() {
		slave.Close()
		master.Close()
	})
	return master, slave
}

// The end of what a test writes to a terminal or a pipe after the command
// returned: everything before it has been read once it is.
const endOfOutput = "\n--end of the command's output--\n"

// readUntilEnd reads r in the background until endOfOutput, calling
// onRead with what it read so far after each read ("\r\n" read as "\n": a
// terminal writes "\n" so, ONLCR); wait returns what came before
// endOfOutput.
func readUntilEnd(t *testing.T, r *os.File, onRead func(string)) (wait func() string) {
	t.Helper()
	_ = r.SetReadDeadline(time.Now().Add(60 * time.Second)) // a hang guard only; a pipe and a pty are pollable
	done := make(chan string, 1)
	go func() {
		var got bytes.Buffer
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			got.Write(buf[:n])
			out := strings.ReplaceAll(got.String(), "\r\n", "\n")
			onRead(out)
			if i := strings.Index(out, endOfOutput); i >= 0 || err != nil {
				if i >= 0 {
					out = out[:i]
				} else {
					out += fmt.Sprintf("\n(read: %v)", err)
				}
				done <- out
				return
			}
		}
	}()
	return func() string { return <-done }
}

// notifyingBuffer is a buffer (not a file) that calls onWrite with what it
// holds after each write.
type notifyingBuffer struct {
	syncBuffer
	onWrite func(string)
}

func (b *notifyingBuffer) Write(p []byte) (int, error) {
	n, err := b.syncBuffer.Write(p)
	b.onWrite(b.String())
	return n, err
}

// progressShown reports whether out shows replay's progress: a bar drawn,
// or a progress line.
func progressShown(out string) bool {
	return strings.Contains(out, "\r\033[K[") || strings.Contains(out, " offsets (")
}

// README (Replay): --progress auto (the default) shows "a bar on a
// terminal, else lines". On a real pseudo-terminal the bar is redrawn in
// place ("\r\033[K[===...] done/total pct rate paid cache ETA"); on a pipe
// and on a buffer, plain periodic lines, with no carriage return and no
// escape code. (TestReplayProgressBar draws the bar by hand, and reads
// lines from a buffer given to newReplayProgress; the replay tests ask for
// --progress lines. Here the command decides.) Each replay's provider is
// held back until the first progress is shown, so that progress is shown
// while the replay runs and again at its end, whatever the speed.
func TestReplayProgressOnATerminalAndOff(t *testing.T) {
	k, sim, cfg, evs, recs := replayFixture(t)
	k.Produce(recs...)
	total := len(evs)

	// replay runs "twosell replay --progress auto" with its stderr on
	// stderr and a ledger of its own (it pays for every number again), its
	// provider held back until progress was shown (shown is closed).
	replay := func(t *testing.T, name string, stderr io.Writer, shown <-chan struct{}) replaySummary {
		t.Helper()
		release := make(chan struct{})
		var once sync.Once
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
				sim.ServeHTTP(w, r)
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(front.Close)
		t.Cleanup(func() { once.Do(func() { close(release) }) }) // before Close, which waits for the requests
		c := *cfg
		c.Juhe.URL, c.Ledger.Topic = front.URL, k.Name("ledger-"+name)
		args := replayArgs(&c, k.Name("replay-"+name), "--progress", "auto", "--log-level", "info")
		var stdout syncBuffer
		exit := make(chan int, 1)
		go func() { exit <- Main(t.Context(), args, &stdout, stderr) }()
		select {
		case <-shown:
			once.Do(func() { close(release) })
		case code := <-exit:
			t.Fatalf("%s: twosell %v: exit %d before any progress was shown", name, args, code)
		}
		if code := <-exit; code != 0 {
			t.Fatalf("%s: twosell %v: exit %d", name, args, code)
		}
		var s replaySummary
		if err := json.Unmarshal([]byte(stdout.String()), &s); err != nil || !s.Complete || s.Events != int64(total) || s.PaidCalls == 0 {
			t.Fatalf("%s: summary %q (%v): want the %d events replayed, and calls paid", name, stdout.String(), err, total)
		}
		return s
	}
	// onFile runs replay with its stderr on w, read from r until the
	// command's output ends, and returns what was read.
	onFile := func(t *testing.T, name string, r, w *os.File) (string, replaySummary) {
		t.Helper()
		shown := make(chan struct{})
		var once sync.Once
		wait := readUntilEnd(t, r, func(out string) {
			if progressShown(out) {
				once.Do(func() { close(shown) })
			}
		})
		s := replay(t, name, w, shown)
		if _, err := io.WriteString(w, endOfOutput); err != nil {
			t.Fatal(err)
		}
		return wait(), s
	}
	// The lines of a replay not on a terminal: one while it waited for
	// the provider, one at its end.
	plain := func(t *testing.T, out string, s replaySummary) {
		t.Helper()
		if strings.ContainsAny(out, "\r\033") {
			t.Errorf("a carriage return or an escape code:\n%q", out)
		}
		var lines []string
		for line := range strings.Lines(out) {
			if strings.Contains(line, " offsets (") {
				lines = append(lines, line)
			}
		}
		first, last := fmt.Sprintf("replay: 0/%d offsets (0.0%%) · ", total), fmt.Sprintf("replay: %d/%d offsets (100.0%%) · ", total, total)
		if len(lines) < 2 || !strings.HasPrefix(lines[0], first) || !strings.HasPrefix(lines[len(lines)-1], last) ||
			!strings.Contains(lines[len(lines)-1], fmt.Sprintf(" · paid calls %d · ", s.PaidCalls)) || !strings.Contains(lines[len(lines)-1], " · ETA ") {
			t.Errorf("progress lines %q; want one starting %q, then a last one starting %q with %d paid calls and the ETA", lines, first, last, s.PaidCalls)
		}
	}

	t.Run("terminal", func(t *testing.T) {
		master, slave := openPTY(t)
		out, s := onFile(t, "terminal", master, slave)
		if strings.Contains(out, " offsets (") {
			t.Errorf("a progress line on the terminal, not the bar:\n%q", out)
		}
		// Each draw is the whole bar, in place of the one before.
		var draws []string
		for _, d := range strings.Split(out, "\r\033[K")[1:] {
			if strings.HasPrefix(d, "[") {
				draws = append(draws, d)
			}
		}
		first := fmt.Sprintf("] 0/%d   0.0%%  0/s  paid 0  cache 0  ETA ?", total)
		last := fmt.Sprintf("] %d/%d 100.0%%  ", total, total)
		if len(draws) < 2 || !strings.HasPrefix(draws[0], "[ ") || !strings.HasSuffix(draws[0], first) ||
			!strings.HasPrefix(draws[len(draws)-1], "[=") || !strings.Contains(draws[len(draws)-1], last) {
			t.Fatalf("bars drawn %q; want one ending %q while the provider was held, then one with %q", draws, first, last)
		}
		// The last ends its line (log lines may follow it).
		end, _, ended := strings.Cut(draws[len(draws)-1], "\n")
		if want := fmt.Sprintf("/s  paid %d  cache %d  ETA 0s", s.PaidCalls, s.CacheAnswers); !ended || !strings.HasSuffix(end, want) {
			t.Errorf("the last bar %q: want it to end with %q, and its line ended", draws[len(draws)-1], want)
		}
	})

	t.Run("pipe", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		out, s := onFile(t, "pipe", r, w)
		plain(t, out, s)
	})

	t.Run("buffer", func(t *testing.T) {
		shown := make(chan struct{})
		var once sync.Once
		b := &notifyingBuffer{onWrite: func(out string) {
			if progressShown(out) {
				once.Do(func() { close(shown) })
			}
		}}
		s := replay(t, "buffer", b, shown)
		plain(t, b.String(), s)
	})
}

// /dev/null is a character device, not a terminal: "2>/dev/null" gets the
// plain lines and the JSON log (it got the bar and the text log).
func TestDevNullIsNotATerminal(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Errorf("%s is taken for a terminal", os.DevNull)
	}
}
