package main

import (
	"os"
	"syscall"
	"unsafe"
)

// terminal reports whether f is a terminal: whether it has terminal
// attributes (TCGETS), as isatty(3) asks. A character device is not enough:
// /dev/null is one (found by review: "2>/dev/null" chose the progress bar
// and the text log).
func terminal(f *os.File) bool {
	var t syscall.Termios
	return ioctl(f, syscall.TCGETS, unsafe.Pointer(&t)) == nil
}

// ioctl makes the ioctl req on f with arg.
func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	rc, err := f.SyscallConn() // not Fd, which would make f blocking
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
