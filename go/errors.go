package keyrotor

import (
	"errors"
	"io/fs"
	"syscall"
)

// ErrorClass is the language-neutral class of an error reading a mounted
// Secret (docs/wire.md#errors-reading-a-directory).
type ErrorClass string

// The classes of errors reading a directory.
const (
	// Missing: a required file does not exist (also: nothing at the mount
	// point, ..data dangling).
	Missing ErrorClass = "missing"
	// Malformed: a file breaks its grammar or its cap, or is not UTF-8.
	Malformed ErrorClass = "malformed"
	// IO: another error reading a file or ..data (permissions, I/O).
	IO ErrorClass = "io"
	// Unstable: the generation changed on each of 5 attempts.
	Unstable ErrorClass = "unstable"
)

// VolumeError says why a mounted Secret could not be read. It names the file
// and the reason, never the file's content.
type VolumeError struct {
	Class  ErrorClass
	File   string // the file's path (the directory, for Unstable)
	Reason string // what is wrong, without quoting the content
	Err    error  // the operating system's error, for IO
}

func (e *VolumeError) Error() string {
	if e.Class == IO && e.Err != nil {
		return "cannot read " + e.File + ": " + osReason(e.Err)
	}
	return e.File + ": " + e.Reason
}

func (e *VolumeError) Unwrap() error { return e.Err }

// ClassOf is the class of an error returned by this package's readers, or
// "" for any other error.
func ClassOf(err error) ErrorClass {
	var ve *VolumeError
	if errors.As(err, &ve) {
		return ve.Class
	}
	return ""
}

// osReason is the operating system's reason alone ("permission denied"),
// without the operation and path a *fs.PathError repeats.
func osReason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}
