//go:build !linux

package main

import "syscall"

// childAttrs: elsewhere the children share the bench's process group (see
// child_linux.go), and a Ctrl-C at the terminal stops them too.
func childAttrs() *syscall.SysProcAttr { return nil }
