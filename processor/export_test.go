package processor

import "time"

// SetReplayStallAfter sets how long a replay waits for a stalled partition
// before it fetches it again, until the returned function restores it.
func SetReplayStallAfter(d time.Duration) (restore func()) {
	old := replayStallAfter
	replayStallAfter = d
	return func() { replayStallAfter = old }
}
