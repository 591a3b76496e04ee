//go:build !unix

package juhe

import "net"

// peekIdle cannot look at a connection on this system: see alive_unix.go.
func peekIdle(net.Conn) idleState { return idleQuiet }
