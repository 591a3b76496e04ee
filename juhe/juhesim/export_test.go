package juhesim

import (
	"net"
	"net/http"
	"sync/atomic"
)

// CountHandOvers counts, from now on, the connections sv hands over to its
// net/http side. Call it before Serve.
func (sv *Server) CountHandOvers() *atomic.Int64 {
	n := new(atomic.Int64)
	sv.http.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return n
}

// WrapHandler wraps the handler of sv's net/http side. Call it before
// Serve.
func (sv *Server) WrapHandler(wrap func(http.Handler) http.Handler) {
	sv.http.Handler = wrap(sv.http.Handler)
}
