//go:build unix

package juhe

import (
	"crypto/tls"
	"net"
	"syscall"
)

// peekIdle looks, without waiting and without consuming anything, at what
// the server sent on an idle connection: nothing (the usual), its end
// (closed: an idle keep-alive timeout), or bytes (for TLS, a session ticket
// or a close_notify alert; for plain http, bytes no request asked for).
func peekIdle(conn net.Conn) idleState {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return idleQuiet
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return idleQuiet
	}
	state := idleQuiet
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR:
			// nothing waiting: quiet
		case err != nil, n == 0:
			state = idleClosed // reset, or the server's FIN
		default:
			state = idleBytes
		}
		return true // never wait
	})
	if err != nil {
		return idleClosed
	}
	return state
}
