package main

import "syscall"

// childAttrs puts the bench's broker and simulator in a process group of
// their own, so that a Ctrl-C at the terminal reaches the bench only, which
// then stops twosell against a broker and a simulator still running and
// reports what was done; and ends them with the bench however it ends.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
